package collector_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/accesslog"
	"github.com/drawbridge/drawbridge/internal/cli"
	"github.com/drawbridge/drawbridge/internal/tracing/collector"
)

// OTLP span kinds, as the receiver writes them.
const (
	kindInternal = 1
	kindServer   = 2
	kindClient   = 3
	kindProducer = 4
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestEndToEnd: serve with tracing to a real OTLP receiver. An allowed
// request, a rejected one and an async one (whose first delivery attempt
// fails and the second succeeds) come back as spans: the request span
// with its guard children and its upstream exchange, whose traceparent is
// the one the backend received; the guard that rejected; the accept span;
// each delivery attempt a trace of its own, linked to the accept span and
// sending its own traceparent. The access lines carry the trace ids.
func TestEndToEnd(t *testing.T) {
	col := collector.Start(t)

	var mu sync.Mutex
	got := map[string][]string{} // path -> traceparents received
	hookCalls := 0
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		defer mu.Unlock()
		key := r.URL.Path
		if strings.HasPrefix(key, "/items") {
			key = "/items"
		}
		got[key] = append(got[key], r.Header.Get("Traceparent"))
		if r.URL.Path == "/hook" {
			hookCalls++
			if hookCalls == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ok")
	}))
	defer backend.Close()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "drawbridge.yaml")
	if err := os.WriteFile(cfg, []byte(`listen: 127.0.0.1:0
admin: 127.0.0.1:0
state: {driver: embedded, path: `+filepath.Join(dir, "state.db")+`}
tracing: {otlp_endpoint: "`+col.URL+`", service_name: drawbridge-e2e}
usage_plans: {p: {throttle: {rate: 100, burst: 100}}}
api_keys: [{name: k, plan: p, sha256: "abababababababababababababababababababababababababababababababab"}]
routes:
  - {path: "/items/{id}", target: "`+backend.URL+`/items"}
  - {path: /keyed, target: "`+backend.URL+`/keyed", api_key_required: true}
  - path: /hook
    methods: [POST]
    target: `+backend.URL+`/hook
    delivery: {mode: async, retry: {base: 10ms, max: 20ms}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	srv, err := cli.Start(cfg, slog.New(accesslog.New(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.Shutdown()
		}
	}()
	base := "http://" + srv.Addr()
	for _, c := range []struct {
		method, path string
		want         int
	}{{"GET", "/items/42", 200}, {"GET", "/keyed", 403}, {"POST", "/hook", 202}} {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader("x"))
		// A client's own trace: it is not a trusted proxy, so it must not
		// be continued.
		req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
	// The delivery is retried after its 503; wait until the second
	// attempt is recorded (shutting down mid-attempt would cut it short).
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + srv.AdminAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `drawbridge_deliveries{state="delivered"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			n := hookCalls
			mu.Unlock()
			t.Fatalf("the delivery is not delivered after %d attempts", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Shutdown exports every span still queued.
	stopped = true
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	spans := col.Wait(t, 30*time.Second, func(s []collector.Span) bool { return count(s, "deliver /hook") >= 2 })

	byID := map[string]collector.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
		if s.TraceID == "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("span %q continues the untrusted client's trace", s.Name)
		}
		if s.Service != "drawbridge-e2e" {
			t.Errorf("span %q of service %q", s.Name, s.Service)
		}
	}
	children := func(parent collector.Span) map[string]collector.Span {
		m := map[string]collector.Span{}
		for _, s := range spans {
			if s.ParentSpanID == parent.SpanID && s.TraceID == parent.TraceID {
				m[s.Name] = s
			}
		}
		return m
	}

	// Allowed: the request span, its guard children, its upstream span,
	// whose traceparent the backend received.
	req := one(t, spans, "GET /items/{id}", kindServer)
	for k, want := range map[string]string{"http.request.method": "GET", "http.route": "/items/{id}", "http.response.status_code": "200",
		"client.address": "127.0.0.1", "url.path": "/items/42", "drawbridge.outcome": "forwarded"} {
		if v := req.Attributes[k]; v != want {
			t.Errorf("request span %s = %q, want %q", k, v, want)
		}
	}
	if req.ParentSpanID != "" {
		t.Errorf("request span has parent %s: the untrusted client's", req.ParentSpanID)
	}
	kids := children(req)
	up, ok := kids["GET"]
	if !ok || up.Kind != kindClient {
		t.Fatalf("no upstream client span under the request; children %v", keys(kids))
	}
	if _, ok := kids["guard limits"]; !ok {
		t.Errorf("no guard span under the request; children %v", keys(kids))
	}
	if !strings.HasPrefix(up.Attributes["url.full"], backend.URL+"/items") || up.Attributes["http.response.status_code"] != "200" || up.Attributes["drawbridge.upstream.ttfb_ms"] == "" {
		t.Errorf("upstream span attributes %v", up.Attributes)
	}
	if want := "00-" + up.TraceID + "-" + up.SpanID + "-01"; first(&mu, got, "/items") != want {
		t.Errorf("backend received traceparent %q, want the upstream span's %q", first(&mu, got, "/items"), want)
	}

	// Rejected: the guard that rejected, with its rule and outcome.
	rej := one(t, spans, "GET /keyed", kindServer)
	if rej.Attributes["http.response.status_code"] != "403" || rej.Attributes["drawbridge.guard"] != "api_key" || rej.StatusCode == 2 {
		t.Errorf("rejected request span %v (status %d): a 4xx is no server error", rej.Attributes, rej.StatusCode)
	}
	g, ok := children(rej)["guard api_key"]
	if !ok || g.Attributes["drawbridge.guard.outcome"] != "key_rejected" || g.Attributes["drawbridge.guard.rule"] != "api_key" || g.StatusCode != 2 {
		t.Errorf("rejecting guard span %+v", g)
	}

	// Async: the accept span, and two attempts, each its own trace,
	// linked to it.
	acc := one(t, spans, "POST /hook", kindServer)
	accept, ok := children(acc)["accept /hook"]
	if !ok || accept.Kind != kindProducer || accept.Attributes["drawbridge.delivery.id"] == "" {
		t.Fatalf("accept span %+v under %v", accept, keys(children(acc)))
	}
	var attempts []collector.Span
	for _, s := range spans {
		if s.Name == "deliver /hook" {
			attempts = append(attempts, s)
		}
	}
	recv := all(&mu, got, "/hook")
	for i, a := range attempts {
		if a.TraceID == acc.TraceID || a.ParentSpanID != "" {
			t.Errorf("attempt %d is inside the request's trace", i+1)
		}
		if len(a.Links) != 1 || a.Links[0].TraceID != accept.TraceID || a.Links[0].SpanID != accept.SpanID {
			t.Errorf("attempt %d links %+v, want the accept span %s/%s", i+1, a.Links, accept.TraceID, accept.SpanID)
		}
		if a.Attributes["drawbridge.delivery.id"] != accept.Attributes["drawbridge.delivery.id"] {
			t.Errorf("attempt %d of delivery %q, accepted %q", i+1, a.Attributes["drawbridge.delivery.id"], accept.Attributes["drawbridge.delivery.id"])
		}
		if want := "00-" + a.TraceID + "-" + a.SpanID + "-01"; !contains(recv, want) {
			t.Errorf("attempt %d: the backend never received its traceparent %s (got %q)", i+1, want, recv)
		}
		switch a.Attributes["drawbridge.delivery.attempt"] {
		case "1":
			if a.Attributes["http.response.status_code"] != "503" || a.Attributes["drawbridge.delivery.state"] != "pending" || a.Attributes["drawbridge.delivery.next_retry"] == "" {
				t.Errorf("first attempt %v", a.Attributes)
			}
		case "2":
			if a.Attributes["http.response.status_code"] != "200" || a.Attributes["drawbridge.delivery.state"] != "delivered" {
				t.Errorf("second attempt %v", a.Attributes)
			}
		default:
			t.Errorf("attempt number %q", a.Attributes["drawbridge.delivery.attempt"])
		}
	}

	// The access lines name the request spans.
	for _, s := range []collector.Span{req, rej, acc} {
		if !strings.Contains(logs.String(), `"trace_id":"`+s.TraceID+`","span_id":"`+s.SpanID+`"`) {
			t.Errorf("no access line with trace %s span %s:\n%s", s.TraceID, s.SpanID, logs.String())
		}
	}
}

func count(spans []collector.Span, name string) int {
	n := 0
	for _, s := range spans {
		if s.Name == name {
			n++
		}
	}
	return n
}

func one(t *testing.T, spans []collector.Span, name string, kind int) collector.Span {
	t.Helper()
	var found []collector.Span
	for _, s := range spans {
		if s.Name == name && s.Kind == kind {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans %q of kind %d, want 1", len(found), name, kind)
	}
	return found[0]
}

func keys(m map[string]collector.Span) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

func first(mu *sync.Mutex, got map[string][]string, path string) string {
	if v := all(mu, got, path); len(v) > 0 {
		return v[0]
	}
	return ""
}

func all(mu *sync.Mutex, got map[string][]string, path string) []string {
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), got[path]...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
