package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/drawbridge/drawbridge/internal/admin"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/metrics"
)

// BenchmarkPages renders the console's pages over a queue of 100,000
// deliveries (one in ten dead, the rest pending: finishing each would
// double the setup, and a page reads records alike whatever their state):
// a page reads one page of the history (PageSize rows), never the whole
// queue.
func BenchmarkPages(b *testing.B) {
	const total = 100_000
	cfg, err := config.Parse("drawbridge.yaml", []byte(baseConfig), nil)
	if err != nil {
		b.Fatal(err)
	}
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "s.db"), 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	q, err := delivery.Open(db, delivery.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	body := []byte(`{"action":"opened","number":1347,"repository":{"full_name":"octo/hello"}}`)
	// Concurrent enqueues share transactions (the queue's group commit):
	// the setup takes seconds, not the minute one at a time would.
	const workers = 16
	ids := make([]string, total)
	var wg sync.WaitGroup
	var next atomic.Int64 // one counter: routes and states stay interleaved in time
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < total; i = int(next.Add(1) - 1) {
				route := "/hooks/a"
				if i%2 == 1 {
					route = "/hooks/b"
				}
				d := &delivery.Delivery{Route: route, Method: "POST", URL: "http://127.0.0.1:1" + route[6:],
					Header: http.Header{"Content-Type": {"application/json"}, "X-Github-Event": {"push"}}, Body: body}
				id, _, err := q.Enqueue(ctx, d)
				if err != nil {
					errs <- err
					return
				}
				ids[i] = id
				if i%10 != 0 {
					continue
				}
				d.ID = id
				if err := q.Finish(ctx, d, delivery.Attempt{At: time.Now(), Status: 500, Duration: time.Millisecond}, delivery.Dead, time.Time{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	some := ids[total/2]
	m := metrics.New()
	r := NewRecent()
	m.Recent = r
	now := time.Now()
	for i := range 50_000 {
		r.Record(metrics.Event{At: now.Add(-time.Duration(i%300) * time.Second), Route: "/hooks/a", Outcome: metrics.Outcomes[i%len(metrics.Outcomes)], Upstream: time.Millisecond})
	}
	c := New(Deps{Admin: admin.Handler(m.Registry, func(context.Context) error { return nil }, q),
		Config: func() *config.Config { return cfg }, Metrics: m, Deliveries: q})
	for _, p := range []struct{ name, path string }{
		{"overview", "/"},
		{"rejections", "/console/rejections"},
		{"deliveries", "/console/deliveries"},
		{"deliveries_dead", "/console/deliveries?state=dead"},
		{"deliveries_route", "/console/deliveries?route=%2Fhooks%2Fb"},
		// The worst case: a filter nothing matches reads scanLimit
		// records, then links to the next batch.
		{"deliveries_no_match", "/console/deliveries?route=%2Fsync"},
		{"delivery", "/console/deliveries/" + some},
	} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				c.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1:9090"+p.path, nil))
				if w.Code != 200 {
					b.Fatalf("%s: %d", p.path, w.Code)
				}
			}
		})
	}
}
