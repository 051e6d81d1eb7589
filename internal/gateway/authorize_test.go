package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/drawbridge/drawbridge/internal/authorizer/oidcop"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
)

// testClock is the guards' clock, moved by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// authzGateway builds yaml ({T}: the backend, {ISS}: the issuer, {AZ}:
// an authorizer URL) with the egress guard the config's defaults give,
// so every key and authorizer fetch goes through it as when serving.
func authzGateway(t *testing.T, yaml string, repl map[string]string, clock *testClock) *httptest.Server {
	t.Helper()
	for k, v := range repl {
		yaml = strings.ReplaceAll(yaml, k, v)
	}
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	guard, err := egress.Compile(cfg, egress.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{Egress: guard}
	if clock != nil {
		deps.Now = clock.now
	}
	g, _ := buildFor(t, yaml, repl["{T}"], deps, nil)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv
}

func bearer(t *testing.T, url, tok string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func wantStatus(t *testing.T, what string, resp *http.Response, body []byte, status int, wantBody string) {
	t.Helper()
	if resp.StatusCode != status || (wantBody != "" && string(body) != wantBody) {
		t.Fatalf("%s: %d %s, want %d %s", what, resp.StatusCode, body, status, wantBody)
	}
}

// jwtPart decodes one part of a compact JWS.
func jwtPart(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func seg(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

const jwtYAML = `
api: http
authorizers:
  op:
    type: jwt
    issuer: {ISS}
    audience: [web]
  elsewhere:
    type: jwt
    issuer: {ISS}
    audience: [another-api]
routes:
  - path: /api
    target: {T}
    authorizer: op
    authorizer_headers: {X-User: sub, X-Issuer: iss, X-Missing: no_such_claim}
  - path: /admin
    target: {T}
    authorizer: op
    scopes: [admin]
  - path: /other
    target: {T}
    authorizer: elsewhere
`

// TestJWTAuthorizerRealIssuer proves the JWT authorizer against a real
// OpenID Connect provider (internal/authorizer/oidcop): its tokens, its
// discovery document and its JWKS, fetched through the egress guard.
func TestJWTAuthorizerRealIssuer(t *testing.T) {
	op := oidcop.Start(t)
	be := newBackend(t, nil)
	clock := &testClock{t: time.Now()}
	srv := authzGateway(t, jwtYAML, map[string]string{"{T}": be.URL, "{ISS}": op.Issuer}, clock)
	tok := op.Token(t)
	claims := jwtPart(t, tok, 1)

	// The issuer's token, its issuer and audience: through, with the
	// claims the route names as headers (a client's own X-User replaced,
	// an absent claim's header removed).
	resp, body := bearer(t, srv.URL+"/api", tok, "X-User", "spoofed", "X-Missing", "spoofed")
	wantStatus(t, "valid token", resp, body, 200, "ok")
	got := be.last(t)
	if got.Header.Get("X-User") != claims["sub"] || got.Header.Get("X-Issuer") != op.Issuer || got.Header["X-Missing"] != nil {
		t.Fatalf("backend headers: X-User %q X-Issuer %q X-Missing %q; want sub %q", got.Header.Get("X-User"), got.Header.Get("X-Issuer"), got.Header["X-Missing"], claims["sub"])
	}

	const unauthorized = `{"message":"Unauthorized"}`
	resp, body = bearer(t, srv.URL+"/api", "")
	wantStatus(t, "no token", resp, body, 401, unauthorized)
	if h := resp.Header.Get("Www-Authenticate"); h != "Bearer" {
		t.Fatalf("no token: WWW-Authenticate %q, want Bearer", h)
	}

	resp, body = bearer(t, srv.URL+"/other", tok)
	wantStatus(t, "other audience", resp, body, 401, unauthorized)
	if h := resp.Header.Get("Www-Authenticate"); h != `Bearer error="invalid_token"` {
		t.Fatalf("bad token: WWW-Authenticate %q", h)
	}

	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	if p[10] == 'A' {
		p[10] = 'B'
	} else {
		p[10] = 'A'
	}
	resp, body = bearer(t, srv.URL+"/api", parts[0]+"."+string(p)+"."+parts[2])
	wantStatus(t, "changed payload byte", resp, body, 401, unauthorized)

	hdr := jwtPart(t, tok, 0)
	none := seg(map[string]any{"alg": "none", "kid": hdr["kid"]}) + "." + parts[1] + "."
	resp, body = bearer(t, srv.URL+"/api", none)
	wantStatus(t, "alg none", resp, body, 401, unauthorized)

	// HMAC keyed with the issuer's public key, in the PEM form a
	// confused verifier would use as the secret.
	jwks, err := http.Get(op.Issuer + "keys")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	err = json.NewDecoder(jwks.Body).Decode(&set)
	jwks.Body.Close()
	if err != nil || len(set.Keys) == 0 {
		t.Fatalf("op keys: %v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(set.Keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for _, secret := range [][]byte{pub, der} {
		signing := seg(map[string]any{"alg": "HS256", "kid": hdr["kid"], "typ": "JWT"}) + "." + parts[1]
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(signing))
		resp, body = bearer(t, srv.URL+"/api", signing+"."+base64.RawURLEncoding.EncodeToString(mac.Sum(nil)))
		wantStatus(t, "HS256 with the public key", resp, body, 401, unauthorized)
	}

	// The provider's own token past its exp: the guards' clock moves.
	exp := time.Unix(int64(claims["exp"].(float64)), 0)
	clock.set(exp.Add(time.Second))
	resp, body = bearer(t, srv.URL+"/api", tok)
	wantStatus(t, "expired", resp, body, 401, unauthorized)
	clock.set(time.Now())

	resp, body = bearer(t, srv.URL+"/admin", tok)
	wantStatus(t, "missing scope", resp, body, 403, `{"message":"Forbidden"}`)
	if h := resp.Header.Get("Www-Authenticate"); h != `Bearer error="insufficient_scope", scope="admin"` {
		t.Fatalf("missing scope: WWW-Authenticate %q", h)
	}

	// Rotation: the restarted provider signs with a new key (new kid);
	// the gateway, not restarted, fetches the new set on the unknown kid
	// once the refetch interval has passed.
	op.Restart()
	tok2 := op.Token(t)
	if jwtPart(t, tok2, 0)["kid"] == hdr["kid"] {
		t.Fatal("the provider did not rotate its key")
	}
	clock.set(time.Now().Add(31 * time.Second))
	resp, body = bearer(t, srv.URL+"/api", tok2)
	wantStatus(t, "token of the rotated key", resp, body, 200, "ok")

	// Provider down: the keys fetched last keep working after the set
	// has expired and the refetch failed.
	kr, err := http.Get(op.Issuer + "keys")
	if err != nil {
		t.Fatal(err)
	}
	kr.Body.Close()
	keep := 10 * time.Minute // drawbridge's default without caching headers
	if cc := kr.Header.Get("Cache-Control"); strings.Contains(cc, "max-age=") {
		n, _ := strconv.Atoi(strings.TrimPrefix(cc[strings.Index(cc, "max-age="):], "max-age="))
		keep = max(time.Duration(n)*time.Second, time.Minute)
	}
	op.Stop()
	exp2 := time.Unix(int64(jwtPart(t, tok2, 1)["exp"].(float64)), 0)
	later := clock.now().Add(keep + time.Minute)
	if !later.Before(exp2) {
		t.Fatalf("the provider's keys are kept %s, longer than its token lives", keep)
	}
	clock.set(later)
	resp, body = bearer(t, srv.URL+"/api", tok2)
	wantStatus(t, "provider down, cached keys", resp, body, 200, "ok")
	resp, body = bearer(t, srv.URL+"/api", tok2)
	wantStatus(t, "provider still down", resp, body, 200, "ok")
}
