package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

// blogKey is the blog's API key "secret" in these tests.
const blogKey = "BlogKey0123456789abcdefXYZ"

// testClock is the injected clock of the guards.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Set(s string) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// blog is the examples/blog config served for real: a loopback backend
// counting what reaches it, the gateway on 127.0.0.1:0 trusting
// X-Forwarded-For from loopback (so tests can speak from any address),
// and an injected clock.
type blog struct {
	t       *testing.T
	path    string // the config file written
	srv     *Server
	clock   *testClock
	backend atomic.Int64
	url     string
}

// startBlog serves examples/blog/drawbridge.yaml with edit applied to its
// text.
func startBlog(t *testing.T, edit func(string) string) *blog {
	t.Helper()
	t.Setenv("DRAWBRIDGE_KEY_SECRET", blogKey)
	b := &blog{t: t, clock: &testClock{}}
	b.clock.Set("2026-12-01T12:00:00Z")
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.backend.Add(1)
		io.WriteString(w, "private")
	}))
	t.Cleanup(be.Close)

	data, err := os.ReadFile("../../examples/blog/drawbridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, r := range [][2]string{
		{"http://10.0.0.10:80/", be.URL + "/"},
		{`listen: ":8080"`, "listen: 127.0.0.1:0\nadmin: \"off\"\nclient_ip: {trusted_proxies: [127.0.0.1/32]}"},
		{"driver: embedded", "driver: memory"},
	} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("example config lacks %q", r[0])
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	if edit != nil {
		text = edit(text)
	}
	b.path = filepath.Join(t.TempDir(), "drawbridge.yaml")
	if err := os.WriteFile(b.path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(b.path)
	if err != nil {
		t.Fatal(err)
	}
	b.srv, err = start(cfg, slog.New(slog.DiscardHandler), b.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.srv.Shutdown() })
	b.url = "http://" + b.srv.Addr()
	return b
}

type answer struct {
	status     int
	body       string
	errorType  string
	retryAfter string
}

// call sends method /forward from client ip, with the key if key != "".
func (b *blog) call(method, ip, key string) answer {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.url+"/forward", strings.NewReader("ping"))
	req.Header.Set("X-Forwarded-For", ip)
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return answer{resp.StatusCode, string(body), resp.Header.Get("X-Amzn-Errortype"), resp.Header.Get("Retry-After")}
}

const (
	githubIP = "140.82.112.5"
	denyBody = `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: ` +
		`arn:aws:execute-api:eu-west-1:********9012:serverless-proxy/dev/POST/forward with an explicit deny"}`
)

// TestBlogAcceptance runs the blog's setup end to end: the real server
// with the example config.
func TestBlogAcceptance(t *testing.T) {
	t.Run("GitHub address with the key is forwarded", func(t *testing.T) {
		b := startBlog(t, nil)
		a := b.call("POST", githubIP, blogKey)
		if a.status != 200 || a.body != `{"result": "private"}` {
			t.Fatalf("got %d %s, want 200 {\"result\": \"private\"}", a.status, a.body)
		}
		if n := b.backend.Load(); n != 1 {
			t.Fatalf("backend saw %d requests, want 1", n)
		}
	})
	t.Run("other address with the key is denied by the resource policy", func(t *testing.T) {
		b := startBlog(t, nil)
		a := b.call("POST", "8.8.8.8", blogKey)
		if a.status != 403 || a.body != denyBody || a.errorType != "AccessDeniedException" {
			t.Fatalf("got %d %s %s, want 403 %s", a.status, a.errorType, a.body, denyBody)
		}
		if n := b.backend.Load(); n != 0 {
			t.Fatalf("backend saw %d requests", n)
		}
	})
	t.Run("GitHub address without a key is Forbidden", func(t *testing.T) {
		b := startBlog(t, nil)
		a := b.call("POST", githubIP, "")
		if a.status != 403 || a.body != `{"message":"Forbidden"}` || a.errorType != "ForbiddenException" {
			t.Fatalf("got %d %s %s", a.status, a.errorType, a.body)
		}
	})
	t.Run("101 quick requests over burst 100: the 101st is throttled", func(t *testing.T) {
		b := startBlog(t, nil)
		for i := range 100 {
			if a := b.call("GET", githubIP, blogKey); a.status != 200 {
				t.Fatalf("request %d: %d %s", i+1, a.status, a.body)
			}
		}
		a := b.call("GET", githubIP, blogKey)
		if a.status != 429 || a.body != `{"message":"Too Many Requests"}` || a.errorType != "TooManyRequestsException" || a.retryAfter != "1" {
			t.Fatalf("101st: %d %s %s Retry-After %q", a.status, a.errorType, a.body, a.retryAfter)
		}
		if n := b.backend.Load(); n != 100 {
			t.Fatalf("backend saw %d requests, want 100", n)
		}
	})
	t.Run("quota 5/DAY: the 6th is Limit Exceeded until 00:00 UTC", func(t *testing.T) {
		b := startBlog(t, func(s string) string { return strings.Replace(s, "limit: 1000", "limit: 5", 1) })
		b.clock.Set("2026-12-01T23:59:00Z")
		for i := range 5 {
			if a := b.call("POST", githubIP, blogKey); a.status != 200 {
				t.Fatalf("request %d: %d %s", i+1, a.status, a.body)
			}
		}
		a := b.call("POST", githubIP, blogKey)
		if a.status != 429 || a.body != `{"message":"Limit Exceeded"}` || a.errorType != "LimitExceededException" || a.retryAfter != "60" {
			t.Fatalf("6th: %d %s %s Retry-After %q", a.status, a.errorType, a.body, a.retryAfter)
		}
		b.clock.Set("2026-12-01T23:59:59Z")
		if a := b.call("POST", githubIP, blogKey); a.status != 429 {
			t.Fatalf("at 23:59:59: %d, want 429", a.status)
		}
		b.clock.Set("2026-12-02T00:00:00Z")
		for i := range 5 {
			if a := b.call("POST", githubIP, blogKey); a.status != 200 {
				t.Fatalf("new day, request %d: %d %s", i+1, a.status, a.body)
			}
		}
		if a := b.call("POST", githubIP, blogKey); a.status != 429 {
			t.Fatalf("new day, 6th: %d, want 429", a.status)
		}
		if n := b.backend.Load(); n != 10 {
			t.Fatalf("backend saw %d requests, want 10", n)
		}
	})
}

// explainCLI runs `drawbridge explain` and returns its lines.
func explainCLI(t *testing.T, cfg string, args ...string) []string {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), append([]string{"explain", "-c", cfg}, args...), &out, &errb)
	if code != 0 {
		t.Fatalf("explain exit %d: %s", code, errb.String())
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
}

// serverResult is how the real answer reads as explain's result line.
func serverResult(a answer, forwarded bool, forwardLine string) string {
	if forwarded {
		return "result: forward " + forwardLine
	}
	return "result: " + strconv.Itoa(a.status) + " " + a.body
}

// explainLine is explain's step line, "STEP: allow|deny|skip — why"
// (docs/guards.md#explain).
var explainLine = regexp.MustCompile(`^[a-z_]+: (allow|deny|skip) — \S`)

// TestExplainMatchesServer is acceptance 6: explain's verdict for the
// blog's four situations is the real server's answer.
func TestExplainMatchesServer(t *testing.T) {
	b := startBlog(t, nil)
	cases := []struct {
		name, method, ip, key string
		decisive              string // the line naming the deciding step
	}{
		{"allowed", "POST", githubIP, blogKey, `api_key: allow — key "secret", usage plan "global-plan"`},
		{"wrong address", "POST", "8.8.8.8", blogKey, "resource_policy: deny — explicit deny by statement 0"},
		{"no key", "POST", githubIP, "", "api_key: deny — no x-api-key header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"--method", c.method, "--path", "/forward", "--ip", c.ip}
			if c.key != "" {
				args = append(args, "--api-key", c.key)
			}
			lines := explainCLI(t, b.path, args...)
			before := b.backend.Load()
			a := b.call(c.method, c.ip, c.key)
			forwarded := b.backend.Load() > before
			backendURL := strings.TrimSuffix(b.srv.cfg.Load().Routes[0].Target, "/") + "/"
			want := serverResult(a, forwarded, c.method+" "+backendURL)
			if got := lines[len(lines)-1]; got != want {
				t.Errorf("explain says %q, the server answered %q\n%s", got, want, strings.Join(lines, "\n"))
			}
			if !containsPrefix(lines, c.decisive) {
				t.Errorf("explain lacks a line starting %q:\n%s", c.decisive, strings.Join(lines, "\n"))
			}
			for _, l := range lines[:len(lines)-1] {
				if !explainLine.MatchString(l) {
					t.Errorf("line %q is not STEP: allow|deny|skip — why", l)
				}
			}
		})
	}
	// Over the burst: token buckets live in the serving process, so the
	// comparison explains on the server's own gateway and store (the CLI,
	// a separate process, sees fresh buckets and says so).
	t.Run("over the burst", func(t *testing.T) {
		for range 100 {
			b.call("GET", githubIP, blogKey)
		}
		req, _ := http.NewRequest("GET", "http://drawbridge/forward", nil)
		req.RemoteAddr = githubIP + ":1"
		req.Header.Set("x-api-key", blogKey)
		e := b.srv.current.Load().Explain(req, nil)
		a := b.call("GET", githubIP, blogKey)
		if got, want := e.Result(), serverResult(a, false, ""); got != want {
			t.Errorf("explain says %q, the server answered %q\n%s", got, want, strings.Join(e.Lines, "\n"))
		}
		if e.RetryAfter != a.retryAfter {
			t.Errorf("explain's Retry-After %q, the server's %q", e.RetryAfter, a.retryAfter)
		}
		if !containsPrefix(e.Lines, "throttle: deny — over key:secret:plan:global-plan (rate 50/s, burst 100)") {
			t.Errorf("explain does not name the plan's bucket:\n%s", strings.Join(e.Lines, "\n"))
		}
	})
}

func containsPrefix(lines []string, p string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}
