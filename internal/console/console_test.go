package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/drawbridge/drawbridge/internal/admin"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/metrics"
)

const operatorToken = "op-token-7f3a9c"

var t0 = time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)

type fixture struct {
	c       *Console
	q       *delivery.Queue
	m       *metrics.Metrics
	cfg     *config.Config
	recent  *Recent
	now     time.Time
	hookA   string // a dead delivery of /hooks/a
	hookB   string // a dead delivery of /hooks/b
	okID    string // a delivered one
	binary  string // a delivered one with a binary body
	pending string
	logs    bytes.Buffer // the console's log
}

const baseConfig = `listen: 127.0.0.1:0
api_keys:
  - {name: ci-bot, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, plan: gold}
usage_plans:
  gold: {quota: {limit: 100, period: DAY}}
state: {driver: redis, url: "redis://:hunter2@127.0.0.1:6379/0"}
routes:
  - {path: /hooks/a, target: "http://127.0.0.1:1/a", delivery: {mode: async}}
  - {path: /hooks/b, target: "http://127.0.0.1:1/b", delivery: {mode: async}}
  - {path: /sync, target: "http://127.0.0.1:1/s"}
`

func authConfig() string {
	d := sha256.Sum256([]byte(operatorToken))
	return "admin: \":9090\"\nadmin_auth:\n  tokens:\n    - {name: alice, sha256: " + hex.EncodeToString(d[:]) + "}\n" + baseConfig
}

// newFixture serves the console over a real delivery queue (bbolt) with
// deliveries in every state, and the admin API behind it.
func newFixture(t testing.TB, yaml string) *fixture {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "drawbridge.yaml"), []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "s.db"), 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q, err := delivery.Open(db, delivery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{q: q, cfg: cfg, m: metrics.New(), recent: NewRecent(), now: time.Now()}
	f.m.Recent = f.recent
	f.hookA = f.dead(t, "/hooks/a", "http://127.0.0.1:1/a", []byte(`{"n":1}`))
	f.hookB = f.dead(t, "/hooks/b", "http://127.0.0.1:1/b", []byte(`{"n":2}`))
	f.okID = f.finish(t, "/hooks/a", []byte("<script>alert('owned')</script>"), delivery.Delivered, 200)
	f.binary = f.finish(t, "/hooks/a", []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff}, delivery.Delivered, 200)
	f.pending = f.enqueue(t, "/hooks/b", "http://127.0.0.1:1/b", []byte("later"))
	f.c = New(Deps{
		Admin:      admin.Handler(f.m.Registry, func(context.Context) error { return nil }, q),
		Config:     func() *config.Config { return f.cfg },
		Metrics:    f.m,
		Deliveries: q,
		Now:        func() time.Time { return f.now },
		Log:        slog.New(slog.NewTextHandler(&f.logs, nil)),
	})
	return f
}

func (f *fixture) enqueue(t testing.TB, route, target string, body []byte) string {
	t.Helper()
	id, _, err := f.q.Enqueue(context.Background(), &delivery.Delivery{Route: route, Method: "POST", URL: target,
		Header: http.Header{"Authorization": {"Bearer upstream-s3cret"}, "X-Hub-Signature-256": {"sha256=abc"}, "Content-Type": {"application/json"}},
		Body:   body})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// finish enqueues a delivery and records one attempt that ends it.
func (f *fixture) finish(t testing.TB, route string, body []byte, st delivery.State, status int) string {
	t.Helper()
	id := f.enqueue(t, route, "http://127.0.0.1:1"+strings.TrimPrefix(route, "/hooks"), body)
	d, err := f.q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	a := delivery.Attempt{At: time.Now(), Status: status, Duration: 3 * time.Millisecond}
	if status == 0 {
		a.Error = "dial tcp 127.0.0.1:1: connect: connection refused"
	}
	if err := f.q.Finish(context.Background(), d, a, st, time.Time{}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) dead(t testing.TB, route, _ string, body []byte) string {
	return f.finish(t, route, body, delivery.Dead, 0)
}

// do sends one request to the console as a browser on the same origin
// would (Host 127.0.0.1:9090), with extra headers.
func (f *fixture) do(t testing.TB, method, target string, form url.Values, hdr ...string) *http.Response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "http://127.0.0.1:9090"+target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			r.Host = hdr[i+1]
			continue
		}
		if hdr[i] == "RemoteAddr" {
			r.RemoteAddr = hdr[i+1]
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.c.ServeHTTP(w, r)
	return w.Result()
}

func text(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the token from a page, as a browser's form carries it.
func (f *fixture) csrf(t testing.TB, hdr ...string) string {
	t.Helper()
	page := text(t, f.do(t, "GET", "/console/deliveries", nil, hdr...))
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in the deliveries page:\n%s", page)
	}
	return m[1]
}

func (f *fixture) state(t testing.TB, id string) delivery.State {
	t.Helper()
	d, err := f.q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return d.State
}

// TestPagesRender: every page answers 200 with a title, a heading and
// the safety headers.
func TestPagesRender(t *testing.T) {
	f := newFixture(t, baseConfig)
	for _, p := range []string{"/", "/?window=1m", "/console/rejections", "/console/deliveries", "/console/deliveries?state=dead",
		"/console/deliveries/" + f.hookA, "/console/agents", "/console/keys", "/console/config"} {
		resp := f.do(t, "GET", p, nil)
		body := text(t, resp)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d\n%s", p, resp.StatusCode, body)
			continue
		}
		if !strings.Contains(body, "<title>") || !strings.Contains(body, "<h1>") {
			t.Errorf("%s: no title or h1", p)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != CSP || !strings.Contains(got, "default-src 'none'") {
			t.Errorf("%s: CSP %q", p, got)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", p, resp.Header.Get("X-Frame-Options"))
		}
	}
	if body := text(t, f.do(t, "GET", "/console/agents", nil)); !strings.Contains(body, "No agents configured") {
		t.Error("agents page does not say none are configured")
	}
	if resp := f.do(t, "GET", "/console/static/console.css", nil); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestBodyShownAsText: a body with <script> is escaped text, never markup;
// a binary body is a hex dump; credentials in headers are redacted.
func TestBodyShownAsText(t *testing.T) {
	f := newFixture(t, baseConfig)
	page := text(t, f.do(t, "GET", "/console/deliveries/"+f.okID, nil))
	if strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;") {
		t.Fatalf("the body is not escaped:\n%s", page)
	}
	if strings.Contains(page, "upstream-s3cret") || !strings.Contains(page, delivery.Redacted) || !strings.Contains(page, "sha256=abc") {
		t.Fatalf("headers: a credential is shown or the signature is not:\n%s", page)
	}
	bin := text(t, f.do(t, "GET", "/console/deliveries/"+f.binary, nil))
	if !strings.Contains(bin, "Binary body") || !strings.Contains(bin, "89 50 4e 47 00 01 02 ff") {
		t.Fatalf("binary body not shown as such:\n%s", bin)
	}
	if !strings.Contains(bin, "8 B") {
		t.Fatal("the body's size is not shown")
	}
	dead := text(t, f.do(t, "GET", "/console/deliveries/"+f.hookA, nil))
	for _, want := range []string{"connection refused", "Replay this delivery", "<th scope=\"col\">Status</th>"} {
		if !strings.Contains(dead, want) {
			t.Errorf("dead delivery page lacks %q", want)
		}
	}
	pend := text(t, f.do(t, "GET", "/console/deliveries/"+f.pending, nil))
	if !strings.Contains(pend, "Next try") || strings.Contains(pend, "Replay this delivery") {
		t.Error("pending page: no next try, or a replay button")
	}
	if resp := f.do(t, "GET", "/console/deliveries/01ZZZZZZZZZZZZZZZZZZZZZZZZ", nil); resp.StatusCode != 404 {
		t.Errorf("unknown id: %d", resp.StatusCode)
	}
}

// TestCrossSiteRefused: a state-changing request another site makes, to
// the console or the JSON API, is 403 and changes nothing.
func TestCrossSiteRefused(t *testing.T) {
	f := newFixture(t, baseConfig)
	tok := f.csrf(t)
	form := url.Values{"csrf": {tok}, "route": {"/hooks/a"}, "state": {"delivered"}}
	actions := []string{
		"/console/deliveries/" + f.hookA + "/replay",
		"/console/deliveries/replay-dead",
		"/console/deliveries/purge",
		"/deliveries/" + f.hookA + "/replay",
		"/deliveries/replay?since=2000-01-01T00:00:00Z",
		"/deliveries/purge?state=delivered&older_than=2100-01-01T00:00:00Z",
	}
	for _, hdr := range [][]string{
		{"Origin", "https://evil.example"},
		{"Origin", "http://127.0.0.1:8080"}, // the public listener: same site, other origin
		{"Origin", "null"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
	} {
		for _, a := range actions {
			resp := f.do(t, "POST", a, form, hdr...)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s with %v: %d, want 403", a, hdr, resp.StatusCode)
			}
		}
	}
	c, _ := f.q.Counts()
	if f.state(t, f.hookA) != delivery.Dead || c.Delivered != 2 {
		t.Fatalf("a refused request changed the queue: %s %+v", f.state(t, f.hookA), c)
	}
	// The same form from the console's own origin works.
	resp := f.do(t, "POST", "/console/deliveries/"+f.hookA+"/replay", form, "Origin", "http://127.0.0.1:9090", "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther || f.state(t, f.hookA) != delivery.Pending {
		t.Fatalf("same-origin replay: %d, state %s", resp.StatusCode, f.state(t, f.hookA))
	}
	// The CLI (no Origin, no Sec-Fetch-Site) keeps working.
	cli := &admin.Client{Base: "http://127.0.0.1:9090", HTTP: &http.Client{Transport: handlerTransport{f.c}}}
	if err := cli.Replay(f.hookB); err != nil || f.state(t, f.hookB) != delivery.Pending {
		t.Fatalf("CLI replay: %v, %s", err, f.state(t, f.hookB))
	}
}

// handlerTransport serves a client's requests with a handler in process.
type handlerTransport struct{ h http.Handler }

func (h handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	return w.Result(), nil
}

// TestCSRF: a console action without the form's token, or with another,
// is 403 and changes nothing.
func TestCSRF(t *testing.T) {
	f := newFixture(t, baseConfig)
	for _, tok := range []string{"", "forged", strings.Repeat("A", 43)} {
		for _, a := range []string{"/console/deliveries/" + f.hookA + "/replay", "/console/deliveries/replay-dead", "/console/deliveries/purge"} {
			resp := f.do(t, "POST", a, url.Values{"csrf": {tok}, "route": {"/hooks/a"}, "state": {"delivered"}})
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s with csrf %q: %d", a, tok, resp.StatusCode)
			}
		}
	}
	if c, _ := f.q.Counts(); f.state(t, f.hookA) != delivery.Dead || c.Delivered != 2 {
		t.Fatal("a request without the CSRF token changed the queue")
	}
	// A GET cannot act: the actions are POST only.
	if resp := f.do(t, "GET", "/console/deliveries/purge?state=delivered", nil); resp.StatusCode == http.StatusSeeOther {
		t.Fatal("GET purged")
	}
}

// TestActions: replay one, replay the dead letters of one route, purge
// delivered.
func TestActions(t *testing.T) {
	f := newFixture(t, baseConfig)
	other := f.dead(t, "/hooks/a", "", []byte("x"))
	tok := f.csrf(t)
	resp := f.do(t, "POST", "/console/deliveries/replay-dead", url.Values{"csrf": {tok}, "route": {"/hooks/a"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "n=2") {
		t.Fatalf("replay dead: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if f.state(t, f.hookA) != delivery.Pending || f.state(t, other) != delivery.Pending || f.state(t, f.hookB) != delivery.Dead {
		t.Fatal("replay-dead of /hooks/a: wrong deliveries replayed")
	}
	page := text(t, f.do(t, "GET", resp.Header.Get("Location"), nil))
	if !strings.Contains(page, "Replayed 2 dead letters") {
		t.Fatal("no flash after replay-dead")
	}
	resp = f.do(t, "POST", "/console/deliveries/purge", url.Values{"csrf": {tok}, "state": {"delivered"}})
	if c, _ := f.q.Counts(); resp.StatusCode != http.StatusSeeOther || c.Delivered != 0 {
		t.Fatalf("purge: %d, %+v", resp.StatusCode, c)
	}
	if resp := f.do(t, "POST", "/console/deliveries/purge", url.Values{"csrf": {tok}, "state": {"pending"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("purge pending: %d", resp.StatusCode)
	}
	resp = f.do(t, "POST", "/console/deliveries/"+f.hookB+"/replay", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusSeeOther || f.state(t, f.hookB) != delivery.Pending {
		t.Fatalf("replay one: %d", resp.StatusCode)
	}
}

// TestForeignHost: DNS rebinding reaches the listener under the
// attacker's name: refused, except for probes.
func TestForeignHost(t *testing.T) {
	y := "admin_hosts: [console.internal.example]\n" + baseConfig
	f := newFixture(t, y)
	for host, want := range map[string]int{
		"evil.example:9090": 403, "evil.example": 403, "127.0.0.1.evil.example:9090": 403,
		"127.0.0.1:9090": 200, "[::1]:9090": 200, "localhost:9090": 200, "10.1.2.3:9090": 200,
		"console.internal.example:9090": 200, "CONSOLE.internal.example.": 200,
	} {
		for _, p := range []string{"/deliveries", "/console/deliveries", "/"} {
			if resp := f.do(t, "GET", p, nil, "Host", host); resp.StatusCode != want {
				t.Errorf("%s with Host %s: %d, want %d", p, host, resp.StatusCode, want)
			}
		}
	}
	if resp := f.do(t, "GET", "/", nil, "Host", "evil.example"); resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Content-Security-Policy") != CSP {
		t.Error("a refusal lacks the safety headers")
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp := f.do(t, "GET", p, nil, "Host", "10.9.8.7.nip.example:9090"); resp.StatusCode != 200 {
			t.Errorf("%s (probe) with a foreign host: %d", p, resp.StatusCode)
		}
	}
}

// TestAdminAuth: with admin_auth, no token is 401 (API) or the login form
// (console); a bearer token or the login cookie lets in; the token never
// appears in a page, a Location or the cookie.
func TestAdminAuth(t *testing.T) {
	f := newFixture(t, authConfig())
	if resp := f.do(t, "GET", "/deliveries", nil); resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("API without token: %d", resp.StatusCode)
	}
	if resp := f.do(t, "POST", "/deliveries/purge?state=delivered&older_than=2100-01-01T00:00:00Z", nil); resp.StatusCode != 401 {
		t.Fatalf("purge without token: %d", resp.StatusCode)
	}
	if resp := f.do(t, "GET", "/deliveries", nil, "Authorization", "Bearer wrong"); resp.StatusCode != 401 {
		t.Fatalf("API with a wrong token: %d", resp.StatusCode)
	}
	if resp := f.do(t, "GET", "/deliveries", nil, "Authorization", "Bearer "+operatorToken); resp.StatusCode != 200 {
		t.Fatalf("API with the token: %d", resp.StatusCode)
	}
	if resp := f.do(t, "GET", "/healthz", nil); resp.StatusCode != 200 {
		t.Fatalf("healthz needs no token: %d", resp.StatusCode)
	}
	resp := f.do(t, "GET", "/console/deliveries", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != loginPath {
		t.Fatalf("console without a session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/console/static/console.css", "/console/static/favicon.svg"} {
		if resp := f.do(t, "GET", p, nil); resp.StatusCode != 200 {
			t.Errorf("%s for the login form: %d", p, resp.StatusCode)
		}
	}
	login := text(t, f.do(t, "GET", loginPath, nil))
	if !strings.Contains(login, `type="password"`) || !strings.Contains(login, `method="post"`) {
		t.Fatal("no login form")
	}
	if resp := f.do(t, "POST", loginPath, url.Values{"token": {"guess"}}); resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	if resp := f.do(t, "POST", loginPath, url.Values{"token": {operatorToken}}, "Origin", "https://evil.example"); resp.StatusCode != 403 {
		t.Fatalf("cross-site login: %d", resp.StatusCode)
	}
	resp = f.do(t, "POST", loginPath, url.Values{"token": {operatorToken}})
	cs := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(cs) != 1 {
		t.Fatalf("login: %d, cookies %v", resp.StatusCode, cs)
	}
	ck := cs[0]
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Name != SessionCookie {
		t.Fatalf("cookie %+v: want Secure, HttpOnly, SameSite=Strict", ck)
	}
	if strings.Contains(ck.Value, operatorToken) || strings.Contains(resp.Header.Get("Location"), operatorToken) {
		t.Fatal("the token is in the cookie or the redirect")
	}
	cookie := SessionCookie + "=" + ck.Value
	for _, p := range []string{"/", "/console/deliveries", "/console/config", "/console/deliveries/" + f.hookA} {
		resp := f.do(t, "GET", p, nil, "Cookie", cookie)
		body := text(t, resp)
		if resp.StatusCode != 200 || !strings.Contains(body, "Signed in as alice") {
			t.Fatalf("%s with the session: %d", p, resp.StatusCode)
		}
		if strings.Contains(body, operatorToken) || strings.Contains(body, hexDigest(operatorToken)) {
			t.Fatalf("%s shows the token or its digest", p)
		}
	}
	// The session's CSRF token works for its operator only.
	tok := f.csrf(t, "Cookie", cookie)
	if resp := f.do(t, "POST", "/console/deliveries/"+f.hookA+"/replay", url.Values{"csrf": {f.c.guard.csrf("")}}, "Cookie", cookie); resp.StatusCode != 403 {
		t.Fatalf("another operator's CSRF token: %d", resp.StatusCode)
	}
	if resp := f.do(t, "POST", "/console/deliveries/"+f.hookA+"/replay", url.Values{"csrf": {tok}}, "Cookie", cookie); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("replay with a session: %d", resp.StatusCode)
	}
	// A tampered or expired session is refused.
	if resp := f.do(t, "GET", "/console/keys", nil, "Cookie", cookie+"x"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("tampered session: %d", resp.StatusCode)
	}
	f.now = f.now.Add(SessionTTL + time.Second)
	if resp := f.do(t, "GET", "/console/keys", nil, "Cookie", cookie); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("expired session: %d", resp.StatusCode)
	}
}

func hexDigest(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

// TestConfigRedacted: the config page has the effective config and the
// egress table, without digests or passwords.
func TestConfigRedacted(t *testing.T) {
	f := newFixture(t, authConfig())
	resp := f.do(t, "GET", "/console/config", nil, "Authorization", "Bearer "+operatorToken)
	page := text(t, resp)
	for _, secret := range []string{"hunter2", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", hexDigest(operatorToken)} {
		if strings.Contains(page, secret) {
			t.Errorf("config page shows %q", secret)
		}
	}
	for _, want := range []string{"/hooks/a", "ci-bot", "alice", "read_header_timeout: 10s", "ACTION", "cloud metadata", "redis://:[redacted]@127.0.0.1:6379/0"} {
		if !strings.Contains(page, want) {
			t.Errorf("config page lacks %q", want)
		}
	}
}

// TestOverviewAndRejections: what the gateway records shows up, counted
// by route and outcome, with rejections by client, key and guard.
func TestOverviewAndRejections(t *testing.T) {
	f := newFixture(t, baseConfig)
	at := f.now.Add(-5 * time.Second)
	for i := range 7 {
		f.recent.Record(metrics.Event{At: at, Route: "/sync", Method: "GET", Outcome: metrics.Forwarded, Upstream: time.Duration(i+1) * time.Millisecond})
	}
	for range 3 {
		f.recent.Record(metrics.Event{At: at, Route: "/sync", Method: "GET", Outcome: metrics.KeyRejected, Guard: "api_key",
			Client: netipMust("203.0.113.9"), Key: ""})
	}
	f.recent.Record(metrics.Event{At: at, Route: "/hooks/a", Method: "POST", Outcome: metrics.Throttled, Guard: "throttle",
		Client: netipMust("198.51.100.7"), Key: "ci-bot"})
	page := text(t, f.do(t, "GET", "/", nil))
	for _, want := range []string{`<dd id="billable">7</dd>`, `<dd id="rejected">4</dd>`, "<th scope=\"row\">/sync</th><td data-label=\"Billable\">7</td><td data-label=\"Rejected\">3</td><td data-label=\"forwarded\">7</td>", "4.0 ms / 7.0 ms / 7.0 ms", "1.1 req/s"} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	rej := text(t, f.do(t, "GET", "/console/rejections", nil))
	for _, want := range []string{"<td>203.0.113.9</td><td>3</td>", "<td>ci-bot</td><td>1</td>", "<td>api_key</td><td>3</td>", "<td>key_rejected</td>"} {
		if !strings.Contains(rej, want) {
			t.Errorf("rejections page lacks %q", want)
		}
	}
}

// TestDeliveryFilters: state, route, target and time filters, and
// paging.
func TestDeliveryFilters(t *testing.T) {
	f := newFixture(t, baseConfig)
	ids := func(q string) []string {
		page := text(t, f.do(t, "GET", "/console/deliveries?"+q, nil))
		return regexp.MustCompile(`href="/console/deliveries/([0-9A-Z]{26})"`).FindAllString(page, -1)
	}
	if got := ids("state=dead"); len(got) != 2 {
		t.Errorf("dead: %d rows", len(got))
	}
	if got := ids("state=dead&route=%2Fhooks%2Fb"); len(got) != 1 || !strings.Contains(got[0], f.hookB) {
		t.Errorf("dead of /hooks/b: %v", got)
	}
	if got := ids("target=127.0.0.1%3A1%2Fb"); len(got) != 2 {
		t.Errorf("target /b: %d rows", len(got))
	}
	if got := ids("since=1h"); len(got) != 5 {
		t.Errorf("since 1h: %d rows", len(got))
	}
	if got := ids("until=2000-01-01T00:00"); len(got) != 0 {
		t.Errorf("until 2000: %d rows", len(got))
	}
	if resp := f.do(t, "GET", "/console/deliveries?since=yesterday", nil); resp.StatusCode != 400 {
		t.Errorf("a bad time: %d", resp.StatusCode)
	}
	for range PageSize {
		f.enqueue(t, "/hooks/a", "http://127.0.0.1:1/a", nil)
	}
	page := text(t, f.do(t, "GET", "/console/deliveries", nil))
	next := regexp.MustCompile(`rel="next" href="/console/deliveries\?([^"]+)"`).FindStringSubmatch(page)
	if next == nil {
		t.Fatal("no next page link")
	}
	q, _ := url.ParseQuery(strings.ReplaceAll(next[1], "&amp;", "&"))
	if got := ids(q.Encode()); len(got) != 5 {
		t.Errorf("second page: %d rows, want 5", len(got))
	}

	// A page reads at most scanLimit deliveries: past that many newer
	// ones that do not match, it says so and links to the next batch.
	for range scanLimit {
		f.enqueue(t, "/hooks/a", "http://127.0.0.1:1/a", nil)
	}
	page = text(t, f.do(t, "GET", "/console/deliveries?state=dead&route=%2Fhooks%2Fb", nil))
	next = regexp.MustCompile(`rel="next" href="/console/deliveries\?([^"]+)"`).FindStringSubmatch(page)
	if !strings.Contains(page, `id="scanned"`) || next == nil {
		t.Fatal("a page that found nothing in its batch has no link to search on")
	}
	q, _ = url.ParseQuery(strings.ReplaceAll(next[1], "&amp;", "&"))
	if got := ids(q.Encode()); len(got) != 1 || !strings.Contains(got[0], f.hookB) {
		t.Errorf("the next batch: %v, want %s", got, f.hookB)
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
