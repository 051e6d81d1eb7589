package gateway

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/apikey"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(s string) *clock {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return &clock{t: t}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(s string) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Keys used by the tests (valid format: 20-128 letters and digits).
const (
	keyA = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	keyB = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
)

func digest(k string) string { return apikey.FormatDigest(apikey.Hash(k)) }

// send runs one request through g's ServeHTTP from client ip.
func send(g http.Handler, method, path, ip string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	r.RemoteAddr = net.JoinHostPort(ip, "40000")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	g.ServeHTTP(w, r)
	return w
}

func withKey(k string) map[string]string { return map[string]string{"x-api-key": k} }

// guardYAML exercises every guard; {T} is the backend.
var guardYAML = `
stage: prod
account_throttle: {rate: 1000, burst: 1000}
usage_plans:
  gold:
    quota: {limit: 1000, period: DAY}
    throttle: {rate: 1, burst: 3}
    methods:
      /a/POST: {rate: 1, burst: 1}
  empty: {}
api_keys:
  - {name: alice, plan: gold, sha256: ` + digest(keyA) + `}
  - {name: bob, plan: gold, sha256: ` + digest(keyB) + `, enabled: false}
  - {name: carol, sha256: ` + digest("CCCCCCCCCCCCCCCCCCCCCCCCC") + `}
routes:
  - {path: /a, methods: [GET, POST], target: "{T}/a", api_key_required: true}
  - {path: /b, methods: [GET], target: "{T}/b", api_key_required: true}
  - {path: /open, target: "{T}/open", allow_ips: ["10.0.0.0/8", github-hooks]}
`

func TestAPIKeys(t *testing.T) {
	b := newBackend(t, nil)
	g, m := buildFor(t, guardYAML, b.URL, Deps{Now: newClock("2026-12-01T12:00:00Z").Now}, nil)
	cases := []struct {
		name   string
		hdr    map[string]string
		status int
		body   string
	}{
		{"valid key", withKey(keyA), 200, "ok"},
		{"header name in any case", map[string]string{"X-API-KEY": keyA}, 200, "ok"},
		{"missing", nil, 403, `{"message":"Forbidden"}`},
		{"empty", withKey(""), 403, `{"message":"Forbidden"}`},
		{"unknown", withKey("ZZZZZZZZZZZZZZZZZZZZZZZZZ"), 403, `{"message":"Forbidden"}`},
		{"too short", withKey("AAAAAAAAAAAAAAAAAAA"), 403, `{"message":"Forbidden"}`},
		{"not alphanumeric", withKey(keyA[:30] + "-" + keyA[:5]), 403, `{"message":"Forbidden"}`},
		{"disabled", withKey(keyB), 403, `{"message":"Forbidden"}`},
		{"in no usage plan", withKey("CCCCCCCCCCCCCCCCCCCCCCCCC"), 403, `{"message":"Forbidden"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(b.requests())
			w := send(g, "GET", "/b", "10.1.1.1", c.hdr, "")
			wantEq(t, "status", w.Code, c.status)
			wantEq(t, "body", w.Body.String(), c.body)
			if c.status == 403 {
				wantEq(t, "x-amzn-ErrorType", errType(w), "ForbiddenException")
				wantEq(t, "backend requests", len(b.requests()), before)
			} else if got := b.last(t).Header.Get("X-Api-Key"); got != "" {
				t.Errorf("x-api-key forwarded to the backend: %q", got)
			}
		})
	}
	wantEq(t, "key_rejected count", testutil.ToFloat64(m.Requests.WithLabelValues("/b", "GET", "key_rejected")), 7.0)
}

// TestThrottleLevels: acceptance 3 — per-key buckets aggregate across the
// plan's routes, a method override adds its own bucket, time refills.
func TestThrottleLevels(t *testing.T) {
	b := newBackend(t, nil)
	clk := newClock("2026-12-01T12:00:00Z")
	g, m := buildFor(t, guardYAML, b.URL, Deps{Now: clk.Now}, nil)
	steps := []struct {
		method, path string
		advance      time.Duration
		status       int
		retryAfter   string
	}{
		// gold: burst 3 per key across /a and /b; POST /a: burst 1 more.
		{"GET", "/a", 0, 200, ""},
		{"GET", "/b", 0, 200, ""},
		{"POST", "/a", 0, 200, ""},
		{"GET", "/b", 0, 429, "1"},          // the plan's 3 tokens are spent, whatever the route
		{"POST", "/a", 0, 429, "1"},         // both buckets empty
		{"GET", "/a", time.Second, 200, ""}, // one token back
		{"POST", "/a", 0, 429, "1"},         // plan bucket empty again
		{"GET", "/b", 2 * time.Second, 200, ""},
		{"POST", "/a", 0, 200, ""}, // override refilled too (1/s)
		{"POST", "/a", 0, 429, "1"},
		{"GET", "/b", 500 * time.Millisecond, 429, "1"}, // half a token
		{"GET", "/b", 500 * time.Millisecond, 200, ""},
	}
	want := 0
	for i, s := range steps {
		clk.Add(s.advance)
		w := send(g, s.method, s.path, "10.1.1.1", withKey(keyA), "")
		if w.Code != s.status {
			t.Fatalf("step %d %s %s: status %d, want %d (%s)", i, s.method, s.path, w.Code, s.status, w.Body)
		}
		if s.status == 429 {
			wantEq(t, "body", w.Body.String(), `{"message":"Too Many Requests"}`)
			wantEq(t, "x-amzn-ErrorType", errType(w), "TooManyRequestsException")
			wantEq(t, "Retry-After", w.Header().Get("Retry-After"), s.retryAfter)
		} else {
			want++
		}
	}
	wantEq(t, "backend requests", len(b.requests()), want)
	wantEq(t, "throttled GET /b", testutil.ToFloat64(m.Requests.WithLabelValues("/b", "GET", "throttled")), 2.0)
}

func TestStageRouteAndAccountThrottle(t *testing.T) {
	b := newBackend(t, nil)
	clk := newClock("2026-12-01T12:00:00Z")
	yaml := `
throttle: {rate: 0.5, burst: 2}
account_throttle: {rate: 1, burst: 6}
routes:
  - {path: /a, target: "{T}/a"}
  - {path: /b, target: "{T}/b", throttle: {rate: 1, burst: 3}}
`
	g, _ := buildFor(t, yaml, b.URL, Deps{Now: clk.Now}, nil)
	count := func(path string) int {
		n := 0
		for range 10 {
			if send(g, "GET", path, "10.1.1.1", nil, "").Code == 200 {
				n++
			}
		}
		return n
	}
	// Each route has its own bucket: the stage default (2) for /a, its own
	// override (3) for /b.
	wantEq(t, "/a passes", count("/a"), 2)
	wantEq(t, "/b passes", count("/b"), 3)
	// The account bucket (6) is shared: 1 left.
	clk.Add(4 * time.Second) // /a +2, /b +3 (capped), account +4 → 5
	wantEq(t, "/a after 4s", count("/a"), 2)
	wantEq(t, "/b after 4s (account has 3 left)", count("/b"), 3)
	w := send(g, "GET", "/b", "10.1.1.1", nil, "")
	wantEq(t, "Retry-After (fractional refill rounds up)", w.Header().Get("Retry-After"), "1")
	clk.Add(10 * time.Second)
	wantEq(t, "fractional rate: /a after 10s", count("/a"), 2)
}

func TestQuota(t *testing.T) {
	b := newBackend(t, nil)
	clk := newClock("2026-12-05T23:59:00Z") // a Saturday
	yaml := `
usage_plans:
  weekly: {quota: {limit: 3, period: WEEK, offset: 1}}
api_keys: [{name: alice, plan: weekly, sha256: ` + digest(keyA) + `}]
routes: [{path: /a, target: "{T}/a", api_key_required: true}]
`
	g, m := buildFor(t, yaml, b.URL, Deps{Now: clk.Now}, nil)
	// First week: limit 3 minus offset 1.
	for i, want := range []int{200, 200, 429} {
		w := send(g, "GET", "/a", "10.1.1.1", withKey(keyA), "")
		if w.Code != want {
			t.Fatalf("request %d: %d, want %d", i, w.Code, want)
		}
		if want == 429 {
			wantEq(t, "body", w.Body.String(), `{"message":"Limit Exceeded"}`)
			wantEq(t, "x-amzn-ErrorType", errType(w), "LimitExceededException")
			wantEq(t, "Retry-After: until Sunday 00:00 UTC", w.Header().Get("Retry-After"), "60")
		}
	}
	clk.Set("2026-12-06T00:00:00Z") // Sunday: a new week, the full limit
	for i, want := range []int{200, 200, 200, 429} {
		if w := send(g, "GET", "/a", "10.1.1.1", withKey(keyA), ""); w.Code != want {
			t.Fatalf("second week request %d: %d, want %d", i, w.Code, want)
		}
	}
	wantEq(t, "quota_exceeded", testutil.ToFloat64(m.Requests.WithLabelValues("/a", "GET", "quota_exceeded")), 2.0)
	wantEq(t, "backend requests", len(b.requests()), 5)
}

func TestAllowIPsAndPolicy(t *testing.T) {
	b := newBackend(t, nil)
	yaml := `
stage: prod
aws: {region: eu-west-1, account_id: "111122223333", api_id: abc123}
resource_policy:
  Statement:
    - {Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*/*/*"}
    - Effect: Deny
      Principal: "*"
      Action: execute-api:Invoke
      Resource: execute-api:/*/POST/hooks/*
      Condition: {IpAddress: {"aws:SourceIp": [203.0.113.0/24]}}
routes:
  - {path: /open, target: "{T}/open", allow_ips: ["10.0.0.0/8", github-hooks]}
  - {path: /hooks/*, methods: [POST], target: "{T}/h/"}
  - {path: /nopolicy, target: "{T}/n"}
`
	g, m := buildFor(t, yaml, b.URL, Deps{}, nil)
	const arn = "arn:aws:execute-api:eu-west-1:********3333:abc123/prod/" // account masked as AWS masks it
	deny := func(res string, explicit bool) string {
		s := `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: ` + arn + res
		if explicit {
			s += " with an explicit deny"
		}
		return s + `"}`
	}
	cases := []struct {
		name, method, path, ip string
		status                 int
		body                   string
	}{
		{"allow_ips CIDR", "GET", "/open", "10.9.9.9", 200, "ok"},
		{"allow_ips github-hooks", "GET", "/open", "140.82.112.5", 200, "ok"},
		{"allow_ips github-hooks IPv6", "GET", "/open", "2606:50c0::1", 200, "ok"},
		{"allow_ips mapped IPv4", "GET", "/open", "::ffff:10.0.0.1", 200, "ok"},
		{"allow_ips outside", "GET", "/open", "8.8.8.8", 403, deny("GET/open", true)},
		{"policy explicit deny on prefix route", "POST", "/hooks/x/y", "203.0.113.9", 403, deny("POST/hooks/x/y", true)},
		{"policy allows", "POST", "/hooks/x/y", "8.8.8.8", 200, "ok"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(b.requests())
			w := send(g, c.method, c.path, c.ip, nil, "")
			wantEq(t, "status", w.Code, c.status)
			wantEq(t, "body", w.Body.String(), c.body)
			if c.status == 403 {
				wantEq(t, "x-amzn-ErrorType", errType(w), "AccessDeniedException")
				wantEq(t, "backend requests", len(b.requests()), before)
			}
		})
	}
	wantEq(t, "policy_denied /open", testutil.ToFloat64(m.Requests.WithLabelValues("/open", "GET", "policy_denied")), 1.0)

	// Implicit deny: a policy that allows only one path.
	yaml2 := `
resource_policy:
  Statement: [{Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*/GET/a"}]
routes:
  - {path: /a, target: "{T}/a"}
  - {path: /b, target: "{T}/b"}
`
	g2, _ := buildFor(t, yaml2, b.URL, Deps{}, nil)
	wantEq(t, "allowed path", send(g2, "GET", "/a", "8.8.8.8", nil, "").Code, 200)
	w := send(g2, "GET", "/b", "8.8.8.8", nil, "")
	wantEq(t, "implicit deny", w.Body.String(), `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:********9012:drawbridge/prod/GET/b"}`)
}

func TestConcurrencyLeases(t *testing.T) {
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	yaml := `
throttle: {rate: 1000, burst: 1000, max_concurrent: 2}
routes:
  - {path: /slow, target: "{T}/slow", throttle: {max_concurrent: 1}}
  - {path: /fast, target: "{T}/fast"}
  - {path: /dead, target: "http://127.0.0.1:1/"}
`
	st := memory.New()
	defer st.Close()
	g, m := buildFor(t, yaml, b.URL, Deps{Store: st}, nil)
	srv := httptest.NewServer(g)
	defer srv.Close()

	first := make(chan int)
	go func() {
		resp, err := http.Get(srv.URL + "/slow")
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-entered
	// /slow is at its route cap (1); the stage (2) has one slot left.
	w := send(g, "GET", "/slow", "10.1.1.1", nil, "")
	wantEq(t, "second /slow", w.Code, 429)
	wantEq(t, "Retry-After", w.Header().Get("Retry-After"), "1")
	wantEq(t, "/fast uses the stage's last slot", send(g, "GET", "/fast", "10.1.1.1", nil, "").Code, 200)
	close(release)
	wantEq(t, "first /slow", <-first, 200)
	// Every lease came back, including after a 502 and a rejection.
	wantEq(t, "/dead", send(g, "GET", "/dead", "10.1.1.1", nil, "").Code, 502)
	for _, k := range []string{stageConcKey, routeConcPfx + "/slow GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS", routeConcPfx + "/dead GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS"} {
		n, err := st.InUse(t.Context(), k, time.Now())
		if err != nil || n != 0 {
			t.Errorf("%s: %d leases held after every request ended (%v)", k, n, err)
		}
	}
	wantEq(t, "throttled /slow", testutil.ToFloat64(m.Requests.WithLabelValues("/slow", "GET", "throttled")), 1.0)
}

func TestStoreFailureIs503(t *testing.T) {
	b := newBackend(t, nil)
	st := memory.New()
	g, m := buildFor(t, routesYAML, b.URL, Deps{Store: st}, nil)
	wantEq(t, "before", send(g, "GET", "/forward", "10.1.1.1", nil, "").Code, 200)
	st.Close()
	w := send(g, "GET", "/forward", "10.1.1.1", nil, "")
	wantEq(t, "status", w.Code, 503)
	wantEq(t, "body", w.Body.String(), `{"message":"Service Unavailable"}`)
	wantEq(t, "unavailable", testutil.ToFloat64(m.Requests.WithLabelValues("/forward", "GET", "unavailable")), 1.0)
	wantEq(t, "store errors", testutil.ToFloat64(m.StoreErrors), 1.0)
	wantEq(t, "backend requests", len(b.requests()), 1)
	r := httptest.NewRequest("GET", "/forward", nil)
	e := g.Explain(r, nil)
	wantEq(t, "explain", e.Result(), `result: 503 {"message":"Service Unavailable"}`)
	if l := e.Lines[len(e.Lines)-1]; l != "throttle: deny — state store failed: read tokens: store closed" {
		t.Errorf("explain's last step: %q", l)
	}

	// state.on_error: open lets throttles pass.
	st2 := memory.New()
	g2, _ := buildFor(t, "state: {on_error: open}\n"+routesYAML, b.URL, Deps{Store: st2}, nil)
	st2.Close()
	wantEq(t, "on_error open", send(g2, "GET", "/forward", "10.1.1.1", nil, "").Code, 200)
}

func githubSig(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestSignature(t *testing.T) {
	b := newBackend(t, nil)
	yaml := `
routes:
  - {path: /hook, methods: [POST], target: "{T}/hook", verify: {provider: github, secret_env: GH}}
`
	g, m := buildFor(t, yaml, b.URL, Deps{}, map[string]string{"GH": "It's a Secret to Everybody"})
	body := "Hello, World!"
	cases := []struct {
		name   string
		sig    string
		body   string
		status int
	}{
		// GitHub's documented vector.
		{"valid", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", body, 200},
		{"computed", githubSig("It's a Secret to Everybody", "other"), "other", 200},
		{"wrong secret", githubSig("nope", body), body, 401},
		{"changed body", githubSig("It's a Secret to Everybody", body), body + "!", 401},
		{"missing", "", body, 401},
		{"malformed", "sha256=zz", body, 401},
		{"sha1 is never accepted", "sha1=01dc10d0c83e72ed246219cdd91669ed5ae9d567", body, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(b.requests())
			hdr := map[string]string{}
			if c.sig != "" {
				hdr["X-Hub-Signature-256"] = c.sig
			}
			w := send(g, "POST", "/hook", "10.1.1.1", hdr, c.body)
			wantEq(t, "status", w.Code, c.status)
			if c.status == 401 {
				wantEq(t, "body", w.Body.String(), `{"message":"Unauthorized"}`)
				wantEq(t, "x-amzn-ErrorType", errType(w), "UnauthorizedException")
				wantEq(t, "backend requests", len(b.requests()), before)
			} else {
				wantEq(t, "backend body", string(b.last(t).Body), c.body)
			}
		})
	}
	wantEq(t, "signature_rejected", testutil.ToFloat64(m.Requests.WithLabelValues("/hook", "POST", "signature_rejected")), 5.0)
}

// TestRejectionsNeverReachBackend: acceptance 5 — each rejection kind is
// answered without the backend seeing anything, and a huge declared body
// is refused at once, unread, on a closed connection.
func TestRejectionsNeverReachBackend(t *testing.T) {
	b := newBackend(t, nil)
	yaml := `
limits: {max_body_bytes: 10737418240}
resource_policy:
  Statement:
    - {Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*", Condition: {IpAddress: {"aws:SourceIp": 127.0.0.0/8}}}
usage_plans:
  p: {quota: {limit: 1, period: DAY}, throttle: {rate: 100, burst: 100}}
api_keys: [{name: k, plan: p, sha256: ` + digest(keyA) + `}, {name: k2, plan: p, sha256: ` + digest(keyB) + `}]
routes:
  - {path: /policy, methods: [POST], target: "{T}/x", allow_ips: [10.0.0.0/8]}
  - {path: /key, methods: [POST], target: "{T}/x", api_key_required: true}
  - {path: /throttle, methods: [POST], target: "{T}/x", throttle: {rate: 0.001, burst: 0}}
  - {path: /quota, methods: [POST], target: "{T}/x", api_key_required: true}
`
	g, m := buildFor(t, yaml, b.URL, Deps{Now: newClock("2026-12-01T12:00:00Z").Now}, nil)
	srv := httptest.NewServer(g)
	defer srv.Close()
	// Spend key B's quota of 1 first.
	w := send(g, "POST", "/quota", "127.0.0.1", withKey(keyB), "x")
	wantEq(t, "quota first", w.Code, 200)
	seen := len(b.requests())

	cases := []struct {
		path, hdr string
		status    int
		outcome   string
	}{
		{"/policy", "", 403, "policy_denied"},
		{"/key", "", 403, "key_rejected"},
		{"/throttle", "", 429, "throttled"},
		{"/quota", "x-api-key: " + keyB + "\r\n", 429, "quota_exceeded"},
	}
	for _, c := range cases {
		t.Run(c.outcome, func(t *testing.T) {
			start := time.Now()
			resp, _ := raw(t, srv.URL, "POST "+c.path+" HTTP/1.1\r\nHost: x\r\n"+c.hdr+"Content-Length: 5000000000\r\n\r\n")
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("answer took %v: the body was waited for", d)
			}
			wantEq(t, "status", resp.StatusCode, c.status)
			wantEq(t, "connection closed (body unread)", resp.Close, true)
			wantEq(t, c.outcome, testutil.ToFloat64(m.Requests.WithLabelValues(c.path, "POST", c.outcome)), 1.0)
		})
	}
	wantEq(t, "backend requests after rejections", len(b.requests()), seen)
}

// TestLogNamesGuardNotKey: the access line says which guard and rule
// decided, and names the key, never its value.
func TestLogNamesGuardNotKey(t *testing.T) {
	b := newBackend(t, nil)
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	clk := newClock("2026-12-01T12:00:00Z")
	g, _ := buildFor(t, guardYAML, b.URL, Deps{Log: log, Now: clk.Now}, nil)
	for range 4 {
		send(g, "GET", "/a", "10.1.1.1", withKey(keyA), "")
	}
	send(g, "GET", "/a", "10.1.1.1", withKey(keyB), "")
	send(g, "GET", "/open", "8.8.8.8", nil, "")
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{
		`"guard":"throttle","rule":"key:alice:plan:gold","api_key":"alice"`,
		`"guard":"api_key","rule":"api_key bob","reason":"API key disabled"`,
		`"guard":"allow_ips","rule":"allow_ips"`,
		`"outcome":"forwarded"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, keyA) || strings.Contains(out, keyB) {
		t.Errorf("log contains a key value:\n%s", out)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestBuildErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"bad policy", "resource_policy: {Statement: [{Effect: Maybe, Principal: '*', Action: '*', Resource: '*'}]}\nroutes: [{path: /a, target: 'http://127.0.0.1:1/'}]", "test.yaml:1: resource_policy: "},
		{"override names no route", "usage_plans: {p: {methods: {/nope/GET: {rate: 1, burst: 1}}}}\nroutes: [{path: /a, target: 'http://127.0.0.1:1/'}]", `test.yaml:1: usage_plans.p.methods: "/nope/GET" names no configured route`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseCfg(c.yaml)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Build(cfg, Deps{Metrics: newMetrics(), Store: memory.New()})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Build error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func parseCfg(yaml string) (*config.Config, error) {
	return config.Parse("test.yaml", []byte(yaml), nil)
}

func newMetrics() *metrics.Metrics { return metrics.New() }

// errType reads x-amzn-ErrorType as the gateway spells it (a recorder's
// header map is not canonicalised on the way out).
func errType(w *httptest.ResponseRecorder) string {
	if v := w.Header()["x-amzn-ErrorType"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// TestSignatureSvix: Svix's published vector, sent with Svix's header
// names through the whole gateway at the vector's time, is forwarded; the
// same request with one byte of the body changed is 401.
func TestSignatureSvix(t *testing.T) {
	b := newBackend(t, nil)
	yaml := `
routes:
  - {path: /hook, methods: [POST], target: "{T}/hook", verify: {provider: standard, secret_env: SVIX}}
`
	at := time.Unix(1614265330, 0)
	g, m := buildFor(t, yaml, b.URL, Deps{Now: func() time.Time { return at }},
		map[string]string{"SVIX": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	hdr := map[string]string{
		"svix-id":        "msg_p5jXN8AQM9LWM0D4loKWxJek",
		"svix-timestamp": "1614265330",
		"svix-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
	}
	body := `{"test": 2432232314}`
	w := send(g, "POST", "/hook", "10.1.1.1", hdr, body)
	wantEq(t, "status", w.Code, 200)
	wantEq(t, "backend body", string(b.last(t).Body), body)

	changed := `{"test": 2432232315}`
	w = send(g, "POST", "/hook", "10.1.1.1", hdr, changed)
	wantEq(t, "status", w.Code, 401)
	wantEq(t, "body", w.Body.String(), `{"message":"Unauthorized"}`)
	wantEq(t, "backend requests", len(b.requests()), 1)
	wantEq(t, "signature_rejected", testutil.ToFloat64(m.Requests.WithLabelValues("/hook", "POST", "signature_rejected")), 1.0)
}
