package gateway

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// explainYAML has one route per way a request can end.
var explainYAML = `
stage: prod
throttle: {rate: 1000, burst: 1000, max_concurrent: 10}
resource_policy:
  Statement:
    - {Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*"}
    - Effect: Deny
      Principal: "*"
      Action: execute-api:Invoke
      Resource: "execute-api:/*/*/*"
      Condition: {IpAddress: {"aws:SourceIp": 203.0.113.0/24}}
usage_plans:
  p: {quota: {limit: 2, period: DAY}, throttle: {rate: 1, burst: 5}}
api_keys: [{name: alice, plan: p, sha256: ` + digest(keyA) + `}]
routes:
  - {path: /keyed, target: "{T}/k", api_key_required: true, cors: {allow_origins: ["https://app.example"], allow_methods: [GET]}}
  - {path: /ips/*, target: "{T}/i/", allow_ips: [10.0.0.0/8]}
  - {path: /empty, target: "{T}/e", throttle: {rate: 1, burst: 1}}
  - {path: /hook, methods: [POST], target: "{T}/h", verify: {provider: github, secret_env: GH}}
  - {path: "/ips/{id}/x", target: "{T}/t/", allow_ips: [10.0.0.0/8]}
  - {path: "/files/{path+}", target: "{T}/f/", api_key_required: true}
`

var explainLineRE = regexp.MustCompile(`^[a-z_]+: (allow|deny|skip) — \S`)

// TestExplainIsServeHTTPDry: for every way a request ends, Explain's
// result is ServeHTTP's answer, and explaining consumes no state.
func TestExplainIsServeHTTPDry(t *testing.T) {
	b := newBackend(t, nil)
	clk := newClock("2026-12-01T12:00:00Z")
	g, _ := buildFor(t, explainYAML, b.URL, Deps{Now: clk.Now}, map[string]string{"GH": "It's a Secret to Everybody"})
	const sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	cases := []struct {
		name, method, path, ip string
		hdr                    map[string]string
		body                   string
		decisive               string
	}{
		{"forwarded with the key", "GET", "/keyed?q=1", "8.8.8.8", withKey(keyA), "", `api_key: allow — key "alice"`},
		{"no route", "GET", "/nope", "8.8.8.8", nil, "", "route: deny"},
		{"bad path", "GET", "/ips/%2e%2e/x", "8.8.8.8", nil, "", "route: deny"},
		{"policy explicit deny", "GET", "/keyed", "203.0.113.5", withKey(keyA), "", "resource_policy: deny — explicit deny by statement 1"},
		{"allow_ips", "GET", "/ips/a/b", "8.8.8.8", nil, "", "allow_ips: deny — client 8.8.8.8 is not in allow_ips [10.0.0.0/8]"},
		{"allow_ips passes, prefix target", "GET", "/ips/a/b", "10.2.3.4", nil, "", "allow_ips: allow"},
		{"no key", "GET", "/keyed", "8.8.8.8", nil, "", "api_key: deny — no x-api-key header"},
		{"signed webhook", "POST", "/hook", "8.8.8.8", map[string]string{"X-Hub-Signature-256": sig}, "Hello, World!", "signature: allow — github signature valid"},
		{"bad signature", "POST", "/hook", "8.8.8.8", map[string]string{"X-Hub-Signature-256": sig}, "Hello, World?", "signature: deny — github signature rejected"},
		{"template, allow_ips passes", "GET", "/ips/7/x", "10.2.3.4", nil, "", "allow_ips: allow"},
		{"greedy template, no key", "GET", "/files/a/b%20c", "8.8.8.8", nil, "", "api_key: deny — no x-api-key header"},
		{"header too large", "GET", "/keyed", "8.8.8.8", map[string]string{"X-Big": strings.Repeat("x", 70000)}, "", "limits: deny — headers are"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, c.path, nil)
			r.RemoteAddr = c.ip + ":1"
			for k, v := range c.hdr {
				r.Header.Set(k, v)
			}
			r.ContentLength = int64(len(c.body))
			before := len(b.requests())
			e := g.Explain(r, []byte(c.body))
			wantEq(t, "backend requests during explain", len(b.requests()), before)
			checkExplanation(t, &e, c.decisive)

			w := send(g, c.method, c.path, c.ip, c.hdr, c.body)
			if e.Status == 0 {
				got := b.last(t)
				wantEq(t, "forward", e.Forward, got.Method+" "+b.URL+got.RequestURI)
				wantEq(t, "status", w.Code, 200)
				return
			}
			wantEq(t, "status", w.Code, e.Status)
			wantEq(t, "body", w.Body.String(), e.Body)
		})
	}

	// State: explain reads it and never consumes it.
	explainKeyed := func() Explanation {
		r := httptest.NewRequest("GET", "/keyed", nil)
		r.RemoteAddr = "8.8.8.8:1"
		r.Header.Set("x-api-key", keyA)
		return g.Explain(r, nil)
	}
	for range 20 {
		explainKeyed()
	}
	// The quota (2 a day) has one request left after the case above.
	wantEq(t, "second keyed request", send(g, "GET", "/keyed", "8.8.8.8", withKey(keyA), "").Code, 200)
	e := explainKeyed()
	checkExplanation(t, &e, "quota: deny — plan \"p\" quota 2/DAY: 2 used, 0 remaining")
	wantEq(t, "explain over quota", e.Result(), `result: 429 {"message":"Limit Exceeded"}`)
	wantEq(t, "served over quota", send(g, "GET", "/keyed", "8.8.8.8", withKey(keyA), "").Code, 429)

	// Throttle: one token; explaining leaves it, serving takes it.
	e = explainEmpty(g)
	wantEq(t, "explain with a token", e.Result(), "result: forward GET "+b.URL+"/e")
	wantEq(t, "served", send(g, "GET", "/empty", "8.8.8.8", nil, "").Code, 200)
	e = explainEmpty(g)
	checkExplanation(t, &e, "throttle: deny — over route:/empty")
	wantEq(t, "explain Retry-After", e.RetryAfter, "1")
	wantEq(t, "served empty", send(g, "GET", "/empty", "8.8.8.8", nil, "").Code, 429)
	clk.Add(time.Second)
	e = explainEmpty(g)
	wantEq(t, "refilled", e.Status, 0)
}

func explainEmpty(g *Gateway) Explanation {
	r := httptest.NewRequest("GET", "/empty", nil)
	r.RemoteAddr = "8.8.8.8:1"
	return g.Explain(r, nil)
}

// checkExplanation: every line has explain's form (docs/guards.md#explain), one starts with
// decisive, and the route line comes first.
func checkExplanation(t *testing.T, e *Explanation, decisive string) {
	t.Helper()
	found := false
	for i, l := range e.Lines {
		if !explainLineRE.MatchString(l) {
			t.Errorf("line %q is not STEP: allow|deny|skip — why", l)
		}
		if i == 0 && !strings.HasPrefix(l, "route: ") {
			t.Errorf("first line %q is not the route", l)
		}
		if strings.HasPrefix(l, decisive) {
			found = true
		}
	}
	if !found {
		t.Errorf("no line starts with %q:\n%s", decisive, strings.Join(e.Lines, "\n"))
	}
	if !strings.HasPrefix(e.Result(), "result: ") {
		t.Errorf("result line %q", e.Result())
	}
}

// FuzzExplainMatchesServe: for any request, explaining it and then
// serving it give the same answer (explain reads the state serving is
// about to consume), whatever the path, address, headers and body.
func FuzzExplainMatchesServe(f *testing.F) {
	for _, s := range [][5]string{
		{"GET", "/keyed", "8.8.8.8", keyA, ""},
		{"GET", "/keyed?x=%zz", "203.0.113.9", keyA, ""},
		{"POST", "/hook", "10.0.0.1", "", "Hello, World!"},
		{"GET", "/ips/a/../b", "::ffff:10.1.1.1", "", ""},
		{"GET", "/ips/", "2001:db8::1", "short", ""},
		{"PUT", "/empty", "not-an-ip", keyB, "x"},
		{"DELETE", "//", "1.2.3.4", "", ""},
		{"OPTIONS", "/keyed", "203.0.113.9", "GET", ""},
		{"OPTIONS", "/keyed", "8.8.8.8", "PUT", ""},
		{"OPTIONS", "/empty", "8.8.8.8", "GET", ""},
		{"GET", "/ips/7/x", "10.0.0.1", "", ""},
		{"GET", "/files/a/b%20c", "8.8.8.8", keyA, ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	g, _ := buildFor(f, explainYAML, "http://127.0.0.1:1", Deps{Now: newClock("2026-12-01T12:00:00Z").Now}, map[string]string{"GH": "It's a Secret to Everybody"})
	f.Fuzz(func(t *testing.T, method, target, ip, key, body string) {
		if !validMethod(method) || len(target) == 0 || target[0] != '/' || strings.ContainsAny(target, " \r\n#") {
			return
		}
		mk := func() *http.Request {
			r, err := http.NewRequest(method, "http://gw"+target, strings.NewReader(body))
			if err != nil {
				return nil
			}
			r.RequestURI = target
			r.RemoteAddr = ip + ":1"
			if key != "" {
				r.Header["X-Api-Key"] = []string{key}
			}
			r.Header["X-Hub-Signature-256"] = []string{"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}
			// Every request comes from a page: OPTIONS ones are CORS
			// preflights asking for the method written in key.
			r.Header["Origin"] = []string{"https://app.example"}
			if method == http.MethodOptions {
				r.Header["Access-Control-Request-Method"] = []string{key}
			}
			return r
		}
		r := mk()
		if r == nil {
			return
		}
		e := g.Explain(r, []byte(body))
		w := &discard{h: http.Header{}}
		var forwarded bool
		g.serve(w, mk(), func(*Gateway, *call) { forwarded = true })
		if e.Status == 0 {
			if !forwarded || w.code != 0 {
				t.Fatalf("explain forwards (%s), serve answered %d\n%s", e.Forward, w.code, strings.Join(e.Lines, "\n"))
			}
			return
		}
		if forwarded || w.code != e.Status {
			t.Fatalf("explain answers %d, serve %d (forwarded %v)\n%s", e.Status, w.code, forwarded, strings.Join(e.Lines, "\n"))
		}
	})
}

func validMethod(m string) bool {
	if m == "" || len(m) > 10 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 'A' || m[i] > 'Z' {
			return false
		}
	}
	return true
}

// TestPolicyHeaderConditions: the request headers a resource policy can
// name (aws:UserAgent, aws:Referer) reach it through ServeHTTP, on an
// exact route (its statements bound at build) and a greedy one; a policy
// without such a condition is not handed them (policy.ReadsHeaders).
func TestPolicyHeaderConditions(t *testing.T) {
	b := newBackend(t, nil)
	g, _ := buildFor(t, `
resource_policy:
  Statement:
    - {Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*"}
    - {Effect: Deny, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*", Condition: {StringLike: {"aws:UserAgent": "bad-bot*"}}}
    - {Effect: Deny, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*", Condition: {StringEquals: {"aws:Referer": "https://spam.example/"}}}
routes:
  - {path: /exact, target: "{T}/e"}
  - {path: "/greedy/{p+}", target: "{T}/g/"}
`, b.URL, Deps{}, nil)
	if !g.policy.ReadsHeaders() {
		t.Fatal("a policy with aws:UserAgent and aws:Referer conditions says it reads no header")
	}
	for _, path := range []string{"/exact", "/greedy/a/b"} {
		for _, c := range []struct {
			hdr, val string
			want     int
		}{
			{"User-Agent", "bad-bot/2.0", 403},
			{"Referer", "https://spam.example/", 403},
			{"User-Agent", "good/1.0", 200},
			{"Referer", "https://ok.example/", 200},
		} {
			r := httptest.NewRequest("GET", path, nil)
			r.Header.Set(c.hdr, c.val)
			w := httptest.NewRecorder()
			g.ServeHTTP(w, r)
			if w.Code != c.want {
				t.Errorf("%s with %s %q: %d, want %d", path, c.hdr, c.val, w.Code, c.want)
			}
		}
	}
	plain, _ := buildFor(t, explainYAML, b.URL, Deps{}, map[string]string{"GH": "x"})
	if plain.policy.ReadsHeaders() {
		t.Fatal("a policy with only aws:SourceIp conditions says it reads headers")
	}
}
