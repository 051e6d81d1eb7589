package streams_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/delivery/streams"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// TestOps: the operator's view of the streams on a real redis-server:
// list pending and dead newest first across routes, filter by state and
// route, page with Before, read one with its body, replay one dead letter
// and then every dead letter, and purge dead letters; delivered entries
// are gone, so purging them removes nothing.
func TestOps(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	st, err := redis.New(redis.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pol := delivery.Policy{Timeout: time.Second, MaxAttempts: 1}.WithDefaults()
	pols := map[string]delivery.Policy{"/a": pol, "/b": pol}
	q := streams.New(st, pols, "w1")
	tg := newTarget(t, map[string]int{"/ok": 200, "/bad": 400})
	w := delivery.NewWorker(q, delivery.WorkerOptions{})
	w.SetPolicies(pols)
	ctx := context.Background()
	enqueue := func(route, path, body string) string {
		t.Helper()
		id, _, err := q.Enqueue(ctx, &delivery.Delivery{Route: route, Method: "POST", URL: tg.URL + path,
			Header: http.Header{"Authorization": {"Bearer s3cret"}}, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	enqueue("/a", "/ok", "delivered")
	enqueue("/a", "/bad", "dead a")
	enqueue("/b", "/bad", "dead b")
	if n, err := w.RunOnce(ctx); n != 3 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	pending := enqueue("/b", "/ok", "waiting")

	// Ids are unique across streams, so ties cannot make the order
	// depend on which stream was read first.
	all, err := q.List(delivery.Filter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("List = %d, %v; want 3 (the delivered one is gone)", len(all), err)
	}
	if all[0].ID != pending || all[0].State != delivery.Pending || all[0].Body != nil || all[0].BodyBytes != 7 {
		t.Fatalf("newest first, without body: %+v", all[0])
	}
	dead, _ := q.List(delivery.Filter{State: delivery.Dead})
	// Both died in one worker pass, maybe in one millisecond: either order.
	if len(dead) != 2 || dead[0].Route == dead[1].Route || dead[0].DoneAt.IsZero() || dead[0].State != delivery.Dead {
		t.Fatalf("dead: %+v", dead)
	}
	if ds, _ := q.List(delivery.Filter{State: delivery.Dead, Route: "/a"}); len(ds) != 1 || string(mustGet(t, q, ds[0].ID).Body) != "dead a" {
		t.Fatalf("dead of /a: %+v", ds)
	}
	if page, _ := q.List(delivery.Filter{Limit: 1, Before: all[0].ID}); len(page) != 1 || page[0].ID != all[1].ID {
		t.Fatalf("second page: %+v, want %s", page, all[1].ID)
	}
	// Page through everything one at a time: each id once, none skipped,
	// even where two streams hold the same entry ID (id.go).
	seen := map[string]bool{}
	for before := ""; ; {
		page, err := q.List(delivery.Filter{Limit: 1, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if seen[page[0].ID] || len(seen) > len(all) {
			t.Fatalf("paging returned %s twice", page[0].ID)
		}
		seen[page[0].ID], before = true, page[0].ID
	}
	if len(seen) != len(all) {
		t.Fatalf("paging saw %d of %d", len(seen), len(all))
	}
	_, tag, _ := strings.Cut(pending, ".")
	if _, err := q.Get("1-0." + tag); !errors.Is(err, delivery.ErrNotFound) {
		t.Fatalf("Get of an unknown id: %v", err)
	}
	for _, bad := range []string{"nope", "0-1", "1-0.x" + tag[1:], "1-0.p1234", "-1.p" + tag[1:]} {
		if _, err := q.Get(bad); !errors.Is(err, delivery.ErrInvalid) {
			t.Fatalf("Get(%q) of a malformed id: %v", bad, err)
		}
	}

	// Replay one: back in /b's stream as a new entry, delivered again.
	if err := q.Replay(dead[0].ID); err != nil {
		t.Fatal(err)
	}
	if c, _ := q.Counts(); c.Dead != 1 || c.Pending != 2 {
		t.Fatalf("after replay: %+v", c)
	}
	if err := q.Replay(dead[0].ID); !errors.Is(err, delivery.ErrNotFound) {
		t.Fatalf("replaying a dead letter twice: %v", err)
	}
	if err := q.Replay(pending); err != nil {
		t.Fatalf("replaying a pending delivery changes nothing: %v", err)
	}
	if n, err := q.ReplayDead(time.Time{}); n != 1 || err != nil {
		t.Fatalf("ReplayDead = %d, %v", n, err)
	}
	w.RunOnce(ctx) // everything dies again but the /ok one
	if c, _ := q.Counts(); c.Dead != 2 || c.Pending != 0 {
		t.Fatalf("after the second run: %+v", c)
	}
	if n, err := q.Purge(delivery.Delivered, time.Now().Add(time.Hour)); n != 0 || err != nil {
		t.Fatalf("purge delivered = %d, %v", n, err)
	}
	if _, err := q.Purge(delivery.Pending, time.Now()); !errors.Is(err, delivery.ErrInvalid) {
		t.Fatalf("purge pending: %v", err)
	}
	if n, err := q.Purge(delivery.Dead, time.Now().Add(time.Hour)); n != 2 || err != nil {
		t.Fatalf("purge dead = %d, %v", n, err)
	}
	if c, _ := q.Counts(); c != (delivery.Counts{}) {
		t.Fatalf("after purge: %+v", c)
	}
}

func mustGet(t *testing.T, q *streams.Queue, id string) *delivery.Delivery {
	t.Helper()
	d, err := q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
