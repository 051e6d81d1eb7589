package delivery

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

func ordered(key string, coalesce bool, n string) *Delivery {
	d := sample("/h", "http://127.0.0.1:1/", "")
	d.OrderKey, d.Ordered, d.Coalesce = key, true, coalesce
	d.Header.Set("X-N", n)
	return d
}

func names(ds []*Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Header.Get("X-N"))
	}
	return out
}

// TestOrderedDue: on an ordered lane each key's oldest delivery is the
// only one started, keys go in parallel up to the window, a head being
// retried holds its key back but not the others, and all of it (the
// order keys and flags) survives a restart: a new Queue on the same file
// schedules the same.
func TestOrderedDue(t *testing.T) {
	clock := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	db := openDB(t, path)
	q, err := Open(db, Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, d := range []*Delivery{ordered("a", false, "a1"), ordered("b", false, "b1"), ordered("a", false, "a2"), ordered("c", false, "c1")} {
		if _, _, err := q.Enqueue(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	none := func(string) bool { return false }
	win := func(n int) func(string) int { return func(string) int { return n } }
	ready, _, err := q.Due(ctx, clock.Now(), win(2), none)
	if err != nil || !slices.Equal(names(ready), []string{"a1", "b1"}) {
		t.Fatalf("window 2: %v %v", names(ready), err)
	}
	ready, _, _ = q.Due(ctx, clock.Now(), win(10), none)
	if !slices.Equal(names(ready), []string{"a1", "b1", "c1"}) {
		t.Fatalf("window 10: %v, want one head per key", names(ready))
	}
	a1 := ready[0]
	// a1 in flight: a2 waits, b1 and c1 may go.
	busy := func(id string) bool { return id == a1.ID }
	if ready, _, _ = q.Due(ctx, clock.Now(), win(3), busy); !slices.Equal(names(ready), []string{"b1", "c1"}) {
		t.Fatalf("a1 busy: %v", names(ready))
	}
	// a1 failed and waits a minute: a2 still waits behind it.
	if err := q.Finish(ctx, a1, Attempt{At: clock.Now(), Status: 503}, Pending, clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	ready, next, _ := q.Due(ctx, clock.Now(), win(3), none)
	if !slices.Equal(names(ready), []string{"b1", "c1"}) || !next.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("a1 retrying: %v, next %v", names(ready), next)
	}
	// Restart: a new Queue on the same file.
	db.Close()
	db2 := openDB(t, path)
	q2, err := Open(db2, Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)
	if ready, _, _ = q2.Due(ctx, clock.Now(), win(3), none); !slices.Equal(names(ready), []string{"a1", "b1", "c1"}) {
		t.Fatalf("after restart: %v", names(ready))
	}
}

// TestCoalesceDue: on a coalescing lane every never-attempted delivery
// of a key but the newest is recorded coalesced when Due runs, also
// behind a head being retried; a delivery in flight is never coalesced;
// a replayed coalesced delivery is sent after all.
func TestCoalesceDue(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	ctx := context.Background()
	enq := func(key, n string) *Delivery {
		d := ordered(key, true, n)
		if _, _, err := q.Enqueue(ctx, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a1 := enq("a", "a1")
	none := func(string) bool { return false }
	win := func(string) int { return 5 }
	if ready, _, _ := q.Due(ctx, clock.Now(), win, none); !slices.Equal(names(ready), []string{"a1"}) {
		t.Fatalf("%v", names(ready))
	}
	// a1 in flight; a2, a3, a4 arrive.
	enq("a", "a2")
	a3 := enq("a", "a3")
	enq("a", "a4")
	busy := func(id string) bool { return id == a1.ID }
	if ready, _, _ := q.Due(ctx, clock.Now(), win, busy); len(ready) != 0 {
		t.Fatalf("a1 busy: %v", names(ready))
	}
	if c, _ := q.Counts(); c.Coalesced != 2 || c.Pending != 2 {
		t.Fatalf("counts %+v: a2 and a3 should be coalesced, a1 (in flight) and a4 pending", c)
	}
	// a1 fails and will be retried; a5 arrives: a4 (never attempted) is
	// superseded even behind the retrying head.
	q.Finish(ctx, a1, Attempt{At: clock.Now(), Status: 500}, Pending, clock.Now())
	enq("a", "a5")
	ready, _, _ := q.Due(ctx, clock.Now(), win, none)
	if !slices.Equal(names(ready), []string{"a1"}) {
		t.Fatalf("after a1 failed: %v, want a1 again (it was attempted, so never coalesced)", names(ready))
	}
	if c, _ := q.Counts(); c.Coalesced != 3 || c.Pending != 2 {
		t.Fatalf("counts %+v", c)
	}
	d, _ := q.Get(a3.ID)
	if d.State != Coalesced || d.DoneAt.IsZero() || len(d.Attempts) != 0 {
		t.Fatalf("a3: %+v", d)
	}
	// Replay sends a coalesced one after all.
	if err := q.Replay(a3.ID); err != nil {
		t.Fatal(err)
	}
	q.Due(ctx, clock.Now(), win, none)
	if d, _ := q.Get(a3.ID); d.State != Pending {
		t.Fatalf("replayed a3: %s, want pending (a replay is not coalesced again)", d.State)
	}
	if n, err := q.Purge(Coalesced, clock.Now().Add(time.Second)); err != nil || n != 2 {
		t.Fatalf("purge coalesced: %d %v", n, err)
	}
}

// TestGroupOneBody: a fanned-out request's deliveries share one stored
// body, which each reads (Get, Due) and which goes with the last of them
// purged.
func TestGroupOneBody(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	ctx := context.Background()
	a, b := sample("/h#a", "http://127.0.0.1:1/a", "k"), sample("/h#b", "http://127.0.0.1:1/b", "k")
	a.Body = []byte(`{"big":"payload"}`)
	b.Body = a.Body
	id, _, err := q.EnqueueGroup(ctx, []*Delivery{a, b})
	if err != nil || id != a.ID || b.Request != id {
		t.Fatalf("enqueue: %s %v; a %s, b's request %s", id, err, a.ID, b.Request)
	}
	bodies := func() int {
		n := 0
		q.db.View(func(tx *bbolt.Tx) error { n = tx.Bucket(bodyBucket).Stats().KeyN; return nil })
		return n
	}
	if bodies() != 1 {
		t.Fatalf("%d bodies stored, want one for the request", bodies())
	}
	ready, _, _ := q.Due(ctx, clock.Now(), func(string) int { return 1 }, func(string) bool { return false })
	if len(ready) != 2 || string(ready[0].Body) != `{"big":"payload"}` || string(ready[1].Body) != `{"big":"payload"}` {
		t.Fatalf("due: %d, bodies %q", len(ready), names(ready))
	}
	q.Finish(ctx, ready[0], Attempt{At: clock.Now(), Status: 200}, Delivered, time.Time{})
	clock.Add(time.Hour)
	if n, _ := q.Purge(Delivered, clock.Now()); n != 1 {
		t.Fatalf("purged %d", n)
	}
	if d, err := q.Get(b.ID); err != nil || string(d.Body) != `{"big":"payload"}` || len(d.Targets) != 1 {
		t.Fatalf("b after a was purged: %v %+v", err, d)
	}
	q.Finish(ctx, ready[1], Attempt{At: clock.Now(), Status: 200}, Delivered, time.Time{})
	clock.Add(time.Hour)
	if n, _ := q.Purge(Delivered, clock.Now()); n != 1 || bodies() != 0 {
		t.Fatalf("purged %d, %d bodies left", n, bodies())
	}
}
