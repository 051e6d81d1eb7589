package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the real drawbridge, built once for the process tests.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func drawbridgeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "drawbridge-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "drawbridge")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/drawbridge").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// process is a drawbridge serve child process.
type process struct {
	cmd         *exec.Cmd
	addr, admin string
	mu          sync.Mutex
	log         bytes.Buffer
}

func (p *process) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startServe runs `drawbridge serve -c cfg` and waits for its listening line.
func startServe(t *testing.T, cfg string) *process {
	t.Helper()
	cmd := exec.Command(drawbridgeBinary(t), "serve", "-c", cfg)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
				p.addr, _ = m["addr"].(string)
				p.admin, _ = m["admin"].(string)
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not start:\n%s", p.logText())
	}
	return p
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func configText(backend string, extraRoute string) string {
	return `listen: 127.0.0.1:0
admin: 127.0.0.1:0
state: {driver: memory}
routes:
  - path: /old
    target: ` + backend + `/old
    timeout: 10s
` + extraRoute
}

// slowBackend answers /slow after release is closed, /old and /new at once.
// release is a func, safe to call more than once: the test calls it, and
// so does cleanup, before the server closes, so a test that fails before
// releasing cannot leave srv.Close waiting on a held handler.
func slowBackend(t *testing.T) (*httptest.Server, func(), <-chan struct{}) {
	ch, entered := make(chan struct{}), make(chan struct{}, 10)
	var once sync.Once
	release := func() { once.Do(func() { close(ch) }) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			entered <- struct{}{}
			<-ch
		}
		io.WriteString(w, "backend "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(release) // runs first (cleanups are last in, first out)
	return srv, release, entered
}

// waitEntered waits, bounded, for a request to reach the slow backend.
func waitEntered(t *testing.T, entered <-chan struct{}) {
	t.Helper()
	select {
	case <-entered:
	case <-time.After(15 * time.Second):
		t.Fatal("the slow request never reached the backend")
	}
}

// TestReload: SIGHUP with a broken file keeps the old config; with a good
// file the new routes answer; a request in flight during the reload
// completes.
func TestReload(t *testing.T) {
	b, release, entered := slowBackend(t)
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, configText(b.URL, "  - path: /slow\n    target: "+b.URL+"/slow\n    timeout: 10s\n"))
	p := startServe(t, cfg)
	base := "http://" + p.addr

	// A long request in flight across both reloads.
	inflight := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			inflight <- "error: " + err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	waitEntered(t, entered)

	writeConfig(t, cfg, "routes:\n  - path: /new\n    tiemout: 1s\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, p, `reload failed`)
	if !strings.Contains(p.logText(), `unknown field \"tiemout\"`) {
		t.Errorf("reload failure does not say why:\n%s", p.logText())
	}
	if code, _ := get(t, base+"/old"); code != 200 {
		t.Errorf("after a broken reload /old = %d, want 200 (old config kept)", code)
	}

	writeConfig(t, cfg, configText(b.URL, "  - path: /new\n    target: "+b.URL+"/new\n"))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, p, `config reloaded`)
	if code, body := get(t, base+"/new"); code != 200 || body != "backend /new" {
		t.Errorf("after a good reload /new = %d %q", code, body)
	}
	if code, _ := get(t, base+"/slow"); code != 403 {
		t.Errorf("after a good reload the removed route /slow = %d, want 403", code)
	}
	release()
	select {
	case got := <-inflight:
		if got != "200 backend /slow" {
			t.Errorf("request in flight during reloads: %s", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the request in flight never finished")
	}
}

// TestTerminateDrains: SIGTERM lets an in-flight request finish, then the
// process exits 0.
func TestTerminateDrains(t *testing.T) {
	b, release, entered := slowBackend(t)
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, configText(b.URL, "  - path: /slow\n    target: "+b.URL+"/slow\n    timeout: 10s\n"))
	p := startServe(t, cfg)
	inflight := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + p.addr + "/slow")
		if err != nil {
			inflight <- "error: " + err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	waitEntered(t, entered)
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, p, "draining")
	time.AfterFunc(200*time.Millisecond, release)
	if got := <-inflight; got != "200 backend /slow" {
		t.Errorf("in-flight request during SIGTERM: %s", got)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, p.logText())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit after SIGTERM")
	}
}

func waitFor(t *testing.T, p *process, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logText(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", text, p.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetricsEndToEnd: /metrics on the admin listener counts a scripted
// mix of requests under the right outcome labels.
func TestMetricsEndToEnd(t *testing.T) {
	b, _, _ := slowBackend(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, configText(b.URL, "  - path: /down\n    target: "+deadURL+"\n")+"limits: {max_body_bytes: 8}\n")
	p := startServe(t, cfg)
	base := "http://" + p.addr
	get(t, base+"/old")
	get(t, base+"/old")
	get(t, base+"/nope")
	get(t, base+"/down")
	http.Post(base+"/old", "text/plain", strings.NewReader("more than eight bytes"))

	code, page := get(t, "http://"+p.admin+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`drawbridge_requests_total{method="GET",outcome="forwarded",route="/old"} 2`,
		`drawbridge_requests_total{method="GET",outcome="no_route",route="_none"} 1`,
		`drawbridge_requests_total{method="GET",outcome="upstream_error",route="/down"} 1`,
		`drawbridge_requests_total{method="POST",outcome="too_large",route="/old"} 1`,
		`drawbridge_request_duration_seconds_count{route="/old"} 3`,
		`drawbridge_inflight{route="/old"} 0`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if regexp.MustCompile(`route="/nope"`).MatchString(page) {
		t.Error("an unmatched path became a metric label")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := get(t, "http://"+p.admin+path); code != 200 {
			t.Errorf("%s = %d", path, code)
		}
	}
}

// TestCheck: `check` exits 0 for a good file (with its warnings), 1 with
// FILE:LINE lines for a broken one.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeConfig(t, good, "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n")
	var out, errs bytes.Buffer
	if code := Main(context.Background(), []string{"check", "-c", good}, &out, &errs); code != 0 {
		t.Fatalf("check good = %d: %s", code, errs.String())
	}
	if !strings.Contains(errs.String(), good+":2: warning: route /a is open to anyone") {
		t.Errorf("no open-route warning: %q", errs.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeConfig(t, bad, "stage: prod\nbogus: 1\nroutes:\n  - path: /a\n    target: http://127.0.0.1:1/\n")
	out.Reset()
	errs.Reset()
	if code := Main(context.Background(), []string{"check", "-c", bad}, &out, &errs); code != 1 {
		t.Fatalf("check bad = %d", code)
	}
	if got := errs.String(); got != bad+":2: unknown field \"bogus\"\n" {
		t.Errorf("check bad printed %q", got)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	Main(context.Background(), []string{"version"}, &out, io.Discard)
	if !regexp.MustCompile(`^drawbridge \S+ \(commit \S+, go1\.\d+`).MatchString(out.String()) {
		t.Errorf("version = %q", out.String())
	}
}
