package delivery

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDeliverOnceAsAccepted: a delivery reaches the target with the same
// method, request-target, headers and body bytes, plus its id, and only
// once; the target being down first only delays it.
func TestDeliverOnceAsAccepted(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	w := NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand})
	tg := newTarget(t)
	tg.set(status(http.StatusServiceUnavailable))
	d := &Delivery{
		Route:  "/hooks/*",
		Method: http.MethodPut,
		URL:    tg.URL + "/base/a%20b?x=1&y=%2F&x=2",
		Header: http.Header{"X-Github-Event": {"push"}, "X-Hub-Signature-256": {"sha256=00"}, "X-Multi": {"a", "b"}},
		Body:   []byte("\x00binary\r\nbody\xff"),
		Key:    "guid-1",
	}
	id, _, err := q.Enqueue(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := w.RunOnce(ctx); n != 1 {
		t.Fatalf("attempts = %d, want 1", n)
	}
	tg.set(nil) // the target is back
	clock.Add(time.Hour)
	w.RunOnce(ctx)
	w.RunOnce(ctx)
	reqs := tg.requests()
	if len(reqs) != 2 {
		t.Fatalf("target saw %d requests, want 2 (one refused, one delivered)", len(reqs))
	}
	r := reqs[1]
	if r.Method != "PUT" || r.RequestURI != "/base/a%20b?x=1&y=%2F&x=2" || !bytes.Equal(r.Body, d.Body) {
		t.Errorf("target got %s %s %q", r.Method, r.RequestURI, r.Body)
	}
	for k, vs := range d.Header {
		if fmt.Sprint(r.Header[k]) != fmt.Sprint(vs) {
			t.Errorf("header %s = %v, want %v", k, r.Header[k], vs)
		}
	}
	if r.Header.Get("X-Drawbridge-Delivery") != id {
		t.Errorf("X-Drawbridge-Delivery = %q, want %q", r.Header.Get("X-Drawbridge-Delivery"), id)
	}
	got, _ := q.Get(id)
	if got.State != Delivered || len(got.Attempts) != 2 || got.Attempts[0].Status != 503 || got.Attempts[1].Status != 200 {
		t.Errorf("record: %+v", got)
	}
}

// TestOutcomes: which answers end a delivery, which retry
// (docs/delivery.md#outcomes-and-retries).
func TestOutcomes(t *testing.T) {
	cases := []struct {
		name   string
		handle http.HandlerFunc
		want   State
	}{
		{"200", status(200), Delivered},
		{"204", status(204), Delivered},
		{"299", status(299), Delivered},
		{"301 never followed", status(301, "Location", "/elsewhere"), Dead},
		{"304", status(304), Dead},
		{"400", status(400), Dead},
		{"401", status(401), Dead},
		{"404", status(404), Dead},
		{"408", status(408), Pending},
		{"410", status(410), Dead},
		{"429", status(429), Pending},
		{"500", status(500), Pending},
		{"502", status(502), Pending},
		{"503", status(503), Pending},
		{"connection reset", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }, Pending},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := newClock()
			q := openQueue(t, clock)
			tg := newTarget(t)
			tg.set(c.handle)
			id, _, _ := q.Enqueue(ctx, sample("/a", tg.URL+"/in", "k"))
			NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand}).RunOnce(ctx)
			d, _ := q.Get(id)
			if d.State != c.want || len(d.Attempts) != 1 || len(tg.requests()) != 1 {
				t.Errorf("state %s after %d attempts (target saw %d), want %s", d.State, len(d.Attempts), len(tg.requests()), c.want)
			}
		})
	}
}

func TestTargetDown(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	tg := newTarget(t)
	url := tg.URL
	tg.Close() // nothing listens there now
	id, _, _ := q.Enqueue(ctx, sample("/a", url, "k"))
	NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand}).RunOnce(ctx)
	d, _ := q.Get(id)
	if d.State != Pending || len(d.Attempts) != 1 || d.Attempts[0].Status != 0 || d.Attempts[0].Error == "" {
		t.Errorf("record after refused dial: %+v", d)
	}
}

// TestRetryAfter: a 503 with Retry-After: 1 is not retried before one
// second of the clock has passed, although the backoff alone would allow
// it after 100ms.
func TestRetryAfter(t *testing.T) {
	for _, code := range []int{429, 503} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			clock := newClock()
			q := openQueue(t, clock)
			w := NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand})
			w.SetPolicies(map[string]Policy{"/a": Policy{Base: 100 * time.Millisecond}.WithDefaults()})
			tg := newTarget(t)
			tg.set(status(code, "Retry-After", "1"))
			id, _, _ := q.Enqueue(ctx, sample("/a", tg.URL, "k"))
			w.RunOnce(ctx)
			tg.set(nil)
			clock.Add(999 * time.Millisecond)
			if n, _ := w.RunOnce(ctx); n != 0 {
				t.Fatalf("retried %d times before Retry-After passed", n)
			}
			clock.Add(time.Millisecond)
			if n, _ := w.RunOnce(ctx); n != 1 {
				t.Fatalf("not retried once Retry-After passed (%d attempts)", n)
			}
			d, _ := q.Get(id)
			if d.State != Delivered || len(d.Attempts) != 2 {
				t.Fatalf("record: %+v", d)
			}
			if gap := d.Attempts[1].At.Sub(d.Attempts[0].At.Add(d.Attempts[0].Duration)); gap < time.Second {
				t.Errorf("second attempt %v after the first ended, want ≥ 1s", gap)
			}
		})
	}
}

// TestExhaustedThenReplay: max_attempts failures dead-letter the delivery;
// replay gives it a fresh budget and it is delivered.
func TestExhaustedThenReplay(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	w := NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand})
	w.SetPolicies(map[string]Policy{"/a": Policy{MaxAttempts: 3, Base: time.Second, Max: time.Second}.WithDefaults()})
	tg := newTarget(t)
	tg.set(status(500))
	id, _, _ := q.Enqueue(ctx, sample("/a", tg.URL, "k"))
	for range 10 {
		w.RunOnce(ctx)
		clock.Add(time.Second)
	}
	d, _ := q.Get(id)
	if d.State != Dead || len(d.Attempts) != 3 || len(tg.requests()) != 3 {
		t.Fatalf("after max_attempts: state %s, %d attempts, target saw %d", d.State, len(d.Attempts), len(tg.requests()))
	}
	tg.set(nil)
	if err := q.Replay(id); err != nil {
		t.Fatal(err)
	}
	w.RunOnce(ctx)
	d, _ = q.Get(id)
	if d.State != Delivered || len(d.Attempts) != 4 {
		t.Errorf("after replay: state %s, %d attempts", d.State, len(d.Attempts))
	}
}

// TestMaxAge: a delivery failing past max_age is dead even with attempts
// left; the last try is pulled in to the deadline.
func TestMaxAge(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	rnd := func(n int64) int64 { return n - 1 } // longest backoff
	w := NewWorker(q, WorkerOptions{Clock: clock, Rand: rnd})
	w.SetPolicies(map[string]Policy{"/a": Policy{MaxAge: 10 * time.Minute, Base: 4 * time.Minute, Max: time.Hour}.WithDefaults()})
	tg := newTarget(t)
	tg.set(status(502))
	id, _, _ := q.Enqueue(ctx, sample("/a", tg.URL, "k"))
	for range 20 {
		w.RunOnce(ctx)
		clock.Add(time.Minute)
	}
	d, _ := q.Get(id)
	// Attempts at 0, ~4m, ~10m (8m backoff cut to the deadline), then dead.
	if d.State != Dead || len(d.Attempts) != 3 {
		t.Fatalf("state %s after %d attempts", d.State, len(d.Attempts))
	}
	if last := d.Attempts[2].At.Sub(d.AcceptedAt); last < 10*time.Minute || last > 11*time.Minute {
		t.Errorf("last attempt at +%v, want at the 10m deadline", last)
	}
}

// TestInOrderOneAtATime: with concurrency 1, 50 queued deliveries reach a
// slow target one at a time, in order of acceptance; with 3, never more
// than 3 at once. Real clock: the target is up, so nothing waits for a
// backoff.
func TestInOrderOneAtATime(t *testing.T) {
	for _, conc := range []int{1, 3} {
		t.Run(strconv.Itoa(conc), func(t *testing.T) {
			q := openQueue(t, nil)
			var now, peak atomic.Int32
			var mu sync.Mutex
			var order []int
			tg := newTarget(t)
			tg.set(func(w http.ResponseWriter, r *http.Request) {
				n := now.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(2 * time.Millisecond) // a slow target, not a wait for time to pass
				i, _ := strconv.Atoi(r.URL.Query().Get("i"))
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				now.Add(-1)
			})
			const n = 50
			// Queued while no worker runs, as after a backend outage.
			for i := range n {
				q.Enqueue(ctx, sample("/a", fmt.Sprintf("%s/?i=%d", tg.URL, i), fmt.Sprint(i)))
			}
			w := NewWorker(q, WorkerOptions{})
			w.SetPolicies(map[string]Policy{"/a": Policy{Concurrency: conc}.WithDefaults()})
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { w.Run(runCtx); close(done) }()
			deadline := time.Now().Add(10 * time.Second)
			for {
				c, _ := q.Counts()
				if c.Delivered == n {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("delivered %d of %d in 10s", c.Delivered, n)
				}
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			<-done
			if int(peak.Load()) > conc {
				t.Errorf("target saw %d at once, limit %d", peak.Load(), conc)
			}
			if len(order) != n {
				t.Fatalf("target saw %d requests, want %d", len(order), n)
			}
			if conc == 1 {
				for i, v := range order {
					if v != i {
						t.Fatalf("delivery %d was #%d: order of acceptance not kept: %v", v, i, order)
					}
				}
			}
		})
	}
}

// TestShutdownMidAttempt: cancelling Run during an attempt records
// nothing; the delivery stays pending, due, for the next start.
func TestShutdownMidAttempt(t *testing.T) {
	q := openQueue(t, nil)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	tg := newTarget(t)
	tg.set(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	id, _, _ := q.Enqueue(ctx, sample("/a", tg.URL, "k"))
	w := NewWorker(q, WorkerOptions{})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(runCtx); close(done) }()
	<-entered
	cancel()
	<-done
	d, _ := q.Get(id)
	if d.State != Pending || len(d.Attempts) != 0 {
		t.Errorf("after shutdown mid-attempt: state %s, %d attempts", d.State, len(d.Attempts))
	}
}

// TestRoutesIndependent: a route stuck retrying does not hold up another.
func TestRoutesIndependent(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	bad, good := newTarget(t), newTarget(t)
	bad.set(status(500))
	q.Enqueue(ctx, sample("/bad", bad.URL, "1"))
	q.Enqueue(ctx, sample("/bad", bad.URL, "2"))
	q.Enqueue(ctx, sample("/good", good.URL, "1"))
	q.Enqueue(ctx, sample("/good", good.URL, "2"))
	NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand}).RunOnce(ctx)
	if n := len(good.requests()); n != 2 {
		t.Errorf("good route delivered %d, want 2", n)
	}
	if n := len(bad.requests()); n != 1 {
		t.Errorf("bad route: %d sent, want 1 (head of line retrying)", n)
	}
}
