package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

var ctx = context.Background()

// TestEnqueueSurvivesReopen: what Enqueue returned is in the file after
// the DB is closed and opened again, body byte for byte.
func TestEnqueueSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := openDB(t, path)
	q, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := sample("/hooks", "http://127.0.0.1:1/x?a=1&b=%20", "k1")
	d.Body = []byte{0, 1, 2, 0xff, '\n'}
	id, dup, err := q.Enqueue(ctx, d)
	if err != nil || dup || !validID(id) || d.ID != id || d.State != Pending {
		t.Fatalf("Enqueue = %q, %v, %v; d = %+v", id, dup, err, d)
	}
	db.Close()

	q2, err := Open(openDB(t, path), Options{})
	if err != nil {
		t.Fatal(err)
	}
	back, err := q2.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Body, d.Body) || back.URL != d.URL || back.Method != "POST" ||
		back.Header.Get("X-Github-Delivery") != "k1" || back.State != Pending || back.BodyBytes != 5 {
		t.Errorf("after reopen: %+v", back)
	}
	if c, _ := q2.Counts(); c != (Counts{Pending: 1}) {
		t.Errorf("counts = %+v", c)
	}
}

// TestDedupe: a duplicate key on the same route returns the first id and
// stores nothing; the same key on another route, or no key, is new.
func TestDedupe(t *testing.T) {
	q := openQueue(t, nil)
	id1, dup, _ := q.Enqueue(ctx, sample("/a", "http://127.0.0.1:1/", "evt_1"))
	if dup {
		t.Fatal("first is a duplicate")
	}
	cases := []struct {
		name, route, key string
		dup              bool
	}{
		{"same key, same route", "/a", "evt_1", true},
		{"same key, other route", "/b", "evt_1", false},
		{"other key", "/a", "evt_2", false},
		{"no key", "/a", "", false},
		{"no key again", "/a", "", false},
	}
	for _, c := range cases {
		id, dup, err := q.Enqueue(ctx, sample(c.route, "http://127.0.0.1:1/", c.key))
		if err != nil || dup != c.dup || (id == id1) != c.dup {
			t.Errorf("%s: id %s (first %s), dup %v, err %v", c.name, id, id1, dup, err)
		}
	}
	if c, _ := q.Counts(); c.Pending != 5 {
		t.Errorf("pending = %d, want 5", c.Pending)
	}
}

// TestEnqueueConcurrent: concurrent Enqueues (one group commit) each get a
// distinct id; concurrent duplicates all get the one id.
func TestEnqueueConcurrent(t *testing.T) {
	q := openQueue(t, nil)
	const n = 64
	ids := make([]string, n)
	dupIDs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			ids[i], _, err = q.Enqueue(ctx, sample("/a", "http://127.0.0.1:1/", fmt.Sprint("k", i)))
			if err != nil {
				t.Error(err)
			}
			dupIDs[i], _, _ = q.Enqueue(ctx, sample("/b", "http://127.0.0.1:1/", "same"))
		})
	}
	wg.Wait()
	if u := slices.Compact(slices.Sorted(slices.Values(ids))); len(u) != n {
		t.Errorf("%d distinct ids, want %d", len(u), n)
	}
	if u := slices.Compact(slices.Sorted(slices.Values(dupIDs))); len(u) != 1 {
		t.Errorf("duplicates got %d ids, want 1", len(u))
	}
	if c, _ := q.Counts(); c.Pending != n+1 {
		t.Errorf("pending = %d, want %d", c.Pending, n+1)
	}
}

func TestEnqueueInvalid(t *testing.T) {
	q := openQueue(t, nil)
	for name, d := range map[string]*Delivery{
		"no route":     {Method: "POST", URL: "http://x/"},
		"no method":    {Route: "/a", URL: "http://x/"},
		"relative url": {Route: "/a", Method: "POST", URL: "/x"},
		"long key":     {Route: "/a", Method: "POST", URL: "http://x/", Key: string(make([]byte, MaxKeyBytes+1))},
	} {
		if _, _, err := q.Enqueue(ctx, d); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := q.Get("nope"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Get(junk) = %v", err)
	}
	if _, err := q.Get(idFloor(time.Now())); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) = %v", err)
	}
}

// TestListPurge: List filters and pages newest first; Purge removes only
// finished deliveries older than the cut, and forgets their keys.
func TestListPurge(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	w := NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand})
	tg := newTarget(t)
	var ids []string
	for i := range 6 {
		route := "/a"
		if i%2 == 1 {
			route = "/b"
		}
		id, _, _ := q.Enqueue(ctx, sample(route, tg.URL, fmt.Sprint("k", i)))
		ids = append(ids, id)
		if n, _ := w.RunOnce(ctx); n != 1 {
			t.Fatalf("RunOnce made %d attempts, want 1", n)
		}
		clock.Add(time.Second)
	}
	all, _ := q.List(Filter{})
	if len(all) != 6 || all[0].ID != ids[5] || all[5].ID != ids[0] || all[0].Body != nil {
		t.Fatalf("List: %d items, first %s", len(all), all[0].ID)
	}
	b, _ := q.List(Filter{Route: "/b", State: Delivered})
	if len(b) != 3 {
		t.Errorf("route /b delivered: %d, want 3", len(b))
	}
	page, _ := q.List(Filter{Before: ids[3], Limit: 2})
	if len(page) != 2 || page[0].ID != ids[2] || page[1].ID != ids[1] {
		t.Errorf("page before %s: %v", ids[3], page)
	}
	if page, _ := q.List(Filter{Before: "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"}); len(page) != 6 {
		t.Errorf("before an id above all: %d, want 6", len(page))
	}
	if page, _ := q.List(Filter{Before: ids[0]}); len(page) != 0 {
		t.Errorf("before the oldest: %d, want 0", len(page))
	}
	since, _ := q.List(Filter{Since: all[2].AcceptedAt})
	if len(since) != 3 {
		t.Errorf("since: %d, want 3", len(since))
	}
	if _, err := q.List(Filter{State: "lost"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad state: %v", err)
	}

	if _, err := q.Purge(Pending, clock.Now()); !errors.Is(err, ErrInvalid) {
		t.Errorf("purge pending: %v", err)
	}
	n, err := q.Purge(Delivered, all[2].DoneAt) // the three oldest
	if err != nil || n != 3 {
		t.Errorf("Purge = %d, %v; want 3", n, err)
	}
	if c, _ := q.Counts(); c != (Counts{Delivered: 3}) {
		t.Errorf("counts after purge: %+v", c)
	}
	if _, err := q.Get(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("purged delivery: %v", err)
	}
	// A purged key is forgotten: the same event is new again.
	if _, dup, _ := q.Enqueue(ctx, sample("/a", tg.URL, "k0")); dup {
		t.Error("key of a purged delivery still deduplicates")
	}
}

func TestCountsReplay(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	tg := newTarget(t)
	tg.set(status(http.StatusBadRequest))
	w := NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand})
	id, _, _ := q.Enqueue(ctx, sample("/a", tg.URL, "x"))
	w.RunOnce(ctx)
	if c, _ := q.Counts(); c != (Counts{Dead: 1}) {
		t.Fatalf("counts = %+v", c)
	}
	if n, _ := q.ReplayDead(clock.Now().Add(time.Second)); n != 0 {
		t.Errorf("ReplayDead(later) = %d", n)
	}
	if n, _ := q.ReplayDead(clock.Now().Add(-time.Hour)); n != 1 {
		t.Errorf("ReplayDead = %d, want 1", n)
	}
	if err := q.Replay(id); err != nil { // already pending: no change
		t.Fatal(err)
	}
	if c, _ := q.Counts(); c != (Counts{Pending: 1}) {
		t.Fatalf("counts after replay = %+v", c)
	}
}
