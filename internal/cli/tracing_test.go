package cli

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServeTracingHungCollector: serve with tracing to a collector that
// accepts connections and never answers answers its requests, counts the
// spans it cannot export on /metrics, keeps its tracer across a reload
// (warning that tracing: changes need a restart), and shuts down within
// the tracer's bound instead of waiting on the collector.
func TestServeTracingHungCollector(t *testing.T) {
	stop := make(chan struct{})
	hole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer hole.Close()
	defer close(stop)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "drawbridge.yaml")
	text := func(ratio string) string {
		return "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nstate: {driver: memory}\n" +
			"tracing: {otlp_endpoint: \"" + hole.URL + "\", sample_ratio: " + ratio + "}\n" +
			"routes:\n  - {path: /a, target: \"" + backend.URL + "/a\"}\n"
	}
	writeConfig(t, cfg, text("1"))
	var mu sync.Mutex
	var logs bytes.Buffer
	srv, err := Start(cfg, slog.New(slog.NewJSONHandler(&lockedLog{mu: &mu, w: &logs}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// Enough spans to overflow the 2048-span queue while the one export
	// in flight hangs.
	for i := range 1200 {
		if code, _ := get(t, "http://"+srv.Addr()+"/a"); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	_, metrics := get(t, "http://"+srv.AdminAddr()+"/metrics")
	if !strings.Contains(metrics, `drawbridge_trace_spans_dropped_total{reason="queue_full"}`) {
		t.Errorf("/metrics has no queue_full drops:\n%s", grepLines(metrics, "drawbridge_trace"))
	}

	writeConfig(t, cfg, text("0.5"))
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	warned := strings.Contains(logs.String(), "tracing: changes take effect after a restart")
	mu.Unlock()
	if !warned {
		t.Error("a reload that changes tracing: does not say it needs a restart")
	}

	t0 := time.Now()
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 15*time.Second {
		t.Errorf("shutdown took %v with a hung collector", d)
	}
}

type lockedLog struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
