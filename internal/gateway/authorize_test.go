package gateway

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
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
	"sync/atomic"
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

// authzService is a small request authorizer: it records every event and
// answers by the Authorization header: "allow*" isAuthorized true with a
// context, "deny" false, "policy" an IAM policy allowing this ARN only,
// "slow" never (until the caller gives up).
type authzService struct {
	*httptest.Server
	mu     sync.Mutex
	events []map[string]any
}

func newAuthzService(t *testing.T) *authzService {
	s := &authzService{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad event", 400)
			return
		}
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.mu.Unlock()
		id, _ := ev["identitySource"].([]any)
		who := ""
		if len(id) > 0 {
			who, _ = id[0].(string)
		}
		switch {
		case strings.HasPrefix(who, "allow"):
			w.Write([]byte(`{"isAuthorized": true, "context": {"user": "alice", "n": 7, "ok": true}}`))
		case who == "policy":
			arn, _ := ev["routeArn"].(string)
			w.Write([]byte(`{"principalId": "bob", "policyDocument": {"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "` + arn + `"}]}, "context": {"user": "bob"}}`))
		case who == "slow":
			<-r.Context().Done()
		default:
			w.Write([]byte(`{"isAuthorized": false}`))
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *authzService) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func (s *authzService) last() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events[len(s.events)-1]
}

const requestYAML = `
api: http
authorizers:
  checker:
    type: request
    url: {AZ}/authorize
    identity_sources: ["$request.header.Authorization"]
    ttl: 60s
    timeout: 300ms
  closed:
    type: request
    url: {AZ}/authorize
    identity_sources: ["$request.header.Authorization"]
    ttl: 0
    timeout: 300ms
    on_error: 503
routes:
  - path: /r
    target: {T}
    authorizer: checker
    authorizer_headers: {X-User: user, X-N: n}
  - path: /closed
    target: {T}
    authorizer: closed
`

// TestRequestAuthorizer: a request authorizer sees the identity sources
// in an HTTP API authorizer event, its deny is 403, its allow passes with
// its context as headers, a 60 s TTL makes 100 requests of one identity
// one call, and a call that times out answers on_error's status.
func TestRequestAuthorizer(t *testing.T) {
	az := newAuthzService(t)
	be := newBackend(t, nil)
	clock := &testClock{t: time.Now()}
	srv := authzGateway(t, requestYAML, map[string]string{"{T}": be.URL, "{AZ}": az.URL}, clock)
	auth := func(path, who string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path+"?q=1", nil)
		if who != "" {
			req.Header.Set("Authorization", who)
		}
		req.Header.Set("X-User", "spoofed")
		return do(t, req)
	}

	resp, body := auth("/r", "")
	wantStatus(t, "identity source missing", resp, body, 401, `{"message":"Unauthorized"}`)
	if az.calls() != 0 {
		t.Fatalf("a request without its identity source called the authorizer")
	}

	resp, body = auth("/r", "deny")
	wantStatus(t, "isAuthorized false", resp, body, 403, `{"message":"Forbidden"}`)
	ev := az.last()
	rc, _ := ev["requestContext"].(map[string]any)
	hp, _ := rc["http"].(map[string]any)
	if ev["type"] != "REQUEST" || ev["version"] != "2.0" || ev["routeKey"] != "GET /r" || ev["rawQueryString"] != "q=1" ||
		hp["sourceIp"] != "127.0.0.1" || hp["method"] != "GET" ||
		ev["routeArn"] != "arn:aws:execute-api:us-east-1:123456789012:drawbridge/prod/GET/r" {
		t.Fatalf("event: %v", ev)
	}
	if hs, _ := ev["headers"].(map[string]any); hs["authorization"] != "deny" {
		t.Fatalf("event headers: %v", ev["headers"])
	}

	n := az.calls()
	resp, body = auth("/r", "allow")
	wantStatus(t, "isAuthorized true", resp, body, 200, "ok")
	got := be.last(t)
	if got.Header.Get("X-User") != "alice" || got.Header.Get("X-N") != "7" {
		t.Fatalf("backend: X-User %q X-N %q, want alice 7", got.Header.Get("X-User"), got.Header.Get("X-N"))
	}
	for range 99 {
		resp, body = auth("/r", "allow")
		wantStatus(t, "cached allow", resp, body, 200, "ok")
	}
	if c := az.calls() - n; c != 1 {
		t.Fatalf("100 requests of one identity under ttl 60s made %d authorizer calls, want 1", c)
	}
	clock.set(clock.now().Add(61 * time.Second))
	auth("/r", "allow")
	if c := az.calls() - n; c != 2 {
		t.Fatalf("after the ttl: %d calls, want 2", c)
	}

	resp, body = auth("/r", "policy")
	wantStatus(t, "IAM policy allowing the ARN", resp, body, 200, "ok")
	if got := be.last(t); got.Header.Get("X-User") != "bob" {
		t.Fatalf("policy context: X-User %q", got.Header.Get("X-User"))
	}

	start := time.Now()
	resp, body = auth("/r", "slow")
	wantStatus(t, "authorizer timeout (on_error 500)", resp, body, 500, `{"message":"Internal Server Error"}`)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the timeout took %s", el)
	}
	resp, body = auth("/closed", "slow")
	wantStatus(t, "authorizer timeout (on_error 503)", resp, body, 503, `{"message":"Service Unavailable"}`)
	az.Close()
	resp, body = auth("/closed", "allow")
	wantStatus(t, "authorizer down (on_error 503)", resp, body, 503, `{"message":"Service Unavailable"}`)
}

// TestAuthorizerExplain: explain shows the authorizer step after the
// resource policy and before the API key, with the claims checked, the
// missing scope, and whether a request authorizer's result was cached.
func TestAuthorizerExplain(t *testing.T) {
	az := newAuthzService(t)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: rk.Public(), KeyID: "k", Use: "sig"}}})
	}))
	defer jwks.Close()
	yaml := `
api: http
authorizers:
  corp: {type: jwt, issuer: "https://login.example/", audience: [api], jwks_uri: "` + jwks.URL + `"}
  checker: {type: request, url: "` + az.URL + `", identity_sources: ["$request.header.Authorization"]}
routes:
  - {path: /jwt, target: "http://127.0.0.1:1/", authorizer: corp, scopes: [read]}
  - {path: /req, target: "http://127.0.0.1:1/", authorizer: checker}
`
	g, _ := buildFor(t, yaml, "", Deps{}, nil)
	sign := func(claims map[string]any) string {
		sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: rk}, (&jose.SignerOptions{}).WithHeader("kid", "k"))
		b, _ := json.Marshal(claims)
		obj, _ := sg.Sign(b)
		tok, _ := obj.CompactSerialize()
		return tok
	}
	explain := func(path, auth string) Explanation {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = "192.0.2.1:1000"
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return g.Explain(r, nil)
	}
	step := func(e Explanation) string {
		for i, l := range e.Lines {
			if strings.HasPrefix(l, "authorizer: ") {
				if !strings.HasPrefix(e.Lines[i-1], "resource_policy: ") || e.Status == 0 && !strings.HasPrefix(e.Lines[i+1], "api_key: ") {
					t.Errorf("authorizer step out of place: %q", e.Lines)
				}
				return l
			}
		}
		t.Fatalf("no authorizer line: %q", e.Lines)
		return ""
	}
	exp := time.Now().Add(time.Hour).Unix()
	e := explain("/jwt", "Bearer "+sign(map[string]any{"iss": "https://login.example/", "aud": "api", "exp": exp, "scope": "read"}))
	if l := step(e); l != `authorizer: allow — jwt authorizer "corp": valid token of https://login.example/ for aud api, scope present (keys fetched)` || e.Status != 0 {
		t.Fatalf("valid: %q %d", l, e.Status)
	}
	e = explain("/jwt", "Bearer "+sign(map[string]any{"iss": "https://login.example/", "aud": "api", "exp": exp}))
	if l := step(e); l != `authorizer: deny — jwt authorizer "corp": token has none of the scopes read` || e.Status != 403 {
		t.Fatalf("scope: %q %d", l, e.Status)
	}
	e = explain("/jwt", "")
	if l := step(e); l != `authorizer: deny — jwt authorizer "corp": no token` || e.Status != 401 || e.Body != `{"message":"Unauthorized"}` {
		t.Fatalf("no token: %q %d %s", l, e.Status, e.Body)
	}
	if l := step(explain("/req", "allow")); l != `authorizer: allow — request authorizer "checker": isAuthorized: true` {
		t.Fatalf("request: %q", l)
	}
	if l := step(explain("/req", "allow")); l != `authorizer: allow — request authorizer "checker": isAuthorized: true; cached result` {
		t.Fatalf("cached: %q", l)
	}
}

// TestAuthorizerEgress: authorizer calls and key fetches dial through the
// egress guard: with an egress.allow that does not list them, the
// request authorizer is never reached (500) and the JWT authorizer gets
// no keys (401).
func TestAuthorizerEgress(t *testing.T) {
	az := newAuthzService(t)
	be := newBackend(t, nil)
	var fetches atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetches.Add(1) }))
	defer jwks.Close()
	port := be.URL[strings.LastIndexByte(be.URL, ':')+1:]
	yaml := `
api: http
egress: {allow: ["127.0.0.1/32:` + port + `"]}
authorizers:
  chk: {type: request, url: "{AZ}", identity_sources: ["$request.header.Authorization"]}
  corp: {type: jwt, issuer: "https://login.example/", audience: [api], jwks_uri: "{JWKS}"}
routes:
  - {path: /r, target: "{T}", authorizer: chk}
  - {path: /j, target: "{T}", authorizer: corp}
`
	srv := authzGateway(t, yaml, map[string]string{"{T}": be.URL, "{AZ}": az.URL, "{JWKS}": jwks.URL}, nil)
	resp, body := bearer(t, srv.URL+"/r", "allow")
	wantStatus(t, "request authorizer outside egress.allow", resp, body, 500, `{"message":"Internal Server Error"}`)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: rk}, nil)
	obj, _ := sg.Sign([]byte(`{"iss":"https://login.example/","aud":"api","exp":9999999999}`))
	tok, _ := obj.CompactSerialize()
	resp, body = bearer(t, srv.URL+"/j", tok)
	wantStatus(t, "JWKS outside egress.allow", resp, body, 401, `{"message":"Unauthorized"}`)
	if az.calls() != 0 || fetches.Load() != 0 {
		t.Fatalf("the guard let %d authorizer calls and %d key fetches through", az.calls(), fetches.Load())
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("the backend saw %d requests", n)
	}
}
