package gateway

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const appOrigin = "https://app.example.com"

// corsYAML: a keyed route behind a resource policy and a throttle, with
// the top-level cors; a route with its own cors that replaces it; a
// route without cors under a config that has some.
var corsYAML = `
stage: prod
limits: {max_body_bytes: 16}
resource_policy:
  Statement:
    - {Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*"}
    - Effect: Deny
      Principal: "*"
      Action: execute-api:Invoke
      Resource: "execute-api:/*/*/*"
      Condition: {IpAddress: {"aws:SourceIp": 203.0.113.0/24}}
usage_plans:
  p: {throttle: {rate: 1, burst: 2}}
api_keys: [{name: alice, plan: p, sha256: ` + digest(keyA) + `}]
cors:
  allow_origins: ["` + appOrigin + `", "https://*.example.org"]
  allow_headers: [Content-Type, X-Api-Key]
  expose_headers: [x-amzn-RequestId]
  max_age: 600
  allow_credentials: true
routes:
  - {path: /items, methods: [GET, POST], target: "{T}/items", api_key_required: true}
  - path: /own
    methods: [GET, PUT]
    target: "{T}/own"
    cors: {allow_origins: ["https://other.example.com"], allow_methods: [GET], allow_headers: ["*"]}
  - {path: /plain, methods: [GET, OPTIONS], target: "{T}/plain", cors: false}
`

func preflightHdr(origin, method, headers string) map[string]string {
	h := map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
	if headers != "" {
		h["Access-Control-Request-Headers"] = headers
	}
	return h
}

func withOrigin(h map[string]string, origin string) map[string]string {
	out := map[string]string{"Origin": origin}
	for k, v := range h {
		out[k] = v
	}
	return out
}

// wantHeaders checks the CORS headers of an answer: want maps each
// header to its only value, "" meaning absent.
func wantHeaders(t *testing.T, w *httptest.ResponseRecorder, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got := w.Result().Header.Values(k)
		switch {
		case v == "" && len(got) > 0:
			t.Errorf("%s: %q, want none", k, got)
		case v != "" && !slices.Equal(got, strings.Split(v, "|")):
			t.Errorf("%s: %q, want %q", k, got, strings.Split(v, "|"))
		}
	}
}

var noAllow = map[string]string{
	"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": "", "Access-Control-Allow-Headers": "",
	"Access-Control-Allow-Credentials": "", "Access-Control-Max-Age": "", "Vary": "Origin",
}

// TestCORSPreflightBeforeGuards: a browser's preflight on a cors route
// that needs an API key, under a resource policy and a throttle, is
// answered by the gateway (the target never sees it, no token is taken);
// the real request then passes or fails on its key as before, and every
// answer, errors included, carries the CORS headers.
func TestCORSPreflightBeforeGuards(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		// The target's own CORS headers are replaced, not duplicated.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Write([]byte("ok"))
	})
	g, m := buildFor(t, corsYAML, b.URL, Deps{Now: newClock("2026-12-01T12:00:00Z").Now}, nil)
	allowed := map[string]string{
		"Access-Control-Allow-Origin": appOrigin, "Access-Control-Allow-Methods": "GET,POST",
		"Access-Control-Allow-Headers": "Content-Type,X-Api-Key", "Access-Control-Allow-Credentials": "true",
		"Access-Control-Max-Age": "600", "Vary": "Origin", "x-amzn-ErrorType": "",
	}
	for i, c := range []struct {
		name, ip string
		hdr      map[string]string
		want     map[string]string
	}{
		{"allowed", "8.8.8.8", preflightHdr(appOrigin, "POST", "content-type,x-api-key"), allowed},
		// The preflight is answered before the resource policy: the real
		// request from there is still denied (below).
		{"from an address the policy denies", "203.0.113.9", preflightHdr(appOrigin, "GET", ""), allowed},
		{"subdomain wildcard", "8.8.8.8", preflightHdr("https://a.b.example.org", "GET", ""), map[string]string{"Access-Control-Allow-Origin": "https://a.b.example.org"}},
		{"origin not allowed", "8.8.8.8", preflightHdr("https://evil.example.net", "POST", ""), noAllow},
		{"wildcard's bare domain not allowed", "8.8.8.8", preflightHdr("https://example.org", "GET", ""), noAllow},
		{"method of no route", "8.8.8.8", preflightHdr(appOrigin, "DELETE", ""), nil},
	} {
		t.Run("preflight "+c.name, func(t *testing.T) {
			w := send(g, "OPTIONS", "/items", c.ip, c.hdr, "")
			if c.want == nil {
				// No route serves DELETE /items nor OPTIONS /items: the
				// request is routed as any other, to no route.
				wantEq(t, "status", w.Code, 403)
				wantEq(t, "body", w.Body.String(), `{"message":"Missing Authentication Token"}`)
				return
			}
			wantEq(t, "status", w.Code, 204)
			wantEq(t, "body", w.Body.String(), "")
			wantHeaders(t, w, c.want)
			if len(w.Header()["x-amzn-RequestId"]) != 1 {
				t.Error("no x-amzn-RequestId")
			}
			wantEq(t, "backend requests", len(b.requests()), 0)
			wantEq(t, "preflights counted", testutil.ToFloat64(m.Requests.WithLabelValues("/items", "OPTIONS", "preflight")), float64(i+1))
		})
	}

	onError := map[string]string{
		"Access-Control-Allow-Origin": appOrigin, "Access-Control-Allow-Credentials": "true",
		"Access-Control-Expose-Headers": "x-amzn-RequestId", "Vary": "Origin",
		"Access-Control-Allow-Methods": "", "Access-Control-Max-Age": "",
	}
	real := []struct {
		name, method, ip string
		hdr              map[string]string
		body             string
		status           int
		want             map[string]string
	}{
		{"no key", "POST", "8.8.8.8", nil, "", 403, onError},
		{"policy denies", "GET", "203.0.113.9", withKey(keyA), "", 403, onError},
		{"body too large", "POST", "8.8.8.8", withKey(keyA), strings.Repeat("x", 17), 413, onError},
		{"with the key", "GET", "8.8.8.8", withKey(keyA), "", 200, map[string]string{
			"Access-Control-Allow-Origin": appOrigin, "Access-Control-Allow-Credentials": "true",
			"Access-Control-Expose-Headers": "x-amzn-RequestId", "Vary": "Accept-Encoding|Origin"}},
		{"with the key, again", "GET", "8.8.8.8", withKey(keyA), "", 200, nil},
		{"throttled", "GET", "8.8.8.8", withKey(keyA), "", 429, onError},
	}
	for _, c := range real {
		t.Run("request "+c.name, func(t *testing.T) {
			w := send(g, c.method, "/items", c.ip, withOrigin(c.hdr, appOrigin), c.body)
			wantEq(t, "status", w.Code, c.status)
			wantHeaders(t, w, c.want)
		})
	}
	// Another origin gets the same answers without Allow-Origin.
	w := send(g, "GET", "/items", "8.8.8.8", withOrigin(nil, "https://evil.example.net"), "")
	wantEq(t, "status", w.Code, 403)
	wantHeaders(t, w, map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": "", "Vary": "Origin"})
	wantEq(t, "key_rejected counted", testutil.ToFloat64(m.Requests.WithLabelValues("/items", "GET", "key_rejected")), 1.0)
}

// TestCORSRouteReplacesTop: a route's cors replaces the top-level one as
// a whole; a route with cors: false in a config with top-level cors has
// none, and its OPTIONS goes to the target.
func TestCORSRouteReplacesTop(t *testing.T) {
	b := newBackend(t, nil)
	g, _ := buildFor(t, corsYAML, b.URL, Deps{}, nil)

	w := send(g, "OPTIONS", "/own", "8.8.8.8", preflightHdr("https://other.example.com", "GET", "X-Custom, x-other"), "")
	wantEq(t, "status", w.Code, 204)
	wantHeaders(t, w, map[string]string{
		"Access-Control-Allow-Origin": "https://other.example.com", "Access-Control-Allow-Methods": "GET",
		"Access-Control-Allow-Headers": "X-Custom, x-other", "Access-Control-Allow-Credentials": "", "Access-Control-Max-Age": ""})
	// allow_methods is [GET]: a PUT the route serves is not allowed.
	wantHeaders(t, send(g, "OPTIONS", "/own", "8.8.8.8", preflightHdr("https://other.example.com", "PUT", ""), ""), noAllow)
	// The top-level origins do not apply to /own.
	wantHeaders(t, send(g, "OPTIONS", "/own", "8.8.8.8", preflightHdr(appOrigin, "GET", ""), ""), noAllow)
	w = send(g, "GET", "/own", "8.8.8.8", withOrigin(nil, "https://other.example.com"), "")
	wantEq(t, "status", w.Code, 200)
	wantHeaders(t, w, map[string]string{"Access-Control-Allow-Origin": "https://other.example.com", "Access-Control-Expose-Headers": ""})

	wantEq(t, "backend before /plain", len(b.requests()), 1)
	w = send(g, "OPTIONS", "/plain", "8.8.8.8", preflightHdr(appOrigin, "GET", ""), "")
	wantEq(t, "status", w.Code, 200)
	wantEq(t, "forwarded", b.last(t).Method, "OPTIONS")
	wantHeaders(t, w, map[string]string{"Access-Control-Allow-Origin": "", "Vary": ""})
}

// TestCORSOrigins: the origin patterns an HTTP API accepts, and a
// subdomain wildcard.
func TestCORSOrigins(t *testing.T) {
	cr := &corsRule{exact: map[string]bool{"http://localhost:3000": true}, schemes: []string{"http://"},
		subdomains: [][2]string{{"https://", ".example.com:8443"}}}
	for o, want := range map[string]bool{
		"http://localhost:3000":              true,
		"http://anything":                    true,
		"https://localhost:3000":             false,
		"https://a.example.com:8443":         true,
		"https://a.b.example.com:8443":       true,
		"https://example.com:8443":           false,
		"https://.example.com:8443":          false,
		"https://a.example.com":              false,
		"https://evil.com/.example.com:8443": false,
		"https://a:1.example.com:8443":       false,
		"null":                               false,
	} {
		if got := cr.allows(o); got != want {
			t.Errorf("allows(%q) = %v, want %v", o, got, want)
		}
	}
	wantEq(t, "Vary kept", varyOrigin([]string{"Accept, origin"}), []string{"Accept, origin"})
	wantEq(t, "Vary *", varyOrigin([]string{"*"}), []string{"*"})
	wantEq(t, "Vary added", varyOrigin([]string{"Accept"}), []string{"Accept", "Origin"})
}

// TestCORSExplain: explain shows the preflight line and serve's 204.
func TestCORSExplain(t *testing.T) {
	b := newBackend(t, nil)
	g, _ := buildFor(t, corsYAML, b.URL, Deps{}, nil)
	for _, c := range []struct {
		origin, method, decisive string
	}{
		{appOrigin, "POST", "preflight: allow — CORS preflight for POST from origin " + appOrigin},
		{"https://evil.example.net", "POST", "preflight: deny — origin https://evil.example.net is not in cors.allow_origins"},
	} {
		r := httptest.NewRequest("OPTIONS", "/items", nil)
		r.RemoteAddr = "203.0.113.9:1"
		r.Header.Set("Origin", c.origin)
		r.Header.Set("Access-Control-Request-Method", c.method)
		e := g.Explain(r, nil)
		checkExplanation(t, &e, c.decisive)
		wantEq(t, "result", e.Result(), "result: 204")
		wantEq(t, "lines", len(e.Lines), 2)
	}
}

// BenchmarkCORS: what cors costs on its own routes: a preflight, and a
// rejection that carries the CORS headers (compare BenchmarkReject).
func BenchmarkCORS(b *testing.B) {
	g, _ := buildFor(b, corsYAML, "http://127.0.0.1:1", Deps{}, nil)
	for _, c := range []struct {
		name, method string
		hdr          map[string]string
		code         int
	}{
		{"preflight", "OPTIONS", preflightHdr(appOrigin, "POST", "x-api-key"), 204},
		{"key_rejected", "GET", map[string]string{"Origin": appOrigin}, 403},
	} {
		b.Run(c.name, func(b *testing.B) {
			r, _ := http.NewRequest(c.method, "http://gw/items", nil)
			r.RequestURI, r.RemoteAddr = "/items", "8.8.8.8:40000"
			for k, v := range c.hdr {
				r.Header.Set(k, v)
			}
			w := &discard{h: http.Header{}}
			if g.ServeHTTP(w, r); w.code != c.code {
				b.Fatalf("answered %d, want %d", w.code, c.code)
			}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				g.ServeHTTP(w, r)
			}
		})
	}
}
