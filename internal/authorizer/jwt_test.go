package authorizer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/drawbridge/drawbridge/internal/config"
)

const testIssuer = "https://issuer.example/"

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// signer is a test key and its public JWK.
type signer struct {
	kid string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func newSigner(t testing.TB, alg jose.SignatureAlgorithm, kid string) *signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &signer{kid: kid, alg: alg, key: k}
}

func (s *signer) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: s.key.Public(), KeyID: s.kid, Use: "sig"}
}

func (s *signer) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if s.kid != "" {
		opts = opts.WithHeader("kid", s.kid)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := sg.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func goodClaims() map[string]any {
	return map[string]any{"iss": testIssuer, "aud": "api", "sub": "u1", "exp": t0.Add(time.Hour).Unix(),
		"iat": t0.Add(-time.Minute).Unix(), "scope": "read write", "email": "u1@example.com", "n": 3}
}

// newTestJWT makes a JWT authorizer whose key set is preloaded with keys
// (fresh for a day), so nothing is fetched.
func newTestJWT(t testing.TB, leeway time.Duration, keys ...*signer) *JWT {
	t.Helper()
	a := &config.Authorizer{Type: config.AuthorizerJWT, Issuer: testIssuer, Audience: []string{"api", "other"},
		Leeway: config.Duration(leeway), IdentitySources: []string{config.DefaultIdentitySource}}
	j, err := NewJWT(a, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	tab := &keyTable{byKID: map[string]*jose.JSONWebKey{}, expires: t0.Add(24 * time.Hour)}
	for _, s := range keys {
		k := s.jwk()
		tab.all = append(tab.all, &k)
		if s.kid != "" {
			tab.byKID[s.kid] = &k
		}
	}
	j.keys.table.Store(tab)
	j.keys.lastTry = t0
	return j
}

func authReq(tok string, route *Route, now time.Time) *Request {
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	if route == nil {
		route = &Route{Path: "/x"}
	}
	return &Request{R: r, Route: route, Now: now}
}

func TestJWTClaims(t *testing.T) {
	rs := newSigner(t, jose.RS256, "r1")
	es := newSigner(t, jose.ES256, "e1")
	ed := newSigner(t, jose.EdDSA, "d1")
	j := newTestJWT(t, 30*time.Second, rs, es, ed)
	with := func(change func(map[string]any)) map[string]any {
		c := goodClaims()
		change(c)
		return c
	}
	cases := []struct {
		name   string
		s      *signer
		claims map[string]any
		route  *Route
		now    time.Time
		want   Outcome
	}{
		{"rs256", rs, goodClaims(), nil, t0, Allow},
		{"es256", es, goodClaims(), nil, t0, Allow},
		{"eddsa", ed, goodClaims(), nil, t0, Allow},
		{"aud list", rs, with(func(c map[string]any) { c["aud"] = []string{"x", "other"} }), nil, t0, Allow},
		{"aud foreign", rs, with(func(c map[string]any) { c["aud"] = "x" }), nil, t0, Unauthorized},
		{"client_id without aud", rs, with(func(c map[string]any) { delete(c, "aud"); c["client_id"] = "api" }), nil, t0, Allow},
		{"aud wins over client_id", rs, with(func(c map[string]any) { c["aud"] = "x"; c["client_id"] = "api" }), nil, t0, Unauthorized},
		{"iss other", rs, with(func(c map[string]any) { c["iss"] = "https://issuer.example" }), nil, t0, Unauthorized},
		{"no exp", rs, with(func(c map[string]any) { delete(c, "exp") }), nil, t0, Unauthorized},
		{"exp within leeway", rs, goodClaims(), nil, t0.Add(time.Hour + 29*time.Second), Allow},
		{"exp past leeway", rs, goodClaims(), nil, t0.Add(time.Hour + 30*time.Second), Unauthorized},
		{"nbf within leeway", rs, with(func(c map[string]any) { c["nbf"] = t0.Add(20 * time.Second).Unix() }), nil, t0, Allow},
		{"nbf future", rs, with(func(c map[string]any) { c["nbf"] = t0.Add(time.Minute).Unix() }), nil, t0, Unauthorized},
		{"iat future", rs, with(func(c map[string]any) { c["iat"] = t0.Add(time.Minute).Unix() }), nil, t0, Unauthorized},
		{"exp not a number", rs, with(func(c map[string]any) { c["exp"] = "tomorrow" }), nil, t0, Unauthorized},
		{"scope present", rs, goodClaims(), &Route{Scopes: []string{"admin", "write"}}, t0, Allow},
		{"scope missing", rs, goodClaims(), &Route{Scopes: []string{"admin"}}, t0, Forbidden},
		{"scp list", rs, with(func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{"admin"} }), &Route{Scopes: []string{"admin"}}, t0, Allow},
		{"scp string", rs, with(func(c map[string]any) { delete(c, "scope"); c["scp"] = "a admin" }), &Route{Scopes: []string{"admin"}}, t0, Allow},
		{"unknown kid", newSigner(t, jose.RS256, "nope"), goodClaims(), nil, t0, Unauthorized},
	}
	for _, c := range cases {
		d := j.Authorize(*authReq(c.s.sign(t, c.claims), c.route, c.now))
		if d.Outcome != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, d.Outcome, d.Reason, c.want)
		}
	}
}

// TestJWTKeyConfusion: a token whose alg does not fit the key its kid
// names is refused, and so are none, HMAC and a key without kid when the
// set has several.
func TestJWTKeyConfusion(t *testing.T) {
	rs := newSigner(t, jose.RS256, "k")
	es := newSigner(t, jose.ES256, "k") // same kid, other key type
	j := newTestJWT(t, 0, rs)
	if d := j.Authorize(*authReq(es.sign(t, goodClaims()), nil, t0)); d.Outcome != Unauthorized {
		t.Fatalf("ES256 token against an RSA key: %v", d.Outcome)
	}
	tok := rs.sign(t, goodClaims())
	p := strings.Split(tok, ".")
	for _, h := range []string{`{"alg":"none","kid":"k"}`, `{"alg":"HS256","kid":"k"}`, `{"alg":"RS384","kid":"k"}`, `{"alg":"PS256","kid":"k"}`} {
		forged := b64(h) + "." + p[1] + "." + p[2]
		if d := j.Authorize(*authReq(forged, nil, t0)); d.Outcome != Unauthorized {
			t.Errorf("header %s: %v", h, d.Outcome)
		}
	}
	nokid := newSigner(t, jose.RS256, "")
	two := newTestJWT(t, 0, nokid, newSigner(t, jose.RS256, "x"))
	if d := two.Authorize(*authReq(nokid.sign(t, goodClaims()), nil, t0)); d.Outcome != Unauthorized {
		t.Fatalf("token without kid, two keys: %v", d.Outcome)
	}
	one := newTestJWT(t, 0, nokid)
	if d := one.Authorize(*authReq(nokid.sign(t, goodClaims()), nil, t0)); d.Outcome != Allow {
		t.Fatalf("token without kid, one key: %v %s", d.Outcome, d.Reason)
	}
}

func TestJWTHeaders(t *testing.T) {
	rs := newSigner(t, jose.RS256, "r1")
	j := newTestJWT(t, 0, rs)
	c := goodClaims()
	c["bad"] = "a\r\nb"
	route := NewRoute(&config.Route{Path: "/x", AuthorizerHeaders: map[string]string{"x-user": "sub", "X-N": "n", "X-Bad": "bad", "X-None": "none"}})
	d := j.Authorize(*authReq(rs.sign(t, c), route, t0))
	got := fmt.Sprint(d.Headers)
	if d.Outcome != Allow || got != "[{X-N 3} {X-User u1}]" {
		t.Fatalf("headers %s (%v %s)", got, d.Outcome, d.Reason)
	}
	// Without "Bearer " the whole value is the token, as API Gateway reads it.
	r := authReq("", nil, t0)
	r.R.Header.Set("Authorization", rs.sign(t, goodClaims()))
	if d := j.Authorize(*r); d.Outcome != Allow {
		t.Fatalf("token without Bearer: %v %s", d.Outcome, d.Reason)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// jwksServer serves a key set and counts fetches; fail makes it answer 503.
type jwksServer struct {
	*httptest.Server
	keys    atomic.Pointer[[]jose.JSONWebKey]
	fetches atomic.Int32
	fail    atomic.Bool
	cc      string
}

func newJWKSServer(t *testing.T, cc string, keys ...*signer) *jwksServer {
	s := &jwksServer{cc: cc}
	s.set(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/openid-configuration" {
			json.NewEncoder(w).Encode(map[string]string{"issuer": s.URL + "/", "jwks_uri": s.URL + "/keys"})
			return
		}
		s.fetches.Add(1)
		if s.fail.Load() {
			http.Error(w, "down", 503)
			return
		}
		if s.cc != "" {
			w.Header().Set("Cache-Control", s.cc)
		}
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: *s.keys.Load()})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...*signer) {
	var ks []jose.JSONWebKey
	for _, k := range keys {
		ks = append(ks, k.jwk())
	}
	s.keys.Store(&ks)
}

// jwksIssuer is a JWT authorizer of an issuer whose key set (served with
// Cache-Control cc) holds served only, and good tokens signed by served
// and by other.
func jwksIssuer(t *testing.T, cc string, served, other *signer) (srv *jwksServer, j *JWT, tok1, tok2 string) {
	t.Helper()
	srv = newJWKSServer(t, cc, served)
	iss := srv.URL + "/"
	a := &config.Authorizer{Type: config.AuthorizerJWT, Issuer: iss, Audience: []string{"api"}, IdentitySources: []string{config.DefaultIdentitySource}}
	j, err := NewJWT(a, newClient(nil, jwksTimeout))
	if err != nil {
		t.Fatal(err)
	}
	claims := goodClaims()
	claims["iss"] = iss
	return srv, j, served.sign(t, claims), other.sign(t, claims)
}

// TestKeySetCaching walks the key cache through fixed instants: discovery
// then one fetch, served from memory while fresh (max-age), an unknown kid
// refetched at most once per interval, an expired set refetched, and the
// last good set kept while the issuer fails.
func TestKeySetCaching(t *testing.T) {
	k1, k2 := newSigner(t, jose.RS256, "k1"), newSigner(t, jose.ES256, "k2")
	srv, j, tok1, tok2 := jwksIssuer(t, "public, max-age=120", k1, k2)
	at := func(d time.Duration, tok string, want Outcome, fetches int32) {
		t.Helper()
		got := j.Authorize(*authReq(tok, nil, t0.Add(d)))
		if got.Outcome != want || srv.fetches.Load() != fetches {
			t.Fatalf("at +%s: %v (%s), %d fetches; want %v, %d", d, got.Outcome, got.Reason, srv.fetches.Load(), want, fetches)
		}
	}
	at(0, tok1, Allow, 1)
	at(time.Second, tok1, Allow, 1)              // fresh: memory
	srv.set(k1, k2)                              // rotation: k2 added
	at(2*time.Second, tok2, Unauthorized, 1)     // unknown kid, but a fetch was 2 s ago
	at(31*time.Second, tok2, Allow, 2)           // interval passed: refetched
	at(40*time.Second, "x.y.z", Unauthorized, 2) // garbage costs no fetch
	at(200*time.Second, tok1, Allow, 3)          // max-age 120 s passed: refetched
	srv.fail.Store(true)
	at(400*time.Second, tok1, Allow, 4) // expired, fetch fails: last good set
	at(401*time.Second, tok2, Allow, 4) // and no fetch again within the interval
	at(500*time.Second, tok1, Allow, 5) // one attempt per interval while down
	srv.set(k2)
	srv.fail.Store(false)
	at(600*time.Second, tok1, Unauthorized, 6) // the issuer dropped k1: gone
}

func TestCacheTTL(t *testing.T) {
	cases := []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{}, defaultKeyTTL},
		{http.Header{"Cache-Control": {"public, max-age=3600"}}, time.Hour},
		{http.Header{"Cache-Control": {"max-age=5"}}, minKeyTTL},
		{http.Header{"Cache-Control": {"max-age=99999999"}}, maxKeyTTL},
		{http.Header{"Cache-Control": {"no-store"}}, minKeyTTL},
		{http.Header{"Expires": {t0.Add(2 * time.Hour).Format(http.TimeFormat)}}, 2 * time.Hour},
	}
	for _, c := range cases {
		if got := cacheTTL(c.h, t0); got != c.want {
			t.Errorf("%v: %s, want %s", c.h, got, c.want)
		}
	}
}

func TestParseJWKSSkips(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ok := newSigner(t, jose.RS256, "ok")
	keys := []any{
		map[string]string{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
		jose.JSONWebKey{Key: small.Public(), KeyID: "small"},
		jose.JSONWebKey{Key: ok.key.Public(), KeyID: "enc", Use: "enc"},
		map[string]string{"kty": "weird"},
		ok.jwk(),
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	tab, err := parseJWKS(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.all) != 1 || tab.byKID["ok"] == nil {
		t.Fatalf("kept %d keys: %v", len(tab.all), tab.byKID)
	}
	if _, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
		t.Fatal("a set of only HMAC keys parsed")
	}
}

// TestVerifiedTokenCache: a token seen again skips the signature check
// but not the claims, and the key set being refetched without its key
// (rotation) ends its cached verification at once.
func TestVerifiedTokenCache(t *testing.T) {
	k1, k2 := newSigner(t, jose.RS256, "k1"), newSigner(t, jose.RS256, "k2")
	srv, j, tok1, tok2 := jwksIssuer(t, "max-age=3600", k1, k2)
	if d := j.Authorize(*authReq(tok1, nil, t0)); d.Outcome != Allow {
		t.Fatalf("first: %v %s", d.Outcome, d.Reason)
	}
	if len(j.verified.m) != 1 {
		t.Fatalf("verified cache holds %d tokens", len(j.verified.m))
	}
	if d := j.Authorize(*authReq(tok1, nil, t0.Add(2*time.Hour))); d.Outcome != Unauthorized {
		t.Fatalf("cached token past exp: %v", d.Outcome)
	}
	srv.set(k2) // k1 rotated out; k2's unknown kid refetches the set
	if d := j.Authorize(*authReq(tok2, nil, t0.Add(time.Minute))); d.Outcome != Allow {
		t.Fatalf("rotated: %v %s", d.Outcome, d.Reason)
	}
	if d := j.Authorize(*authReq(tok1, nil, t0.Add(time.Minute))); d.Outcome != Unauthorized {
		t.Fatalf("token of the removed key, cached before: %v", d.Outcome)
	}
}
