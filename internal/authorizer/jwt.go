package authorizer

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/drawbridge/drawbridge/internal/config"
)

// algorithms are the only signatures a JWT authorizer accepts. "none" and
// the HMAC family are absent: go-jose refuses a token whose alg is not in
// the list before looking at its signature, so neither an unsigned token
// nor one "signed" with HMAC keyed by a public key (the classic algorithm
// confusion) can pass.
var algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// JWT is a compiled JWT authorizer (HTTP API semantics, docs/authorizers.md).
type JWT struct {
	issuer    string
	audience  []string
	leeway    time.Duration
	header    string // canonical header to read the token from, or ""
	query     string // query parameter to read it from, or ""
	keys      *keySet
	challenge string // WWW-Authenticate of a bad token
	verified  tokenCache
}

// NewJWT compiles a (validated) jwt authorizer.
func NewJWT(a *config.Authorizer, client *http.Client) (*JWT, error) {
	j := &JWT{
		issuer:   a.Issuer,
		audience: a.Audience,
		leeway:   time.Duration(a.Leeway),
		keys:     &keySet{issuer: a.Issuer, jwksURI: a.JWKSURI, client: client},
	}
	kind, name, ok := config.ParseIdentitySource(a.IdentitySources[0])
	switch {
	case !ok:
		return nil, fmt.Errorf("identity source %q", a.IdentitySources[0])
	case kind == "header":
		j.header = http.CanonicalHeaderKey(name)
	case kind == "query":
		j.query = name
	default:
		return nil, fmt.Errorf("identity source %q: want a header or a query parameter", a.IdentitySources[0])
	}
	j.challenge = `Bearer error="invalid_token"`
	return j, nil
}

// Kind implements Authorizer.
func (j *JWT) Kind() string { return "jwt" }

// Close implements Authorizer.
func (j *JWT) Close() { j.keys.client.CloseIdleConnections() }

// Authorize implements Authorizer: the token must parse, be signed by a
// key of the issuer with an allowed algorithm, carry the issuer, one of
// the audiences (aud, or client_id when aud is absent), be within
// exp/nbf/iat (with the leeway), and, when the route names scopes, hold
// one of them in scope or scp.
func (j *JWT) Authorize(rq Request) Decision {
	q := &rq
	tok := j.token(q.R)
	if tok == "" {
		// RFC 6750 section 3.1: a request without credentials gets the
		// challenge without an error code.
		return Decision{Outcome: Unauthorized, Reason: "no token", Challenge: "Bearer"}
	}
	c, fetched, err := j.verify(q, tok)
	if err != nil {
		d := Decision{Outcome: Unauthorized, Reason: err.Error(), Challenge: j.challenge}
		if fetched {
			d.Reason += " (keys fetched)"
		}
		return d
	}
	if s := q.Route.Scopes; len(s) > 0 && !c.hasScope(s) {
		return Decision{Outcome: Forbidden, Reason: "token has none of the scopes " + strings.Join(s, ", "),
			Challenge: `Bearer error="insufficient_scope", scope="` + strings.Join(s, " ") + `"`}
	}
	d := Decision{Outcome: Allow}
	if q.Explain {
		d.Reason = "valid token of " + j.issuer + " for " + c.audienceText()
		if len(q.Route.Scopes) > 0 {
			d.Reason += ", scope present"
		}
		if fetched {
			d.Reason += " (keys fetched)"
		}
	}
	if len(q.Route.Headers) > 0 {
		d.Headers = c.headers(q.Route.Headers)
	}
	return d
}

// token reads the token from the identity source. From a header, a
// "Bearer " prefix (any case) is removed, as API Gateway does; without it
// the whole value is the token.
func (j *JWT) token(r *http.Request) string {
	if j.query != "" {
		return r.URL.Query().Get(j.query)
	}
	v := r.Header[j.header]
	if len(v) == 0 {
		return ""
	}
	t := strings.TrimSpace(v[0])
	if len(t) > 7 && strings.EqualFold(t[:7], "bearer ") {
		t = strings.TrimSpace(t[7:])
	}
	return t
}

// verify checks the token's signature and claims. A token whose
// signature was verified against the current, fresh key set is
// remembered (by its SHA-256) with its claims, so a client that sends the
// same token again costs a hash and the claim checks, not a signature
// verification; the claims, exp above all, are checked on every request.
func (j *JWT) verify(q *Request, tok string) (*claims, bool, error) {
	sum := tokenSum(tok)
	if t := j.keys.table.Load(); t != nil && q.Now.Before(t.expires) {
		if c := j.verified.get(sum, t); c != nil {
			return c, false, j.checkClaims(c, q.Now)
		}
	}
	jws, kid, alg, err := parseToken(tok)
	if err != nil {
		return nil, false, err
	}
	key, fetched, err := j.keys.lookup(q.R.Context(), kid, q.Now)
	if err != nil {
		return nil, fetched, err
	}
	if !algFits(key, alg) {
		return nil, fetched, fmt.Errorf("alg %s does not fit key %q", alg, kid)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, fetched, errors.New("bad signature")
	}
	c, err := decodeClaims(payload)
	if err != nil {
		return nil, fetched, err
	}
	if t := j.keys.table.Load(); t != nil && t.find(kid) == key {
		j.verified.put(sum, t, c)
	}
	return c, fetched, j.checkClaims(c, q.Now)
}

// tokenSum hashes a token; one of usual size is copied on the stack, not
// the heap, to hash it.
func tokenSum(tok string) [sha256.Size]byte {
	var buf [2048]byte
	if len(tok) <= len(buf) {
		n := copy(buf[:], tok)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(tok))
}

// maxVerified bounds the verified-token cache; when full it starts over,
// so distinct tokens cost verifications, never memory.
const maxVerified = 10_000

// tokenCache remembers tokens whose signature was verified, each with the
// key set that verified it: a refetched set (rotation, expiry) makes the
// entries of the old one miss, so a removed key stops counting at once.
type tokenCache struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	c     *claims
	table *keyTable
}

func (tc *tokenCache) get(sum [sha256.Size]byte, t *keyTable) *claims {
	tc.mu.RLock()
	e, ok := tc.m[sum]
	tc.mu.RUnlock()
	if !ok || e.table != t {
		return nil
	}
	return e.c
}

func (tc *tokenCache) put(sum [sha256.Size]byte, t *keyTable, c *claims) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.m == nil || len(tc.m) >= maxVerified {
		tc.m = make(map[[sha256.Size]byte]verifiedToken)
	}
	tc.m[sum] = verifiedToken{c: c, table: t}
}

func (tc *tokenCache) clear() {
	tc.mu.Lock()
	tc.m = nil
	tc.mu.Unlock()
}

// maxTokenBytes bounds what is parsed: a header this size is already far
// beyond any real token.
const maxTokenBytes = 16 << 10

// parseToken parses a compact JWS and returns its key id and algorithm.
// Only the allowed algorithms parse; crit headers are refused (go-jose
// refuses those it does not know).
func parseToken(tok string) (*jose.JSONWebSignature, string, string, error) {
	if len(tok) > maxTokenBytes {
		return nil, "", "", errors.New("token too long")
	}
	if strings.Count(tok, ".") != 2 {
		return nil, "", "", errors.New("not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(tok, algorithms)
	if err != nil {
		return nil, "", "", fmt.Errorf("bad token: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", "", errors.New("bad token: want one signature")
	}
	h := jws.Signatures[0].Header
	return jws, h.KeyID, h.Algorithm, nil
}

// claims are the registered claims a JWT authorizer checks; raw keeps
// the payload for authorizer_headers.
type claims struct {
	Iss      string      `json:"iss"`
	Aud      stringList  `json:"aud"`
	ClientID string      `json:"client_id"`
	Scope    string      `json:"scope"`
	Scp      stringList  `json:"scp"`
	Exp      numericDate `json:"exp"`
	Nbf      numericDate `json:"nbf"`
	Iat      numericDate `json:"iat"`

	raw []byte
}

func decodeClaims(payload []byte) (*claims, error) {
	c := &claims{raw: payload}
	if err := json.Unmarshal(payload, c); err != nil {
		return nil, fmt.Errorf("bad claims: %v", err)
	}
	return c, nil
}

// checkClaims applies HTTP API's rules: iss equal, aud (else client_id)
// one of the audiences, exp present and in the future, nbf and iat not in
// the future, all with the leeway.
func (j *JWT) checkClaims(c *claims, now time.Time) error {
	if c.Iss != j.issuer {
		return fmt.Errorf("iss %q is not %s", c.Iss, j.issuer)
	}
	aud := []string(c.Aud)
	if len(aud) == 0 && c.ClientID != "" {
		aud = []string{c.ClientID}
	}
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(j.audience, a) }) {
		return fmt.Errorf("audience %q is not one of %s", aud, strings.Join(j.audience, ", "))
	}
	if !c.Exp.set {
		return errors.New("no exp")
	}
	if !now.Before(c.Exp.t.Add(j.leeway)) {
		return fmt.Errorf("expired at %s", c.Exp.t.UTC().Format(time.RFC3339))
	}
	if c.Nbf.set && now.Add(j.leeway).Before(c.Nbf.t) {
		return fmt.Errorf("not valid before %s", c.Nbf.t.UTC().Format(time.RFC3339))
	}
	if c.Iat.set && now.Add(j.leeway).Before(c.Iat.t) {
		return fmt.Errorf("issued in the future (%s)", c.Iat.t.UTC().Format(time.RFC3339))
	}
	return nil
}

// hasScope reports whether the token holds one of want, in scope (space
// separated) or scp (a list or a space-separated string).
func (c *claims) hasScope(want []string) bool {
	for s := range strings.FieldsSeq(c.Scope) {
		if slices.Contains(want, s) {
			return true
		}
	}
	for _, s := range c.Scp {
		for f := range strings.FieldsSeq(s) {
			if slices.Contains(want, f) {
				return true
			}
		}
	}
	return false
}

func (c *claims) audienceText() string {
	if len(c.Aud) > 0 {
		return "aud " + strings.Join(c.Aud, ",")
	}
	return "client_id " + c.ClientID
}

// headers fills authorizer_headers from the claims: a string as it is,
// anything else as its JSON text; absent claims and values a header cannot
// carry (control characters) are left out.
func (c *claims) headers(want []HeaderFrom) []Header {
	var m map[string]json.RawMessage
	if json.Unmarshal(c.raw, &m) != nil {
		return nil
	}
	out := make([]Header, 0, len(want))
	for _, w := range want {
		v, ok := m[w.From]
		if !ok {
			continue
		}
		if s, ok := headerValue(v); ok {
			out = append(out, Header{Name: w.Header, Value: s})
		}
	}
	return out
}

// headerValue turns a JSON value into a header value.
func headerValue(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	s := string(v)
	if len(v) > 0 && v[0] == '"' {
		if json.Unmarshal(v, &s) != nil {
			return "", false
		}
	}
	if s == "null" {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 && b != '\t' || b == 0x7f {
			return "", false
		}
	}
	return s, true
}

// stringList is a claim that may be a string or a list of strings (aud,
// scp).
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = stringList{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = ss
	return nil
}

// numericDate is a JWT NumericDate: seconds since the epoch, possibly
// fractional (RFC 7519 section 2).
type numericDate struct {
	t   time.Time
	set bool
}

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return errors.New("bad NumericDate")
	}
	sec, frac := math.Modf(f)
	d.t, d.set = time.Unix(int64(sec), int64(frac*1e9)), true
	return nil
}
