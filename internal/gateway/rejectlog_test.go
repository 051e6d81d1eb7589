package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/accesslog"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// syncBuffer is a log destination read while the server writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(s.b.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// pipelined sends n copies of req on one keep-alive connection in batches
// of 100 and reads every answer, returning how many had status want.
func pipelined(t *testing.T, addr, req string, n, want int) int {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	batch := strings.Repeat(req, 100)
	got := 0
	for sent := 0; sent < n; sent += 100 {
		k := min(100, n-sent)
		if _, err := io.WriteString(conn, batch[:k*len(req)]); err != nil {
			t.Error(err)
			return got
		}
		for range k {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Error(err)
				return got
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				got++
			}
		}
	}
	return got
}

// TestRejectionFlood: 50,000 requests without their API key from one
// client network, through a real listener, with a forwarded request in
// the middle (10,000 under the race detector; test.sh runs it again at
// 50,000 without). The access log holds at most the lines log.rejections
// allows (burst, then rate per second) plus one summary per interval and
// the last one at Close; the full lines and the summaries together count
// every rejection the metrics count; the forwarded request has its line.
func TestRejectionFlood(t *testing.T) {
	total := 50000
	if raceEnabled {
		total = 10000
	}
	const (
		conns    = 8
		rate     = 2
		burst    = 20
		interval = 500 * time.Millisecond
	)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	logs := &syncBuffer{}
	yaml := fmt.Sprintf(`
log: {rejections: {rate: %d, burst: %d, summary_interval: %s}}
account_throttle: {rate: 1000000000, burst: 1000000000}
api_keys: [{name: k, value_env: KEY}]
routes:
  - {path: /forward, target: "{T}", api_key_required: true}
  - {path: /open, target: "{T}"}
`, rate, burst, interval)
	g, m := buildFor(t, yaml, backend.URL, Deps{Log: slog.New(accesslog.New(logs))}, map[string]string{"KEY": "abcdefghijklmnopqrstuvwxyz0123"})
	srv := httptest.NewServer(g)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	const nokey = "GET /forward HTTP/1.1\r\nHost: gw\r\n\r\n"

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	flood := func(n int) {
		for range conns {
			wg.Go(func() {
				k := pipelined(t, addr, nokey, n/conns, 403)
				mu.Lock()
				refused += k
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	flood(total / 2)
	resp, err := http.Get(srv.URL + "/open")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("forwarded request in the flood: %d", resp.StatusCode)
	}
	forwardedID := resp.Header.Get("x-amzn-RequestId")
	flood(total / 2)
	elapsed := time.Since(start)
	srv.Close()
	g.Close() // the last summary
	if refused != total {
		t.Fatalf("%d of %d requests refused with 403", refused, total)
	}

	counted := testutil.ToFloat64(m.Requests.WithLabelValues("/forward", "GET", "key_rejected"))
	var full, summaries, suppressed int
	forwarded := false
	for _, l := range logs.lines(t) {
		switch l["msg"] {
		case "request":
			switch l["outcome"] {
			case "key_rejected":
				full++
			case "forwarded":
				forwarded = forwarded || l["request_id"] == forwardedID
			}
		case "rejections suppressed":
			summaries++
			n := int(l["suppressed"].(float64))
			suppressed += n
			by, _ := l["by_outcome"].(map[string]any)
			top, _ := l["top_networks"].(map[string]any)
			if by["key_rejected"] != float64(n) || top["127.0.0.0/24"] != float64(n) || l["networks"] != float64(1) || l["level"] != "WARN" {
				t.Errorf("summary %v: want all %d key_rejected from 127.0.0.0/24", l, n)
			}
		}
	}
	t.Logf("%d requests in %v: %d full lines, %d summaries of %d suppressed", total, elapsed, full, summaries, suppressed)
	if maxFull := burst + int(rate*elapsed.Seconds()) + 1; full > maxFull {
		t.Errorf("%d full rejection lines in %v, want at most burst + rate × time = %d", full, elapsed, maxFull)
	}
	if maxSum := int(elapsed/interval) + 2; summaries > maxSum || summaries == 0 {
		t.Errorf("%d summaries in %v, want 1 to %d (one per interval, and the last at Close)", summaries, elapsed, maxSum)
	}
	if float64(full+suppressed) != counted || counted != float64(total) {
		t.Errorf("full lines %d + suppressed %d = %d; metrics counted %v; sent %d", full, suppressed, full+suppressed, counted, total)
	}
	if !forwarded {
		t.Errorf("the forwarded request %s has no access line", forwardedID)
	}
}

// TestQuietLogUnchanged: under the defaults, a server refusing now and
// then (a hundred refusals from one network, fewer than the burst) logs
// every refusal in full and writes no summary: its log is what it was
// without sampling.
func TestQuietLogUnchanged(t *testing.T) {
	logs := &syncBuffer{}
	g, _ := buildFor(t, routesYAML, "http://127.0.0.1:1/", Deps{Log: slog.New(accesslog.New(logs))}, nil)
	for i := range 100 {
		r := httptest.NewRequest("GET", "/nope", nil)
		r.RemoteAddr = fmt.Sprintf("203.0.113.%d:4000", i%3)
		g.ServeHTTP(httptest.NewRecorder(), r)
	}
	g.Close()
	lines := logs.lines(t)
	if len(lines) != 100 {
		t.Fatalf("%d log lines, want 100", len(lines))
	}
	for _, l := range lines {
		if l["msg"] != "request" {
			t.Errorf("line %v, want only access lines", l)
		}
	}
}

// TestRejectionLogVolume measures the access log's bytes for 10,000
// refused requests from one client network (docs/performance.md reports
// them), without sampling (a rate no client reaches: every line, as
// before log.rejections) and with the defaults; the defaults must write
// at most their burst and rate's lines and the summaries.
func TestRejectionLogVolume(t *testing.T) {
	const n = 10000
	for _, kind := range []struct{ name, path string }{{"no API key", "/forward"}, {"no route", "/nope"}} {
		var bytesOf [2]int
		for i, sampling := range []string{"log: {rejections: {rate: 1000000000, burst: 1000000000}}\n", ""} {
			logs := &syncBuffer{}
			yaml := sampling + `
api_keys: [{name: k, value_env: KEY}]
routes: [{path: /forward, target: "http://127.0.0.1:1/", api_key_required: true}]
`
			g, _ := buildFor(t, yaml, "", Deps{Log: slog.New(accesslog.New(logs))}, map[string]string{"KEY": "abcdefghijklmnopqrstuvwxyz0123"})
			r := httptest.NewRequest("GET", kind.path, nil)
			r.RemoteAddr = "198.51.100.23:40000"
			r.Header.Set("User-Agent", "curl/8.5.0")
			start := time.Now()
			for range n {
				w := httptest.NewRecorder()
				g.ServeHTTP(w, r)
				if w.Code != 403 {
					t.Fatalf("%s: %d", kind.name, w.Code)
				}
			}
			elapsed := time.Since(start)
			g.Close()
			bytesOf[i] = logs.b.Len()
			lines := bytes.Count(logs.b.Bytes(), []byte("\n"))
			if i == 0 && lines != n {
				t.Errorf("%s without sampling: %d lines, want %d", kind.name, lines, n)
			}
			if limit := 100 + int(10*elapsed.Seconds()) + 1 + int(elapsed/(10*time.Second)) + 1; i == 1 && lines > limit {
				t.Errorf("%s with the defaults: %d lines in %v, want at most %d", kind.name, lines, elapsed, limit)
			}
		}
		t.Logf("%s: log bytes per %d refusals: %d without sampling, %d with the defaults (%.1f×)", kind.name, n, bytesOf[0], bytesOf[1], float64(bytesOf[0])/float64(bytesOf[1]))
	}
}

// TestSampledReasons holds log.rejections to the refusals a client can
// cause at will: every other answer, a target's or an authorizer's
// failure and a filtered webhook among them, keeps its full line.
func TestSampledReasons(t *testing.T) {
	sampled := map[metrics.Outcome]bool{
		metrics.NoRoute: true, metrics.BadRequest: true, metrics.TooLarge: true,
		metrics.PolicyDenied: true, metrics.Unauthorized: true, metrics.Forbidden: true,
		metrics.KeyRejected: true, metrics.SignatureRejected: true,
		metrics.Throttled: true, metrics.QuotaExceeded: true,
	}
	for _, api := range []config.API{config.APIREST, config.APIHTTP} {
		t.Run(string(api), func(t *testing.T) {
			for reason, r := range replies(api) {
				if r.outcome == "" {
					continue
				}
				if got := sampledReason[reason]; got != sampled[r.outcome] {
					t.Errorf("reason %d (outcome %s, status %d): sampled %v, want %v", reason, r.outcome, r.status, got, sampled[r.outcome])
				}
			}
		})
	}
}
