package streams_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/delivery/streams"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// target answers each request with the status its path names in codes
// and records the X-Drawbridge-Delivery ids it saw.
type target struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]int
}

func newTarget(t *testing.T, status map[string]int) *target {
	tg := &target{seen: map[string]int{}}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		tg.mu.Lock()
		tg.seen[r.Header.Get("X-Drawbridge-Delivery")]++
		tg.mu.Unlock()
		w.WriteHeader(status[r.URL.Path])
	}))
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) count(id string) int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.seen[id]
}

// TestWorkerOnStreams drives the real delivery.Worker over a streams.Queue
// on a redis-server whose clock the test moves: a 2xx is acknowledged
// (gone from the stream), a 400 is dead at once, a 503 stays queued, is
// not handed out again before MinIdle (timeout + TakeoverMargin) on the
// Redis clock, is after it, and is dead once max_attempts is spent; a
// duplicate key returns the first id; an unknown route is refused.
func TestWorkerOnStreams(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	srv := redistest.Start(t, redistest.Options{Frozen: t0})
	st, err := redis.New(redis.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tg := newTarget(t, map[string]int{"/ok": 200, "/bad": 400, "/sick": 503})
	pol := delivery.Policy{Timeout: time.Second, MaxAttempts: 2}.WithDefaults()
	q := streams.New(st, map[string]delivery.Policy{"/hooks": pol}, "w1")
	w := delivery.NewWorker(q, delivery.WorkerOptions{})
	w.SetPolicies(map[string]delivery.Policy{"/hooks": pol})
	ctx := context.Background()

	enqueue := func(path, key string) string {
		t.Helper()
		id, dup, err := q.Enqueue(ctx, &delivery.Delivery{Route: "/hooks", Method: "POST", URL: tg.URL + path, Key: key, Body: []byte("b")})
		if err != nil || dup {
			t.Fatalf("enqueue %s: %v dup=%v", path, err, dup)
		}
		return id
	}
	ok, bad, sick := enqueue("/ok", "k1"), enqueue("/bad", ""), enqueue("/sick", "")
	if id, dup, err := q.Enqueue(ctx, &delivery.Delivery{Route: "/hooks", Method: "POST", URL: tg.URL + "/ok", Key: "k1"}); err != nil || !dup || id != ok {
		t.Errorf("duplicate key: %s %v %v, want %s true", id, dup, err, ok)
	}
	if _, _, err := q.Enqueue(ctx, &delivery.Delivery{Route: "/other", Method: "POST", URL: tg.URL}); err == nil {
		t.Error("enqueue for a route that is not async: no error")
	}

	pass := func(want int) {
		t.Helper()
		if n, err := w.RunOnce(ctx); n != want || err != nil {
			t.Fatalf("RunOnce = %d, %v; want %d attempts", n, err, want)
		}
	}
	pass(3)
	if tg.count(ok) != 1 || tg.count(bad) != 1 || tg.count(sick) != 1 {
		t.Fatalf("first pass: target saw %v", tg.seen)
	}
	counts := func(want delivery.Counts) {
		t.Helper()
		if c, err := q.Counts(); c != want || err != nil {
			t.Errorf("Counts = %+v, %v; want %+v", c, err, want)
		}
	}
	counts(delivery.Counts{Pending: 1, Dead: 1}) // sick queued, bad dead, ok gone

	srv.SetTime(t0.Add(pol.Timeout + streams.TakeoverMargin - time.Millisecond))
	pass(0) // not idle long enough: no retry yet
	srv.SetTime(t0.Add(pol.Timeout + streams.TakeoverMargin + time.Millisecond))
	pass(1) // second attempt: max_attempts 2 spent, dead
	if tg.count(sick) != 2 {
		t.Errorf("sick delivered %d times, want 2", tg.count(sick))
	}
	counts(delivery.Counts{Dead: 2})
}

// TestTraceOnStreams: the accepting span's traceparent stored with a
// delivery (Delivery.Trace) comes back with it from the stream, for the
// attempt's link.
func TestTraceOnStreams(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	st, err := redis.New(redis.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tg := newTarget(t, map[string]int{"/ok": 200})
	pol := delivery.Policy{Timeout: time.Second}.WithDefaults()
	q := streams.New(st, map[string]delivery.Policy{"/hooks": pol}, "w1")
	var mu sync.Mutex
	var accepted []string
	w := delivery.NewWorker(q, delivery.WorkerOptions{
		Trace: func(_, _, acc string, _ int) (string, func(int, error, string, time.Time)) {
			mu.Lock()
			accepted = append(accepted, acc)
			mu.Unlock()
			return "", func(int, error, string, time.Time) {}
		}})
	w.SetPolicies(map[string]delivery.Policy{"/hooks": pol})
	ctx := context.Background()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-a3ce929d0e0e4736-01"
	if _, _, err := q.Enqueue(ctx, &delivery.Delivery{Route: "/hooks", Method: "POST", URL: tg.URL + "/ok", Body: []byte("b"), Trace: tp}); err != nil {
		t.Fatal(err)
	}
	if n, err := w.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	if len(accepted) != 1 || accepted[0] != tp {
		t.Errorf("attempt linked to %q, want %q", accepted, tp)
	}
}
