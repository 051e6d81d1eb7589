package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/glob"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bbolt "go.etcd.io/bbolt"
)

// routingFixture is a gateway with a real bbolt queue and a worker, on a
// step clock that the guards, the queue and the worker all read.
type routingFixture struct {
	url   string
	m     *metrics.Metrics
	q     *delivery.Queue
	w     *delivery.Worker
	clock *clock
}

const ghSecret = "It's a Secret to Everybody"

var routingEnv = map[string]string{
	"GITHUB_WEBHOOK_SECRET": ghSecret,
	"STRIPE_SECRET":         "whsec_stripe_endpoint_secret",
	"OUTBOUND_SECRET":       "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}

// routingGateway serves yaml, whose {A}, {B}... are replaced by the
// given backends' URLs.
func routingGateway(t *testing.T, yaml string, backends map[string]string) *routingFixture {
	t.Helper()
	for k, v := range backends {
		yaml = strings.ReplaceAll(yaml, "{"+k+"}", v)
	}
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(n string) (string, bool) { v, ok := routingEnv[n]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	f := &routingFixture{clock: newClock("2026-05-01T00:00:00Z")}
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if f.q, err = delivery.Open(db, delivery.Options{Clock: f.clock}); err != nil {
		t.Fatal(err)
	}
	f.w = delivery.NewWorker(f.q, delivery.WorkerOptions{Clock: f.clock, Rand: func(int64) int64 { return 0 }})
	f.w.SetPolicies(delivery.Policies(cfg))
	t.Cleanup(f.w.Close)
	f.m = metrics.New()
	g, err := Build(cfg, Deps{Metrics: f.m, Queue: f.q, Store: memory.New(), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	f.url = srv.URL
	return f
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "github", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// githubReq is a webhook as GitHub sends it: event, delivery GUID, JSON
// body and its X-Hub-Signature-256 (empty secret: unsigned).
func githubReq(url, event, guid string, body []byte, secret string) *http.Request {
	r := mustReq("POST", url, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "GitHub-Hookshot/a1b2c3d")
	r.Header.Set("X-GitHub-Event", event)
	r.Header.Set("X-GitHub-Delivery", guid)
	r.Header.Set("X-GitHub-Hook-ID", "511234567")
	if secret != "" {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		r.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	return r
}

func wantFiltered(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != 202 || string(body) != `{"message":"Filtered"}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s: %d %s, want 202 {\"message\":\"Filtered\"}", what, resp.StatusCode, body)
	}
	if resp.Header.Get("x-amzn-ErrorType") != "" {
		t.Errorf("%s: a filtered request is no error, but x-amzn-ErrorType = %q", what, resp.Header.Get("x-amzn-ErrorType"))
	}
}

// TestMatchGitHub (routing acceptance 1): a GitHub-signed route matching
// X-GitHub-Event: push and json ref: refs/heads/main delivers a push to
// main; a push to another branch, a pull_request, an issues event and a
// ping are answered 202 Filtered and reach no backend; an unsigned push
// to main and a badly signed one are 401, before any matching.
func TestMatchGitHub(t *testing.T) {
	ci := newBackend(t, nil)
	f := routingGateway(t, `
routes:
  - path: /hooks/github
    methods: [POST]
    target: {A}/github-webhook/
    verify: {provider: github, secret_env: GITHUB_WEBHOOK_SECRET}
    match:
      header: {X-GitHub-Event: push}
      json: {ref: ["refs/heads/main", "refs/heads/release/*"]}
    delivery: {mode: async}
`, map[string]string{"A": ci.URL})
	push := fixture(t, "push.json")
	other := bytes.Replace(push, []byte(`"ref": "refs/heads/main"`), []byte(`"ref": "refs/heads/feature/routing"`), 1)
	release := bytes.Replace(push, []byte(`"ref": "refs/heads/main"`), []byte(`"ref": "refs/heads/release/1.2"`), 1)
	if bytes.Equal(other, push) || bytes.Equal(release, push) {
		t.Fatal("fixture has no ref to replace")
	}
	url := f.url + "/hooks/github"

	resp, body := do(t, githubReq(url, "push", "guid-main", push, ghSecret))
	acceptedID(t, resp, body)
	resp, body = do(t, githubReq(url, "push", "guid-release", release, ghSecret))
	acceptedID(t, resp, body)
	for _, tc := range []struct {
		what, event string
		body        []byte
	}{
		{"push to another branch", "push", other},
		{"pull_request", "pull_request", fixture(t, "pull_request.json")},
		{"issues event", "issues", fixture(t, "pull_request.json")},
		{"ping", "ping", fixture(t, "ping.json")},
	} {
		resp, body := do(t, githubReq(url, tc.event, "guid-"+tc.event, tc.body, ghSecret))
		wantFiltered(t, tc.what, resp, body)
	}
	// Unsigned, or signed with another secret: 401 whatever the match
	// would say (the push to main would match).
	for _, secret := range []string{"", "not the secret"} {
		resp, body := do(t, githubReq(url, "push", "guid-unsigned", push, secret))
		if resp.StatusCode != 401 || string(body) != `{"message":"Unauthorized"}` {
			t.Errorf("secret %q: %d %s, want 401", secret, resp.StatusCode, body)
		}
	}

	if n, err := f.w.RunOnce(context.Background()); n != 2 || err != nil {
		t.Fatalf("attempts = %d, %v; want the two matching pushes", n, err)
	}
	got := ci.requests()
	if len(got) != 2 || !bytes.Equal(got[0].Body, push) || !bytes.Equal(got[1].Body, release) {
		t.Fatalf("backend got %d requests, want the push to main then to release/1.2", len(got))
	}
	if got[0].RequestURI != "/github-webhook/" || got[0].Header.Get("X-Hub-Signature-256") == "" || got[0].Header.Get("X-Github-Event") != "push" {
		t.Errorf("delivered: %s %v", got[0].RequestURI, got[0].Header)
	}
	if c, _ := f.q.Counts(); c.Delivered != 2 || c.Pending+c.Dead != 0 {
		t.Errorf("queue counts %+v, want 2 delivered and nothing else", c)
	}
	wantEq(t, "filtered", testutil.ToFloat64(f.m.Requests.WithLabelValues("/hooks/github", "POST", "filtered")), 4.0)
	wantEq(t, "accepted", testutil.ToFloat64(f.m.Requests.WithLabelValues("/hooks/github", "POST", "accepted")), 2.0)
	wantEq(t, "signature_rejected", testutil.ToFloat64(f.m.Requests.WithLabelValues("/hooks/github", "POST", "signature_rejected")), 2.0)
}

// TestMatchSiblingRoutes: routes sharing a path and method are tried in
// config order after one verification; the first whose match holds
// serves, sync or async; a query match and a catch-all last route work.
func TestMatchSiblingRoutes(t *testing.T) {
	ci, chat, rest := newBackend(t, nil), newBackend(t, nil), newBackend(t, nil)
	f := routingGateway(t, `
routes:
  - path: /hooks/github
    methods: [POST]
    target: {A}/ci
    verify: {provider: github, secret_env: GITHUB_WEBHOOK_SECRET}
    match: {header: {X-GitHub-Event: [push]}, query: {env: [prod, "stag*"]}}
  - path: /hooks/github
    methods: [POST]
    target: {B}/chat
    verify: {provider: github, secret_env: GITHUB_WEBHOOK_SECRET}
    match: {header: {X-GitHub-Event: ["pull_*"]}, json: {pull_request.head.ref: "feature/*", pull_request.base.repo.topics: webhooks}}
  - path: /hooks/github
    methods: [POST]
    target: {C}/rest
    verify: {provider: github, secret_env: GITHUB_WEBHOOK_SECRET}
`, map[string]string{"A": ci.URL, "B": chat.URL, "C": rest.URL})
	push, pr := fixture(t, "push.json"), fixture(t, "pull_request.json")
	for _, tc := range []struct {
		query, event string
		body         []byte
		want         *backend
	}{
		{"?env=prod", "push", push, ci},
		{"?x=1&env=staging", "push", push, ci},
		{"?env=dev", "push", push, rest}, // query fails: the catch-all
		{"", "pull_request", pr, chat},
		{"", "ping", fixture(t, "ping.json"), rest},
	} {
		before := len(tc.want.requests())
		resp, body := do(t, githubReq(f.url+"/hooks/github"+tc.query, tc.event, "g", tc.body, ghSecret))
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Errorf("%s %s: %d %s", tc.event, tc.query, resp.StatusCode, body)
		}
		if len(tc.want.requests()) != before+1 {
			t.Errorf("%s %s went to the wrong target", tc.event, tc.query)
		}
	}
	wantEq(t, "requests", len(ci.requests())+len(chat.requests())+len(rest.requests()), 5)
}

// TestMatchNotJSON: a body that is not JSON (or is empty) holds for no
// json path, so the request is filtered, never an error.
func TestMatchNotJSON(t *testing.T) {
	ci := newBackend(t, nil)
	f := routingGateway(t, `
routes:
  - path: /hook
    methods: [POST]
    target: {A}/
    verify: {provider: github, secret_env: GITHUB_WEBHOOK_SECRET}
    match: {json: {action: "*"}}
`, map[string]string{"A": ci.URL})
	for _, body := range []string{"", "action=opened", `{"action": "opened"`, `["action"]`, `{"other": 1}`} {
		resp, b := do(t, githubReq(f.url+"/hook", "push", "g", []byte(body), ghSecret))
		wantFiltered(t, strconv.Quote(body), resp, b)
	}
	resp, b := do(t, githubReq(f.url+"/hook", "push", "g", []byte(`{"action":"opened"}`), ghSecret))
	if resp.StatusCode != 200 {
		t.Errorf("JSON body: %d %s", resp.StatusCode, b)
	}
	wantEq(t, "backend requests", len(ci.requests()), 1)
}

func TestJSONLookup(t *testing.T) {
	body := []byte(` {"a": {"b": [10, {"c": "x\u0079z"}, true], "k\"q": null},
		"s": "a\\b", "arr": ["one", "two"], "n": -1.5e3, "e": {}, "ea": []} `)
	for _, tc := range []struct {
		path string
		pats []string
		want bool
	}{
		{"a.b.0", []string{"10"}, true},
		{"a.b.1.c", []string{"xyz"}, true}, // escapes decoded
		{"a.b.2", []string{"true"}, true},
		{"a.b.3", []string{"*"}, false},
		{`a.k"q`, []string{"null"}, true},
		{"s", []string{`a\b`}, true},
		{"arr", []string{"tw?"}, true}, // any element of an array
		{"arr", []string{"three"}, false},
		{"n", []string{"-1.5e3"}, true},
		{"a", []string{"*"}, false}, // an object is no scalar
		{"e", []string{"*"}, false},
		{"ea", []string{"*"}, false},
		{"missing", []string{"*"}, false},
		{"s.x", []string{"*"}, false},
		{"arr.x", []string{"*"}, false},
	} {
		v, ok := jsonLookup(body, strings.Split(tc.path, "."))
		if got := ok && jsonMatch(tc.pats, v); got != tc.want {
			t.Errorf("%s %v: %v (value %q), want %v", tc.path, tc.pats, got, v, tc.want)
		}
	}
	if k := jsonPathKey(body, "a.b.1.c"); k != "xyz" {
		t.Errorf("jsonPathKey = %q", k)
	}
	if k := jsonPathKey(body, "a.b.0"); k != "10" {
		t.Errorf("jsonPathKey number = %q", k)
	}
	if k := jsonPathKey([]byte("{"), "a"); k != "" {
		t.Errorf("jsonPathKey of no JSON = %q", k)
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"refs/heads/*", "refs/heads/a/b", true},
		{"refs/heads/*", "refs/tags/a", false},
		{"*", "", true},
		{"", "", true},
		{"a?c", "aéc", true},
		{"a?c", "abbc", false},
		{"*main", "refs/heads/main", true},
		{"Push", "push", false},
		{"*a*b*", "xxaxxbxx", true},
	} {
		if glob.Match(tc.p, tc.s) != tc.want || glob.Match(tc.p, []byte(tc.s)) != tc.want {
			t.Errorf("glob(%q, %q) != %v", tc.p, tc.s, tc.want)
		}
	}
}

// TestSignLateDelivery (routing acceptance 3): a Stripe-style backend
// checks a signature with a 5-minute tolerance. A delivery first
// attempted 10 minutes after acceptance (the injected clock moved) is
// accepted with delivery.sign (Standard Webhooks headers, verified here by
// the specification's algorithm) and refused without it (Stripe's own
// signature, made at acceptance, is 10 minutes old by then).
func TestSignLateDelivery(t *testing.T) {
	const tolerance = 5 * time.Minute
	outbound, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(routingEnv["OUTBOUND_SECRET"], "whsec_"))
	var f *routingFixture
	backend := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		now := f.clock.Now()
		body := r.Header.Get("X-Test-Body")
		var ok bool
		var ts int64
		if r.URL.Path == "/signed" {
			// Standard Webhooks: HMAC-SHA256 over "id.timestamp.body",
			// base64, "v1," first; the timestamp within the tolerance.
			id, sig := r.Header.Get("Webhook-Id"), r.Header.Get("Webhook-Signature")
			ts, _ = strconv.ParseInt(r.Header.Get("Webhook-Timestamp"), 10, 64)
			mac := hmac.New(sha256.New, outbound)
			mac.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + body))
			ok = id != "" && sig == "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil))
		} else {
			// Stripe: Stripe-Signature t=…,v1=hex HMAC of "t.body".
			parts := map[string]string{}
			for p := range strings.SplitSeq(r.Header.Get("Stripe-Signature"), ",") {
				k, v, _ := strings.Cut(p, "=")
				parts[k] = v
			}
			ts, _ = strconv.ParseInt(parts["t"], 10, 64)
			mac := hmac.New(sha256.New, []byte(routingEnv["STRIPE_SECRET"]))
			mac.Write([]byte(parts["t"] + "." + body))
			ok = parts["v1"] == hex.EncodeToString(mac.Sum(nil))
		}
		if age := now.Sub(time.Unix(ts, 0)); !ok || age > tolerance || age < -tolerance {
			http.Error(w, "signature rejected", http.StatusBadRequest)
			return
		}
		w.Write([]byte("ok"))
	})
	f = routingGateway(t, `
routes:
  - path: /stripe/signed
    methods: [POST]
    target: {A}/signed
    verify: {provider: stripe, secret_env: STRIPE_SECRET}
    delivery: {mode: async, sign: {scheme: standard, secret_env: OUTBOUND_SECRET}}
  - path: /stripe/plain
    methods: [POST]
    target: {A}/plain
    verify: {provider: stripe, secret_env: STRIPE_SECRET}
    delivery: {mode: async}
`, map[string]string{"A": backend.URL})
	body := `{"id":"evt_1QXyZ","type":"invoice.paid","created":1777593600}`
	ids := map[string]string{}
	for _, path := range []string{"/stripe/signed", "/stripe/plain"} {
		t0 := f.clock.Now().Unix()
		mac := hmac.New(sha256.New, []byte(routingEnv["STRIPE_SECRET"]))
		mac.Write([]byte(strconv.FormatInt(t0, 10) + "." + body))
		req := mustReq("POST", f.url+path, strings.NewReader(body))
		req.Header.Set("Stripe-Signature", "t="+strconv.FormatInt(t0, 10)+",v1="+hex.EncodeToString(mac.Sum(nil)))
		req.Header.Set("X-Test-Body", body)
		resp, b := do(t, req)
		ids[path] = acceptedID(t, resp, b)
	}
	f.clock.Add(10 * time.Minute) // the backend was down, say
	if n, _ := f.w.RunOnce(context.Background()); n != 2 {
		t.Fatalf("attempts = %d, want 2", n)
	}
	signed, _ := f.q.Get(ids["/stripe/signed"])
	plain, _ := f.q.Get(ids["/stripe/plain"])
	if signed.State != delivery.Delivered {
		t.Errorf("with sign: %s after %+v; want delivered", signed.State, signed.Attempts)
	}
	if plain.State != delivery.Dead || plain.Attempts[0].Status != 400 {
		t.Errorf("without sign: %s after %+v; want dead with the backend's 400", plain.State, plain.Attempts)
	}
	got := backend.requests()
	for _, s := range got {
		if s.RequestURI == "/signed" && s.Header.Get("Stripe-Signature") == "" {
			t.Error("the provider's Stripe-Signature was not kept beside drawbridge's")
		}
	}
}

// TestSignSync: a sync route signs what it forwards at once, with the
// request id as webhook-id.
func TestSignSync(t *testing.T) {
	b := newBackend(t, nil)
	f := routingGateway(t, `
routes:
  - path: /hook
    methods: [POST]
    target: {A}/
    verify: {provider: github, secret_env: GITHUB_WEBHOOK_SECRET}
    delivery: {sign: {scheme: standard, secret_env: OUTBOUND_SECRET}}
`, map[string]string{"A": b.URL})
	body := []byte(`{"zen":"Keep it logically awesome."}`)
	resp, _ := do(t, githubReq(f.url+"/hook", "ping", "g", body, ghSecret))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := b.last(t)
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(routingEnv["OUTBOUND_SECRET"], "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(got.Header.Get("Webhook-Id") + "." + got.Header.Get("Webhook-Timestamp") + "." + string(body)))
	if got.Header.Get("Webhook-Signature") != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) ||
		got.Header.Get("Webhook-Id") != resp.Header.Get("x-amzn-RequestId") ||
		got.Header.Get("Webhook-Timestamp") != strconv.FormatInt(f.clock.Now().Unix(), 10) {
		t.Errorf("sync signature headers: %v (request id %s)", got.Header, resp.Header.Get("x-amzn-RequestId"))
	}
	if got.Header.Get("X-Hub-Signature-256") == "" {
		t.Error("the provider's signature was not kept")
	}
}

func fixtureB(b *testing.B, name string) []byte { return fixture(b, name) }

// downAddr is a loopback address where nothing listens (yet).
func downAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// upAt starts a recording backend on addr.
func upAt(t *testing.T, addr string) *backend {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, nil)
	b.Server.Close()
	b.Server = httptest.NewUnstartedServer(b.Server.Config.Handler)
	b.Server.Listener = l
	b.Server.Start()
	t.Cleanup(b.Server.Close)
	return b
}

// TestFanOut (routing acceptance 2, in process): one request to a route
// with two targets, one of them down, is one 202 with one id and two
// deliveries; the up target gets it at once, the down one after it comes
// up, each with its own attempts; `deliveries show` (Get) lists both
// targets' states; a target's own match narrows what it gets.
func TestFanOut(t *testing.T) {
	ci := newBackend(t, nil)
	chatAddr := downAddr(t)
	f := routingGateway(t, `
routes:
  - path: /hooks/github
    methods: [POST]
    verify: {provider: github, secret_env: GITHUB_WEBHOOK_SECRET}
    targets:
      - {name: ci, target: "{A}/github-webhook/"}
      - {name: chat, target: "{B}/notify", timeout: 5s, match: {header: {X-GitHub-Event: [push]}}, delivery: {retry: {base: 1m, max: 1m}}}
    delivery: {mode: async, retry: {base: 1s, max: 1s}}
`, map[string]string{"A": ci.URL, "B": "http://" + chatAddr})
	push := fixture(t, "push.json")
	resp, body := do(t, githubReq(f.url+"/hooks/github", "push", "guid-push", push, ghSecret))
	id := acceptedID(t, resp, body)

	if n, _ := f.w.RunOnce(context.Background()); n != 2 {
		t.Fatalf("attempts = %d, want one per target", n)
	}
	if got := ci.requests(); len(got) != 1 || !bytes.Equal(got[0].Body, push) || got[0].RequestURI != "/github-webhook/" {
		t.Fatalf("ci got %d requests", len(got))
	}
	d, err := f.q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Targets) != 2 || d.Targets[0].ID != id || d.Targets[0].Route != "/hooks/github#ci" || d.Targets[0].State != delivery.Delivered ||
		d.Targets[1].Route != "/hooks/github#chat" || d.Targets[1].State != delivery.Pending || d.Targets[1].Attempts != 1 {
		t.Fatalf("targets of %s: %+v", id, d.Targets)
	}
	chatID := d.Targets[1].ID
	if cd, _ := f.q.Get(chatID); cd.Request != id || cd.URL != "http://"+chatAddr+"/notify" {
		t.Errorf("chat delivery: request %q, url %s", cd.Request, cd.URL)
	}

	// A pull_request goes to ci only: chat's match does not hold.
	resp, body = do(t, githubReq(f.url+"/hooks/github", "pull_request", "guid-pr", fixture(t, "pull_request.json"), ghSecret))
	prID := acceptedID(t, resp, body)
	if pd, _ := f.q.Get(prID); pd.Route != "/hooks/github#ci" || len(pd.Targets) != 0 {
		t.Errorf("pull_request: %s, targets %+v", pd.Route, pd.Targets)
	}
	chat := upAt(t, chatAddr)
	f.clock.Add(time.Minute)
	if n, _ := f.w.RunOnce(context.Background()); n != 2 {
		t.Fatalf("attempts = %d, want chat's retry and ci's pull_request", n)
	}
	if got := chat.requests(); len(got) != 1 || !bytes.Equal(got[0].Body, push) || got[0].Header.Get("X-Drawbridge-Delivery") != chatID {
		t.Fatalf("chat got %d requests", len(got))
	}
	if d, _ := f.q.Get(id); d.Targets[1].State != delivery.Delivered || d.Targets[1].Attempts != 2 {
		t.Errorf("after chat came up: %+v", d.Targets)
	}
	// A duplicate of the push (GitHub redelivers) gets the same id and
	// stores nothing.
	resp, body = do(t, githubReq(f.url+"/hooks/github", "push", "guid-push", push, ghSecret))
	if again := acceptedID(t, resp, body); again != id {
		t.Errorf("duplicate got %s, want %s", again, id)
	}
	if c, _ := f.q.Counts(); c.Delivered != 3 || c.Pending != 0 {
		t.Errorf("counts %+v", c)
	}
	// Per-target counters: the duplicate counts nowhere.
	wantEq(t, "ci accepted", testutil.ToFloat64(f.m.DeliveryOutcomes.WithLabelValues("/hooks/github#ci", "accepted")), 2.0)
	wantEq(t, "chat accepted", testutil.ToFloat64(f.m.DeliveryOutcomes.WithLabelValues("/hooks/github#chat", "accepted")), 1.0)
}

// TestFanOutAllFiltered: when no target's match holds, the request is
// filtered (202 Filtered), nothing stored.
func TestFanOutAllFiltered(t *testing.T) {
	f := routingGateway(t, `
routes:
  - path: /hook
    methods: [POST]
    verify: {provider: github, secret_env: GITHUB_WEBHOOK_SECRET}
    targets:
      - {target: "http://127.0.0.1:1/a", match: {header: {X-GitHub-Event: push}}}
      - {target: "http://127.0.0.1:1/b", match: {json: {action: opened}}}
    delivery: {mode: async}
`, nil)
	resp, body := do(t, githubReq(f.url+"/hook", "ping", "g", fixture(t, "ping.json"), ghSecret))
	wantFiltered(t, "ping", resp, body)
	if c, _ := f.q.Counts(); c != (delivery.Counts{}) {
		t.Errorf("counts %+v, want nothing stored", c)
	}
}

// TestOrderAndCoalesce (routing acceptance 4, embedded driver): with
// order_by: json:ref and coalesce: latest, a slow backend and 20 pushes to
// two branches, each branch's deliveries never overlap and arrive in
// order, the branches go in parallel, and of each burst only the first
// (in flight when the rest arrived) and the newest are delivered; the 16
// others are listed as coalesced.
func TestOrderAndCoalesce(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	inFlight := map[string]int{}
	var order []string
	var problems []string
	started := make(chan string, 100)
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		guid := r.Header.Get("X-Github-Delivery") // "main-3"
		branch, _, _ := strings.Cut(guid, "-")
		mu.Lock()
		if inFlight[branch]++; inFlight[branch] > 1 {
			problems = append(problems, "two deliveries of "+branch+" at once")
		}
		order = append(order, guid)
		mu.Unlock()
		started <- guid
		<-release
		time.Sleep(20 * time.Millisecond) // slow, always
		mu.Lock()
		inFlight[branch]--
		mu.Unlock()
	})
	f := routingGateway(t, `
routes:
  - path: /hooks/github
    methods: [POST]
    target: {A}/ci
    verify: {provider: github, secret_env: GITHUB_WEBHOOK_SECRET}
    delivery: {mode: async, order_by: "json:ref", coalesce: latest, concurrency: 2}
`, map[string]string{"A": b.URL})
	push := fixture(t, "push.json")
	send := func(branch string, n int) {
		body := bytes.Replace(push, []byte(`"ref": "refs/heads/main"`), []byte(`"ref": "refs/heads/`+branch+`"`), 1)
		resp, rb := do(t, githubReq(f.url+"/hooks/github", "push", branch+"-"+strconv.Itoa(n), body, ghSecret))
		acceptedID(t, resp, rb)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	send("main", 1)
	send("dev", 1)
	got := map[string]bool{}
	for range 2 { // both branches start at once: keys go in parallel
		select {
		case g := <-started:
			got[g] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("first pushes not in flight together: %v", got)
		}
	}
	for n := 2; n <= 10; n++ {
		send("main", n)
		send("dev", n)
	}
	close(release)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, _ := f.q.Counts()
		if c.Delivered == 4 && c.Coalesced == 16 && c.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts %+v, want 4 delivered and 16 coalesced", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var main, dev []string
	for _, g := range order {
		if strings.HasPrefix(g, "main") {
			main = append(main, g)
		} else {
			dev = append(dev, g)
		}
	}
	if strings.Join(main, ",") != "main-1,main-10" || strings.Join(dev, ",") != "dev-1,dev-10" || len(problems) > 0 {
		t.Errorf("delivered main %v, dev %v (want the first and the newest of each); %v", main, dev, problems)
	}
	co, _ := f.q.List(delivery.Filter{State: delivery.Coalesced})
	if len(co) != 16 {
		t.Fatalf("listed coalesced: %d", len(co))
	}
	for _, d := range co {
		if len(d.Attempts) != 0 || d.OrderKey != "refs/heads/main" && d.OrderKey != "refs/heads/dev" {
			t.Errorf("coalesced %s: key %q, %d attempts", d.ID, d.OrderKey, len(d.Attempts))
		}
	}
}

// TestExplainMatch: explain walks the match step as serve does: the
// matching sibling forwards, an event no route takes is 202 Filtered.
func TestExplainMatch(t *testing.T) {
	cfg, err := config.Parse("e.yaml", []byte(`
routes:
  - path: /hooks/github
    methods: [POST]
    target: http://127.0.0.1:1/ci
    match: {header: {X-GitHub-Event: push}, json: {ref: refs/heads/main}}
  - path: /hooks/github
    methods: [POST]
    target: http://127.0.0.1:1/other
    match: {header: {X-GitHub-Event: ping}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(cfg, Deps{Metrics: metrics.New(), Store: memory.New()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, tc := range []struct {
		event, body, want string
	}{
		{"push", `{"ref":"refs/heads/main"}`, "forward POST http://127.0.0.1:1/ci"},
		{"ping", `{}`, "forward POST http://127.0.0.1:1/other"},
		{"push", `{"ref":"refs/heads/dev"}`, `result: 202 {"message":"Filtered"}`},
	} {
		r := mustReq("POST", "http://gw/hooks/github", nil)
		r.Header.Set("X-GitHub-Event", tc.event)
		e := g.Explain(r, []byte(tc.body))
		got := e.Result()
		if e.Forward != "" {
			got = "forward " + e.Forward
		}
		if got != tc.want || !strings.HasPrefix(e.Lines[len(e.Lines)-1], "match: ") {
			t.Errorf("%s %s: %s, want %s\n%s", tc.event, tc.body, got, tc.want, strings.Join(e.Lines, "\n"))
		}
	}
}
