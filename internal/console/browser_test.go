package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/drawbridge/drawbridge/internal/agent"
	"github.com/drawbridge/drawbridge/internal/cli"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// -screenshots writes the browser test's screenshots to this directory
// (docs/console for the README's pictures: go test ./internal/console
// -run TestBrowser -screenshots ../../docs/console); by default they go
// to the test's temporary directory.
var screenshots = flag.String("screenshots", "", "directory for the browser test's screenshots")

// chromium finds Debian's chromium; ./test.sh installs it. Under CI=true
// a missing browser fails the test.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (./test.sh installs Debian's chromium package)")
	}
	t.Skip("chromium is not installed: apt-get install chromium, or run ./test.sh")
	return ""
}

// browser starts a headless Chromium with a fresh profile and nothing
// that reaches out to the network (the machine's network is closed, and
// a test must talk to loopback only).
func browser(t *testing.T) (context.Context, *events) {
	exe := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ev := &events{}
	ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithListener(func(e any) {
		switch e := e.(type) {
		case *page.EventJavascriptDialogOpening:
			ev.add("dialog: " + e.Message)
		case *runtime.EventExceptionThrown:
			ev.add("exception: " + e.ExceptionDetails.Text)
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				ev.add("log: " + e.Entry.Text + " " + e.Entry.URL)
			}
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				ev.add("console." + string(e.Type))
			}
		}
	}))
	t.Cleanup(cancel2)
	// The first Run starts the browser, which lives as long as ctx: no
	// deadline on it (a slow start on a loaded machine is waited for).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, ev
}

type events struct {
	n   atomic.Int32
	all atomic.Value
}

func (e *events) add(s string) {
	e.n.Add(1)
	e.all.Store(s)
}

// check fails the test if anything was reported since the last reset.
func (e *events) check(t *testing.T, when string) {
	t.Helper()
	if n := e.n.Load(); n > 0 {
		t.Fatalf("%s: %d dialogs, exceptions or console errors; the last: %v", when, n, e.all.Load())
	}
}

func (e *events) reset() { e.n.Store(0) }

// run runs actions with a generous deadline: a loaded machine is slow,
// and a wait that never ends must fail, not hang.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowser drives the console of a real serve, with real traffic, in
// headless Chromium: the overview counts what was sent; a dead delivery is
// found by filter, replayed from its page and delivered once the backend
// is fixed; the dead letters of a route are replayed together; a
// <script> in a body is shown, not run; cross-site and CSRF-less POSTs
// are refused; every page passes the accessibility basics, and reads at
// 400 % zoom.
func TestBrowser(t *testing.T) {
	ctx, ev := browser(t)

	var healthy atomic.Bool
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.HasPrefix(r.URL.Path, "/hooks") && !healthy.Load() {
			http.Error(w, "backend down", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer backend.Close()
	dir := t.TempDir()
	t.Setenv("CONSOLE_TEST_KEY", "k3f9a0c7e1d5b8a2c4e6f")
	// An agents listener with two names; an agent of ci connects below.
	ca := redistest.NewCA(t, "console test CA")
	ca.Issue(t, dir, "edge", "127.0.0.1")
	const agentToken = "console-agent-token-0123456789"
	t.Setenv("CONSOLE_TEST_AGENT", agentToken)
	cfgPath := filepath.Join(dir, "drawbridge.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
admin: 127.0.0.1:0
state: {driver: embedded, path: %s}
usage_plans:
  basic: {quota: {limit: 1000, period: DAY}}
api_keys:
  - {name: ci-bot, value_env: CONSOLE_TEST_KEY, plan: basic}
routes:
  - path: /api
    target: %s/api
    api_key_required: true
  - path: /hooks/github
    target: %s/hooks/github
    delivery: {mode: async, retry: {max_attempts: 1}}
  - path: /hooks/stripe
    target: %s/hooks/stripe
    delivery: {mode: async, retry: {max_attempts: 1}}
  - path: /private/*
    target: %s/private/
    via: ci
agents:
  listen: 127.0.0.1:0
  tls: {cert: edge.pem, key: edge.key}
  tokens:
    - {name: ci, value_env: CONSOLE_TEST_AGENT}
    - {name: billing, sha256: %x}
`, filepath.Join(dir, "state.db"), backend.URL, backend.URL, backend.URL, backend.URL, sha256.Sum256([]byte("billing-token-0123456789")))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := cli.Start(cfgPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	public, adminURL := "http://"+srv.Addr(), "http://"+srv.AdminAddr()

	// Real traffic: 6 forwarded, 4 refused without a key, 3 webhooks
	// accepted (their deliveries die: the backend answers 500).
	send := func(method, path, key, body string, want int) {
		req, _ := http.NewRequest(method, public+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("x-api-key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	for range 6 {
		send("GET", "/api", "k3f9a0c7e1d5b8a2c4e6f", "", 200)
	}
	for range 4 {
		send("GET", "/api", "", "", 403)
	}
	const script = `{"comment":"<script>alert('owned')</script><img src=x onerror=alert(2)>"}`
	send("POST", "/hooks/github", "", script, 202)
	send("POST", "/hooks/github", "", `{"n":2}`, 202)
	send("POST", "/hooks/stripe", "", `{"n":3}`, 202)
	waitCounts(t, adminURL, func(c counts) bool { return c.Dead == 3 })

	// Overview: the counts sent.
	run(t, ctx, "overview", chromedp.Navigate(adminURL+"/"))
	billable := get(t, ctx, "billable", chromedp.Text(chromedp.ID("billable")))
	rejected := get(t, ctx, "rejected", chromedp.Text(chromedp.ID("rejected")))
	if billable != "9" || rejected != "4" {
		t.Fatalf("overview: billable %q rejected %q, want 9 (6 forwarded + 3 accepted) and 4", billable, rejected)
	}
	if routes := get(t, ctx, "routes table", chromedp.Text(chromedp.ID("routes"))); !strings.Contains(routes, "/api") || !strings.Contains(routes, "key_rejected") {
		t.Fatalf("routes table: %q", routes)
	}
	shot(t, ctx, "overview")
	accessible(t, ctx, "overview")

	run(t, ctx, "rejections", chromedp.Navigate(adminURL+"/console/rejections"))
	if top := get(t, ctx, "top ips", chromedp.Text(chromedp.ID("top-ips"))); !strings.Contains(top, "127.0.0.1") || !strings.Contains(top, "4") {
		t.Fatalf("top client addresses: %q", top)
	}
	shot(t, ctx, "rejections")
	accessible(t, ctx, "rejections")

	// Deliveries: filter to dead with the form, open the <script> one.
	run(t, ctx, "filter dead",
		chromedp.Navigate(adminURL+"/console/deliveries"),
		chromedp.SetValue(chromedp.ID("f-state"), "dead"),
		chromedp.SetValue(chromedp.ID("f-route"), "/hooks/github"),
		// The unfiltered page has dead rows too: mark it, to wait for
		// the rows of the page the form loads.
		chromedp.Evaluate[chromedp.Void](`document.body.dataset.before = "1"`),
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-before]) #deliveries tbody tr.dead`)))
	loc := get(t, ctx, "location", chromedp.Location())
	rows := get(t, ctx, "dead rows", chromedp.Evaluate[int](`document.querySelectorAll("#deliveries tbody tr.dead").length`))
	if !strings.Contains(loc, "state=dead") || rows != 2 {
		t.Fatalf("filtered to %s: %d dead rows, want 2", loc, rows)
	}
	shot(t, ctx, "deliveries")
	accessible(t, ctx, "deliveries")
	// The oldest of the two (the last row) carries the script.
	run(t, ctx, "open delivery",
		chromedp.Click(chromedp.CSS(`#deliveries tbody tr:last-child a`)),
		chromedp.WaitVisible(chromedp.ID("body")))
	bodyText := get(t, ctx, "body", chromedp.Text(chromedp.ID("body")))
	injected := get(t, ctx, "injected", chromedp.Evaluate[int](`document.querySelectorAll("main script, main img").length`))
	if !strings.Contains(bodyText, "<script>alert('owned')</script>") || injected != 0 {
		t.Fatalf("the body is not shown as text (%d elements injected): %q", injected, bodyText)
	}
	detailURL := get(t, ctx, "where", chromedp.Location())
	shot(t, ctx, "delivery")
	accessible(t, ctx, "delivery")

	ev.check(t, "pages up to the <script> body")

	// A cross-site form POST (another origin, same host: Sec-Fetch-Site
	// same-site) is refused and changes nothing.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>evil</title><link rel="icon" href="data:,"><form method="post" action="%s/deliveries/purge?state=dead&amp;older_than=2100-01-01T00:00:00Z"><button id="go">go</button></form>`, adminURL)
	}))
	defer evil.Close()
	run(t, ctx, "cross-site post",
		chromedp.Navigate(evil.URL),
		chromedp.Click(chromedp.ID("go")),
		waitText("body", "cross-site"))
	if c := getCounts(t, adminURL); c.Dead != 3 {
		t.Fatalf("after the cross-site purge: %+v", c)
	}
	// The console's own replay form without its CSRF token: 403.
	run(t, ctx, "csrf-less post",
		chromedp.Navigate(detailURL),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[any](`document.querySelector('#replay').form.querySelector('input[name=csrf]').remove()`)(ctx, tg)
			return err
		}),
		chromedp.Click(chromedp.ID("replay")),
		waitText("body", "CSRF"))
	if c := getCounts(t, adminURL); c.Dead != 3 {
		t.Fatalf("after the CSRF-less replay: %+v", c)
	}

	ev.reset() // the browser logs the two refusals (403) as errors

	// Fix the backend, replay from the page, see the new attempt succeed.
	healthy.Store(true)
	run(t, ctx, "replay",
		chromedp.Navigate(detailURL),
		chromedp.Click(chromedp.ID("replay")),
		chromedp.WaitVisible(chromedp.CSS(`p.flash`)))
	state := ""
	for deadline := time.Now().Add(60 * time.Second); state != "delivered" && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond) // the worker delivers in the background
		run(t, ctx, "reload", chromedp.Navigate(detailURL))
		state = get(t, ctx, "state", chromedp.Text(chromedp.ID("state")))
	}
	attempts := get(t, ctx, "attempts", chromedp.Text(chromedp.CSS("#attempts tbody")))
	if state != "delivered" || !strings.Contains(attempts, "200") || !strings.Contains(attempts, "500") {
		t.Fatalf("after replay: state %q, attempts %q", state, attempts)
	}

	// Replay every dead letter of /hooks/github (one left), not stripe's.
	run(t, ctx, "replay dead",
		chromedp.Navigate(adminURL+"/console/deliveries"),
		chromedp.SetValue(chromedp.ID("a-route"), "/hooks/github"),
		chromedp.Click(chromedp.CSS(`form[action="/console/deliveries/replay-dead"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`p.flash`)))
	if flash := get(t, ctx, "flash", chromedp.Text(chromedp.CSS(`p.flash`))); !strings.Contains(flash, "Replayed 1 dead letters") {
		t.Fatalf("replay dead: %q", flash)
	}
	waitCounts(t, adminURL, func(c counts) bool { return c.Delivered == 2 && c.Dead == 1 })

	// An agent of ci dials in and carries one request.
	ag, err := agent.New(&config.AgentConfig{File: "agent.yaml", Edge: "https://" + srv.AgentsAddr(), Name: "ci", Token: agentToken,
		CA: ca.CertFile, Connections: 2, Egress: config.Egress{Allow: []string{strings.TrimPrefix(backend.URL, "http://")}}}, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan struct{})
	go func() { ag.Run(actx); close(agentDone) }()
	defer func() { stopAgent(); <-agentDone }()
	// The edge registers a tunnel after the agent reads its 101: wait
	// for the edge's count, not the agent's.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(metricsText(t, adminURL), `drawbridge_agents{name="ci"} 2`) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not connect (%d tunnels on its side)", ag.Connected())
		}
		time.Sleep(10 * time.Millisecond)
	}
	send("POST", "/private/x", "", "through the agent", 200)

	for _, p := range []struct{ path, name string }{
		{"/console/keys", "keys"}, {"/console/config", "config"}, {"/console/agents", "agents"},
	} {
		run(t, ctx, p.name, chromedp.Navigate(adminURL+p.path))
		accessible(t, ctx, p.name)
		shot(t, ctx, p.name)
	}
	run(t, ctx, "agents", chromedp.Navigate(adminURL+"/console/agents"))
	agentRows := get(t, ctx, "agents", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#agents tbody tr")].map(r => [...r.cells].map(c => c.innerText.trim()).join("|"))`))
	if len(agentRows) != 2 || !strings.HasPrefix(agentRows[0], "billing|0|0|0|") || !strings.HasPrefix(agentRows[1], "ci|2|0|1|17 B|") {
		t.Fatalf("agents table: %q (want billing with no tunnel, ci with 2 and 1 request of 17 B)", agentRows)
	}
	if page := get(t, ctx, "agents page", chromedp.Evaluate[string](`document.documentElement.outerHTML`)); strings.Contains(page, agentToken) || strings.Contains(page, "sha256") {
		t.Fatal("the agents page shows a token or a digest")
	}
	run(t, ctx, "keys", chromedp.Navigate(adminURL+"/console/keys"))
	if keys := get(t, ctx, "keys", chromedp.Text(chromedp.ID("keys"))); !strings.Contains(keys, "ci-bot") || !strings.Contains(keys, "994") || strings.Contains(keys, "k3f9a0c7e1d5b8a2c4e6f") {
		t.Fatalf("keys page: %q (want ci-bot with 994 of 1000 left, and never the key)", keys)
	}

	// 400 % zoom: 1280 CSS pixels at 400 % is a 320 px wide viewport
	// (WCAG 1.4.10): nothing may need horizontal scrolling.
	for _, p := range []struct{ path, name string }{{"/", "overview-400"}, {"/console/deliveries?state=delivered", "deliveries-400"}, {detailURL[len(adminURL):], "delivery-400"}, {"/console/agents", "agents-400"}} {
		run(t, ctx, "narrow "+p.name,
			chromedp.EmulateViewport(320, 640, chromedp.EmulateScale(4)),
			chromedp.Navigate(adminURL+p.path))
		scroll := get(t, ctx, "scroll width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		width := get(t, ctx, "client width", chromedp.Evaluate[int](`document.documentElement.clientWidth`))
		if scroll > width+1 {
			t.Errorf("%s at 400 %%: the page is %d px wide in a %d px viewport", p.name, scroll, width)
		}
		shot(t, ctx, p.name)
	}
	ev.check(t, "the rest of the pages")
}

// waitText waits until the element's text holds want. A form's answer
// replaces the page, so an evaluation may fail while the new document
// loads: it is tried again until the run's deadline.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			txt, err := chromedp.Evaluate[string](`document.querySelector(`+strconv.Quote(sel)+`)?.innerText ?? ""`)(ctx, tg)
			if err == nil && strings.Contains(txt, want) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %q in %s (last %q, %v): %w", want, sel, txt, err, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// accessible checks the basics on the page in the browser: a title, one
// h1 and headings, a header row in every table, a label on every button
// and form field.
func accessible(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	problems := get(t, ctx, "accessibility of "+name, chromedp.Evaluate[[]string](`(() => {
  const p = [];
  if (!document.title.trim()) p.push("no title");
  if (document.querySelectorAll("h1").length !== 1) p.push("not one h1");
  if (!document.documentElement.lang) p.push("no lang");
  for (const t of document.querySelectorAll("table")) if (!t.querySelector("th")) p.push("a table without headers");
  for (const b of document.querySelectorAll("button")) if (!(b.textContent.trim() || b.getAttribute("aria-label"))) p.push("a button without a label");
  for (const f of document.querySelectorAll("input:not([type=hidden]), select, textarea")) if (!f.labels || f.labels.length === 0) p.push("a field without a label: " + (f.id || f.name));
  for (const s of document.querySelectorAll("svg")) if (!s.getAttribute("aria-labelledby") && !s.getAttribute("aria-label")) p.push("an unlabelled chart");
  return p;
})()`))
	if len(problems) > 0 {
		t.Errorf("%s: %v", name, problems)
	}
}

func metricsText(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type counts struct{ Pending, Delivered, Dead int }

func getCounts(t *testing.T, admin string) counts {
	t.Helper()
	resp, err := http.Get(admin + "/deliveries/counts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c counts
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitCounts polls the admin API until ok holds (the worker runs in the
// background), for at most a minute.
func waitCounts(t *testing.T, admin string, ok func(counts) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := getCounts(t, admin)
		if ok(c) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries stuck at %+v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
