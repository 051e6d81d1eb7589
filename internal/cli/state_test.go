package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/apikey"
	"github.com/drawbridge/drawbridge/internal/config"
)

const stateKey = "StateKey0123456789abcdefXYZ"

// quotaConfig is a gateway with one keyed route and an embedded state
// file in dir.
func quotaConfig(t *testing.T, dir, backend string, limit int) string {
	t.Helper()
	t.Setenv("STATE_TEST_KEY", stateKey)
	path := filepath.Join(dir, "drawbridge.yaml")
	writeConfig(t, path, `listen: 127.0.0.1:0
admin: "off"
state: {driver: embedded, path: state.db}
account_throttle: {rate: 1000000, burst: 1000000}
usage_plans:
  p:
    quota: {limit: `+strconv.Itoa(limit)+`, period: DAY}
    throttle: {rate: 1000000, burst: 1000000}
api_keys: [{name: k, plan: p, value_env: STATE_TEST_KEY}]
routes:
  - {path: /q, target: "`+backend+`/q", api_key_required: true}
`)
	return path
}

func okBackend(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func keyed(t *testing.T, url string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("x-api-key", stateKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func startPath(t *testing.T, path string) *Server {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := start(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// usageOf runs `drawbridge keys usage --key k` and returns USED and
// REMAINING.
func usageOf(t *testing.T, path string) (used, remaining int) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"keys", "usage", "-c", path, "--key", "k"}, &out, &errb); code != 0 {
		t.Fatalf("keys usage exit %d: %s", code, errb.String())
	}
	m := regexp.MustCompile(`(?m)^k\s+p\s+DAY \S+\s+(\d+)\s+\d+\s+(\d+)\s`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("keys usage output:\n%s", out.String())
	}
	used, _ = strconv.Atoi(m[1])
	remaining, _ = strconv.Atoi(m[2])
	return used, remaining
}

// TestQuotaSurvivesCleanRestart is acceptance 4's first half on the real
// server: counts are exact after a clean stop, and keys usage reads them.
func TestQuotaSurvivesCleanRestart(t *testing.T) {
	path := quotaConfig(t, t.TempDir(), okBackend(t), 5)
	s := startPath(t, path)
	for i := range 3 {
		if c := keyed(t, "http://"+s.Addr()+"/q"); c != 200 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	// A second gateway on the same file fails fast, naming the file.
	cfg, _ := config.Load(path)
	t0 := time.Now()
	if _, err := start(cfg, slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second server on the same state file: %v", err)
	} else if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("second open took %v", d)
	}
	// keys usage will not guess while the server holds the file.
	var errb bytes.Buffer
	if code := Main(context.Background(), []string{"keys", "usage", "-c", path}, io.Discard, &errb); code != 1 || !strings.Contains(errb.String(), "in use by another process") {
		t.Fatalf("keys usage while serving: exit %d: %s", code, errb.String())
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if used, rem := usageOf(t, path); used != 3 || rem != 2 {
		t.Fatalf("after a clean stop: used %d remaining %d, want 3 and 2", used, rem)
	}
	s = startPath(t, path)
	defer s.Shutdown()
	for i, want := range []int{200, 200, 429} {
		if c := keyed(t, "http://"+s.Addr()+"/q"); c != want {
			t.Fatalf("after restart, request %d: %d, want %d", i, c, want)
		}
	}
}

// TestQuotaAfterSIGKILL is acceptance 4's second half at the process
// level: a real `drawbridge serve` counts keyed requests, gets SIGKILL,
// and the state file then holds every count but at most one second's
// worth. (internal/store/bolt's TestCrashLosesAtMostOneSecond proves the
// same for the driver alone, at a fixed rate and a random kill point.)
func TestQuotaAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child drawbridge for about two seconds")
	}
	path := quotaConfig(t, t.TempDir(), okBackend(t), 1<<40)
	p := startServe(t, path)
	url := "http://" + p.addr + "/q"
	client := &http.Client{Timeout: 5 * time.Second}
	acked := 0
	// A random kill point between 1.2 s and 2.2 s, so runs sample every
	// phase of the 500 ms flush interval.
	runFor := 1200*time.Millisecond + rand.N(time.Second)
	start := time.Now()
	for n := 0; time.Since(start) < runFor && n < 1_000_000; n++ {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("x-api-key", stateKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", n, resp.StatusCode)
		}
		acked++
	}
	elapsed := time.Since(start)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", p.cmd.ProcessState)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "state.db")); err != nil {
		t.Fatal(err)
	}
	used, _ := usageOf(t, path)
	rate := float64(acked) / elapsed.Seconds()
	lost := acked - used
	t.Logf("%d requests answered 200 in %v (%.0f/s); the file holds %d after SIGKILL: %d lost (%.0f ms of counts)",
		acked, elapsed.Round(time.Millisecond), rate, used, lost, float64(lost)/rate*1000)
	if used > acked {
		t.Fatalf("file holds %d counts, more than the %d answered", used, acked)
	}
	if float64(lost) > rate {
		t.Fatalf("lost %d counts, more than one second's worth (%.0f)", lost, rate)
	}
}

func TestKeysCreate(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"keys", "create", "--name", "ci", "--plan", "gold"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	keys := regexp.MustCompile(`(?m)^  ([A-Za-z0-9]{40})$`).FindAllStringSubmatch(text, -1)
	if len(keys) != 1 {
		t.Fatalf("want the key printed once on its own line:\n%s", text)
	}
	k := keys[0][1]
	if !apikey.Valid(k) || strings.Count(text, k) != 1 {
		t.Fatalf("key %q invalid or repeated:\n%s", k, text)
	}
	snippet := "  - name: ci\n    plan: gold\n    sha256: " + apikey.FormatDigest(apikey.Hash(k)) + "\n"
	if !strings.HasSuffix(text, snippet) {
		t.Fatalf("output does not end with the snippet\n%s\ngot:\n%s", snippet, text)
	}
	// The snippet is valid config with the key.
	cfgText := "api_keys:\n" + snippet + "usage_plans: {gold: {}}\nroutes: [{path: /a, target: 'http://127.0.0.1:1/', api_key_required: true}]\n"
	if _, err := config.Parse("snippet.yaml", []byte(cfgText), nil); err != nil {
		t.Fatalf("snippet does not load: %v", err)
	}
	if code := Main(context.Background(), []string{"keys", "create"}, io.Discard, io.Discard); code != 1 {
		t.Errorf("keys create without --name: exit %d, want 1", code)
	}
}

func TestIPSetsUpdate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drawbridge.yaml")
	writeConfig(t, path, `listen: 127.0.0.1:0
admin: "off"
state: {driver: memory}
client_ip: {trusted_proxies: [127.0.0.1/32]}
routes: [{path: /h, target: "`+okBackend(t)+`/h", allow_ips: [github-hooks]}]
`)
	from := func(ip string) int {
		req, _ := http.NewRequest("GET", "http://"+startedAddr(t, path)+"/h", nil)
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	wantEq := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %d, want %d", what, got, want)
		}
	}
	wantEq("built-in list, GitHub address", from("140.82.112.5"), 200)
	wantEq("built-in list, other address", from("203.0.113.7"), 403)

	meta := filepath.Join(dir, "meta.json")
	writeConfig(t, meta, `{"hooks": ["203.0.113.0/24", "2001:db8::/32"], "web": ["1.1.1.1/32"]}`)
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"ipsets", "update", "github-hooks", "--from", meta, "-c", path}, &out, &errb); code != 0 {
		t.Fatalf("ipsets update exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "2 ranges written") {
		t.Errorf("output: %s", out.String())
	}
	wantEq("local copy, new address", from("203.0.113.7"), 200)
	wantEq("local copy, old address", from("140.82.112.5"), 403)

	writeConfig(t, meta, `{"hooks": []}`)
	if code := Main(context.Background(), []string{"ipsets", "update", "github-hooks", "--from", meta, "-c", path}, io.Discard, &errb); code != 1 {
		t.Errorf("an empty hooks list must be refused, exit %d", code)
	}
	wantEq("refused update keeps the copy", from("203.0.113.7"), 200)
}

// startedAddr starts a server on path for one request's worth of test.
func startedAddr(t *testing.T, path string) string {
	s := startPath(t, path)
	t.Cleanup(func() { s.Shutdown() })
	return s.Addr()
}

// TestReadyzReportsStore: /readyz turns 503 when the state store cannot
// serve guards, and requests then get 503 Service Unavailable.
func TestReadyzReportsStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, path, "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nstate: {driver: memory}\nroutes: [{path: /a, target: \""+okBackend(t)+"/a\"}]\n")
	s := startPath(t, path)
	defer s.Shutdown()
	if code, body := get(t, "http://"+s.AdminAddr()+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d %s", code, body)
	}
	s.state.store.Close()
	if code, body := get(t, "http://"+s.AdminAddr()+"/readyz"); code != 503 || !strings.Contains(body, "state store: store closed") {
		t.Fatalf("readyz with the store closed = %d %s", code, body)
	}
	if code, body := get(t, "http://"+s.Addr()+"/a"); code != 503 || body != `{"message":"Service Unavailable"}` {
		t.Fatalf("request with the store closed = %d %s", code, body)
	}
}

// TestBlogExampleChecks: the example is valid config with every route
// guarded (no open-route warning).
func TestBlogExampleChecks(t *testing.T) {
	t.Setenv("DRAWBRIDGE_KEY_SECRET", blogKey)
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"check", "-c", "../../examples/blog/drawbridge.yaml"}, &out, &errb)
	if code != 0 || strings.Contains(errb.String(), "open to anyone") || strings.Contains(errb.String(), "WARNING") {
		t.Fatalf("check exit %d: %s%s", code, out.String(), errb.String())
	}
}

// TestLimitsSurviveReload: the store outlives SIGHUP, so a reload hands
// no client a fresh burst.
func TestLimitsSurviveReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drawbridge.yaml")
	text := "listen: 127.0.0.1:0\nadmin: \"off\"\nstate: {driver: memory}\nthrottle: {rate: 0.001, burst: 2}\nroutes: [{path: /a, target: \"" + okBackend(t) + "/a\"}]\n"
	writeConfig(t, path, text)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{}
	clock.Set("2026-12-01T12:00:00Z")
	s, err := start(cfg, slog.New(slog.DiscardHandler), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	url := "http://" + s.Addr() + "/a"
	for i, want := range []int{200, 200, 429} {
		if code, _ := get(t, url); code != want {
			t.Fatalf("request %d: %d, want %d", i, code, want)
		}
	}
	writeConfig(t, path, text+"# reloaded\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, url); code != 429 {
		t.Fatalf("after reload: %d, want 429 (the bucket is still empty)", code)
	}
}
