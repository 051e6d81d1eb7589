// Package apikey holds the pure parts of API keys and usage-plan quotas:
// key format, hashing and comparison, key generation, and the calendar
// periods quotas are counted in. Counting itself is the store's
// (store.Store.Count), so that it is one atomic operation on any driver.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// Key length bounds, as API Gateway: alphanumeric, 20 to 128 characters.
const (
	MinLen = 20
	MaxLen = 128
)

// GenLen is the length of keys Generate makes: 40 characters of 62 symbols,
// about 238 bits, far beyond guessing, and the length API Gateway's own
// generated keys have.
const GenLen = 40

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Valid reports whether key has API Gateway's key format: 20–128 ASCII
// letters and digits. A request whose key fails it is treated exactly like
// one with an unknown key (403 Forbidden), without hashing or looking it up.
// The check stops at the first bad byte; that reveals nothing about any
// configured key.
func Valid(key string) bool {
	if len(key) < MinLen || len(key) > MaxLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// Hash is the SHA-256 digest of key: what config stores (`sha256:`) and
// what the gateway looks up, so plain keys never sit in memory longer than
// a request.
//
// Keys up to MaxLen bytes (every Valid key) hash without allocating: they
// are copied to a stack buffer, where a plain []byte(key) conversion would
// allocate for keys over 32 bytes.
func Hash(key string) [32]byte {
	if len(key) <= MaxLen {
		var buf [MaxLen]byte
		n := copy(buf[:], key)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(key))
}

// Equal compares two digests in constant time. A map keyed by digest is
// equally safe (the digest of a guess reveals nothing); use Equal wherever
// digests are compared directly.
func Equal(a, b [32]byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// ParseDigest reads a digest written as 64 hex digits (either case), the
// form config's `sha256:` holds.
func ParseDigest(s string) ([32]byte, error) {
	var d [32]byte
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("sha256 digest: want 64 hex digits, got %d characters", len(s))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return [32]byte{}, fmt.Errorf("sha256 digest: %w", err)
	}
	return d, nil
}

// FormatDigest writes d as 64 lower-case hex digits, for config snippets.
func FormatDigest(d [32]byte) string { return hex.EncodeToString(d[:]) }

// Generate returns a fresh random key of GenLen alphanumeric characters
// from crypto/rand, for `drawbridge keys create`. Bytes are drawn by
// rejection sampling (only values below 248 = 4×62 are used), so every
// character is uniform; a plain modulo would favour the first 8 symbols.
// crypto/rand.Read does not fail (since Go 1.24 it crashes the program
// instead), so neither does Generate.
func Generate() string {
	out := make([]byte, 0, GenLen)
	var buf [64]byte
	for len(out) < GenLen {
		rand.Read(buf[:])
		for _, b := range buf {
			if b < 248 && len(out) < GenLen {
				out = append(out, alphabet[b%62])
			}
		}
	}
	return string(out)
}
