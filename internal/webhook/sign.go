package webhook

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SignSpec configures a Signer: drawbridge's own signature on what it
// sends (delivery.sign), so a backend can check a delivery made long after
// the provider signed it.
type SignSpec struct {
	// Scheme is standard (Standard Webhooks) or hmac.
	Scheme string
	// Secret signs. standard: "whsec_<base64>" (the prefix optional, the
	// rest base64), as the Standard Webhooks libraries read it; hmac: the
	// bytes as they are.
	Secret []byte
	// Header, Algorithm, Encoding and Prefix: hmac only, as in Spec.
	Header, Algorithm, Encoding, Prefix string
}

// Signer adds a signature to an outgoing request. Build it with NewSigner;
// it is safe for concurrent use.
type Signer struct {
	standard bool
	key      []byte
	newHash  func() hash.Hash
	enc      encoding
	prefix   string
	header   string // canonical
}

// NewSigner validates s and builds its Signer; errors name the field at
// fault, never secret bytes.
func NewSigner(s SignSpec) (*Signer, error) {
	spec := Spec{Secrets: [][]byte{s.Secret}}
	switch strings.ToLower(s.Scheme) {
	case "standard":
		spec.Provider = "standard"
	case "hmac":
		spec.Provider, spec.Header, spec.Algorithm, spec.Encoding, spec.Prefix = "hmac", s.Header, s.Algorithm, s.Encoding, s.Prefix
	default:
		return nil, errors.New("webhook: sign: unknown scheme " + quote(s.Scheme) + " (want standard or hmac)")
	}
	// The verifier's checks are the signer's: what one signs, the other
	// (and any backend configured alike) verifies.
	v, err := New(spec)
	if err != nil {
		return nil, errors.New(strings.Replace(err.Error(), "webhook: ", "webhook: sign: ", 1))
	}
	return &Signer{standard: v.kind == standard, key: v.keys[0], newHash: v.newHash, enc: v.enc, prefix: v.prefix, header: v.sig.key}, nil
}

// Sign sets the signature headers on h for body at now. standard sets
// webhook-id (id), webhook-timestamp and webhook-signature ("v1," and the
// base64 HMAC-SHA256 of "id.timestamp.body"), replacing any a provider
// sent; hmac sets its header to prefix + the encoded HMAC of the body.
// Every other header is left as it is, the provider's signature included.
func (s *Signer) Sign(h http.Header, id string, body []byte, now time.Time) {
	mac := hmac.New(s.newHash, s.key)
	if !s.standard {
		mac.Write(body)
		h[s.header] = []string{s.prefix + s.encode(mac.Sum(nil))}
		return
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	h["Webhook-Id"] = []string{id}
	h["Webhook-Timestamp"] = []string{ts}
	h["Webhook-Signature"] = []string{"v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))}
}

func (s *Signer) encode(sum []byte) string {
	if s.enc == base64Enc {
		return base64.StdEncoding.EncodeToString(sum)
	}
	return hex.EncodeToString(sum)
}
