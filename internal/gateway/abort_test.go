package gateway

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drawbridge/drawbridge/internal/body"
)

// TestAbortedAnswerReleasesBody: a target whose answer breaks off
// mid-body makes the gateway abort the client's response
// (http.ErrAbortHandler); the request body's memory must still go back to
// limits.max_body_memory, on both forwarders, or every such answer would
// shrink the budget until bodies are refused. Each such request is still
// counted and logged, as upstream_error with the status that went out.
func TestAbortedAnswerReleasesBody(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		io.WriteString(w, "only ten b")
		w.(http.Flusher).Flush()
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	})
	for _, fwd := range []string{"lean", "reverseproxy"} {
		t.Run(fwd, func(t *testing.T) {
			budget := body.NewBudget(1 << 20)
			var buf bytes.Buffer
			var mu sync.Mutex
			log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
			g, m := buildFor(t, "server: {forwarder: "+fwd+"}\nroutes: [{path: /a, target: \"{T}/a\"}]", b.URL, Deps{Bodies: budget, Log: log}, nil)
			front := httptest.NewServer(g)
			defer front.Close()
			for range 3 {
				resp, err := http.Post(front.URL+"/a", "text/plain", strings.NewReader(strings.Repeat("x", 8<<10)))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			front.Close() // every handler has returned
			if used := budget.Used(); used != 0 {
				t.Errorf("body budget still holds %d bytes after aborted answers", used)
			}
			wantEq(t, "aborted answers counted", testutil.ToFloat64(m.Requests.WithLabelValues("/a", "POST", "upstream_error")), 3.0)
			mu.Lock()
			logs := buf.String()
			mu.Unlock()
			if n := strings.Count(logs, `"outcome":"upstream_error"`); n != 3 || strings.Count(logs, `"status":200`) != 3 {
				t.Errorf("%d access lines of aborted answers, want 3 with status 200:\n%s", n, logs)
			}
		})
	}
}
