package authorizer

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key fetching, as API Gateway's JWT authorizer does it: each fetch (the
// discovery document, the JWKS) times out after 1.5 s and a JWKS is at
// most 150,000 bytes.
const (
	jwksTimeout  = 1500 * time.Millisecond
	maxJWKSBytes = 150_000
	// minRefetch is the least time between two fetches: a token with an
	// unknown kid, or an issuer that is down, costs at most one fetch per
	// interval, so forged kids cannot make drawbridge hammer the issuer.
	minRefetch = 30 * time.Second
	// defaultKeyTTL keeps a JWKS whose answer has no caching headers;
	// minKeyTTL and maxKeyTTL bound what the headers may say.
	defaultKeyTTL = 10 * time.Minute
	minKeyTTL     = time.Minute
	maxKeyTTL     = 24 * time.Hour
	minRSABits    = 2048
)

// keyTable is one fetched JWKS: immutable once published.
type keyTable struct {
	byKID   map[string]*jose.JSONWebKey
	all     []*jose.JSONWebKey // for tokens without kid
	expires time.Time          // fresh until then (its Cache-Control)
	fetched time.Time
}

// keySet is an issuer's signing keys, fetched on first use and kept: a
// fresh set serves from memory without a lock; an expired one, or a kid it
// does not hold, triggers one fetch (at most one per minRefetch); a failed
// fetch keeps the last good set, so an issuer that is down does not lock
// out tokens signed with keys already known.
type keySet struct {
	issuer  string
	jwksURI string // configured; else discovered and then kept
	client  *http.Client

	table atomic.Pointer[keyTable]
	mu    sync.Mutex // one fetch at a time
	// lastTry is when a fetch was last attempted (under mu).
	lastTry time.Time
	lastErr error
	found   string // jwks_uri from discovery (under mu)
}

// lookup returns the key for kid (any key of the set when kid is empty and
// the set has one) as of now, fetching when needed. fetched reports that
// this call fetched the set.
func (s *keySet) lookup(ctx context.Context, kid string, now time.Time) (k *jose.JSONWebKey, fetched bool, err error) {
	if t := s.table.Load(); t != nil && now.Before(t.expires) {
		if k := t.find(kid); k != nil {
			return k, false, nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.table.Load()
	if t != nil && now.Before(t.expires) {
		if k := t.find(kid); k != nil { // another call just fetched it
			return k, false, nil
		}
	}
	if s.lastTry.IsZero() || now.Sub(s.lastTry) >= minRefetch || now.Before(s.lastTry) {
		s.lastTry = now
		nt, err := s.fetch(ctx, now)
		s.lastErr = err
		if err == nil {
			s.table.Store(nt)
			t, fetched = nt, true
		}
	}
	if t == nil {
		if s.lastErr != nil {
			return nil, fetched, fmt.Errorf("no signing keys: %w", s.lastErr)
		}
		return nil, fetched, errors.New("no signing keys yet")
	}
	if k := t.find(kid); k != nil {
		// Possibly from an expired set: the last good keys, kept while
		// the issuer cannot be reached.
		return k, fetched, nil
	}
	if kid == "" {
		return nil, fetched, errors.New("token has no kid and the key set has more than one key")
	}
	return nil, fetched, fmt.Errorf("no key with kid %q", kid)
}

func (t *keyTable) find(kid string) *jose.JSONWebKey {
	if kid != "" {
		return t.byKID[kid]
	}
	if len(t.all) == 1 {
		return t.all[0]
	}
	return nil
}

// fetch reads the JWKS (after discovery when no jwks_uri is configured).
func (s *keySet) fetch(ctx context.Context, now time.Time) (*keyTable, error) {
	uri := s.jwksURI
	if uri == "" {
		uri = s.found
	}
	if uri == "" {
		u, err := s.discover(ctx)
		if err != nil {
			return nil, err
		}
		s.found, uri = u, u
	}
	body, h, err := s.get(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", uri, err)
	}
	t, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", uri, err)
	}
	t.fetched = now
	t.expires = now.Add(cacheTTL(h, now))
	return t, nil
}

// discover reads the issuer's OpenID configuration for its jwks_uri. The
// document's issuer must be the configured one (OpenID Connect Discovery
// 1.0, section 4.3), so a document served for another issuer is refused.
func (s *keySet) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(s.issuer, "/") + "/.well-known/openid-configuration"
	body, _, err := s.get(ctx, u)
	if err != nil {
		return "", fmt.Errorf("discovery %s: %w", u, err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery %s: %w", u, err)
	}
	if doc.Issuer != s.issuer {
		return "", fmt.Errorf("discovery %s: issuer %q is not the configured %q", u, doc.Issuer, s.issuer)
	}
	if msg := checkURL(doc.JWKSURI); msg != "" {
		return "", fmt.Errorf("discovery %s: jwks_uri %q: %s", u, doc.JWKSURI, msg)
	}
	return doc.JWKSURI, nil
}

func checkURL(s string) string {
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return "not an http(s) URL"
	}
	return ""
}

// get fetches u within jwksTimeout and maxJWKSBytes.
func (s *keySet) get(ctx context.Context, u string) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	b, err := readLimited(resp.Body, maxJWKSBytes)
	if err != nil {
		return nil, nil, err
	}
	return b, resp.Header, nil
}

// cacheTTL is how long a JWKS answer may be kept: Cache-Control max-age
// (no-cache and no-store: the least), else Expires, else defaultKeyTTL,
// bounded by minKeyTTL and maxKeyTTL. The floor keeps an issuer that
// forbids caching from costing a fetch per request; rotation is still
// followed at once through the unknown-kid refetch.
func cacheTTL(h http.Header, now time.Time) time.Duration {
	ttl := defaultKeyTTL
	cc := h.Get("Cache-Control")
	found := false
	for d := range strings.SplitSeq(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-cache" || d == "no-store":
			return minKeyTTL
		case strings.HasPrefix(d, "max-age="):
			if n, err := strconv.ParseInt(d[len("max-age="):], 10, 64); err == nil && n >= 0 {
				ttl, found = time.Duration(min(n, int64(maxKeyTTL/time.Second)))*time.Second, true
			}
		}
	}
	if !found {
		if e, err := http.ParseTime(h.Get("Expires")); err == nil {
			ttl = e.Sub(now)
		}
	}
	return min(max(ttl, minKeyTTL), maxKeyTTL)
}

// parseJWKS keeps the set's public signing keys drawbridge verifies with:
// RSA of at least 2048 bits, ECDSA P-256, Ed25519. Keys for encryption,
// of other types or that do not parse are skipped one by one, so one odd
// key does not make the whole set unusable.
func parseJWKS(body []byte) (*keyTable, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, err
	}
	t := &keyTable{byKID: map[string]*jose.JSONWebKey{}}
	for _, r := range raw.Keys {
		k := new(jose.JSONWebKey)
		if err := k.UnmarshalJSON(r); err != nil || !k.Valid() || !k.IsPublic() {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !usable(k) {
			continue
		}
		t.all = append(t.all, k)
		if k.KeyID != "" {
			t.byKID[k.KeyID] = k
		}
	}
	if len(t.all) == 0 {
		return nil, errors.New("no usable signing key (RSA ≥ 2048 bits, ECDSA P-256 or Ed25519)")
	}
	return t, nil
}

func usable(k *jose.JSONWebKey) bool {
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		return pk.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return pk.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return true
	}
	return false
}

// algFits reports whether alg is the algorithm of key k: an RSA key
// verifies RS256 only, a P-256 key ES256, an Ed25519 key EdDSA; a key that
// names its own alg must name this one.
func algFits(k *jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch k.Key.(type) {
	case *rsa.PublicKey:
		return alg == string(jose.RS256)
	case *ecdsa.PublicKey:
		return alg == string(jose.ES256)
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}
