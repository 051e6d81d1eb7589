package gateway

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store/bolt"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// loseAfterCommit is the real queue, but the state file is removed and the
// store notices it between the commit and the answer: the case accept's
// second Healthy check is for.
type loseAfterCommit struct {
	*delivery.Queue
	st   *bolt.Store
	lose bool
}

func (l *loseAfterCommit) Enqueue(ctx context.Context, d *delivery.Delivery) (string, bool, error) {
	id, dup, err := l.Queue.Enqueue(ctx, d)
	if l.lose {
		os.Remove(l.st.Path())
		l.st.CheckFile()
	}
	return id, dup, err
}

// TestAsyncStateFileLost: on the embedded store, once the state file is
// known to be removed, an async route answers 503 Service Unavailable
// without writing, and a commit that raced the removal is not answered 202.
func TestAsyncStateFileLost(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(strings.ReplaceAll(asyncYAML, "{T}", "http://127.0.0.1:1")), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"before", "during"} {
		t.Run(when, func(t *testing.T) {
			st, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			q, err := delivery.Open(st.DB(), delivery.Options{})
			if err != nil {
				t.Fatal(err)
			}
			l := &loseAfterCommit{Queue: q, st: st}
			m := metrics.New()
			g, err := Build(cfg, Deps{Metrics: m, Queue: l, Store: st})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(g)
			defer func() { srv.Close(); g.Close() }()

			resp, b := do(t, mustReq("POST", srv.URL+"/hooks/x", strings.NewReader("{}")))
			acceptedID(t, resp, b)
			if when == "before" {
				os.Remove(st.Path())
				st.CheckFile()
			} else {
				l.lose = true
			}
			before, _ := q.Counts()
			resp, b = do(t, mustReq("POST", srv.URL+"/hooks/x", strings.NewReader("{}")))
			wantEq(t, "status", resp.StatusCode, 503)
			wantEq(t, "body", string(b), `{"message":"Service Unavailable"}`)
			wantEq(t, "error type", resp.Header.Get("x-amzn-ErrorType"), "ServiceUnavailableException")
			after, _ := q.Counts()
			if wrote := after.Pending - before.Pending; (when == "before") != (wrote == 0) {
				t.Errorf("%s: %d enqueued by the refused request", when, wrote)
			}
			wantEq(t, "unavailable", testutil.ToFloat64(m.Requests.WithLabelValues("/hooks/*", "POST", "unavailable")), 1.0)
			wantEq(t, "accepted", testutil.ToFloat64(m.Requests.WithLabelValues("/hooks/*", "POST", "accepted")), 1.0)
			if err := st.Healthy(); !errors.Is(err, bolt.ErrFileLost) {
				t.Fatalf("Healthy = %v", err)
			}
		})
	}
}
