package redis_test

import (
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// TestOrderedQueue: on an ordered queue only each key's oldest entry can
// be claimed; acknowledging it (or dead-lettering it, also through
// MaxDeliveries) moves the key's next entry in, with its enqueue id as
// RequestID; other keys are not held back; coalesce drops the held
// entries of the key, never its head.
func TestOrderedQueue(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := newStore(t, srv, redis.Options{})
	q := s.Queue("ordered", redis.QueueOptions{Consumer: "w", MaxDeliveries: 1, MinIdle: time.Millisecond})
	enq := func(key, okey string, coalesce bool) string {
		id, dup, err := q.EnqueueOrdered(ctx, key, []byte(key), okey, coalesce)
		if err != nil || dup {
			t.Fatalf("enqueue %s: %v %v", key, dup, err)
		}
		return id
	}
	enq("a1", "a", false)
	a2 := enq("a2", "a", false)
	enq("b1", "b", false)
	a3 := enq("a3", "a", false)
	claim := func() []redis.Message {
		time.Sleep(5 * time.Millisecond) // MinIdle is 1 ms on the server
		ms, err := q.Claim(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	ms := claim()
	if len(ms) != 2 || string(ms[0].Body) != "a1" || string(ms[1].Body) != "b1" || ms[0].OrderKey != "a" || !ms[0].Ordered {
		t.Fatalf("first claim: %+v", ms)
	}
	if err := q.Ack(ctx, ms[0].ID); err != nil {
		t.Fatal(err)
	}
	ms = claim()
	// b1 was handed out once already: with MaxDeliveries 1 it is
	// dead-lettered by this claim once idle; a2 came in for a1.
	if len(ms) != 1 || string(ms[0].Body) != "a2" || ms[0].RequestID != a2 {
		t.Fatalf("after a1's ack: %+v", ms)
	}
	// a2 is dead-lettered by the next claim (MaxDeliveries): a3 comes in.
	ms = claim()
	if len(ms) != 1 || string(ms[0].Body) != "a3" || ms[0].RequestID != a3 {
		t.Fatalf("after a2 died: %+v", ms)
	}
	if dead, _ := q.Dead(ctx, 10); len(dead) != 2 {
		t.Errorf("dead: %+v, want b1 and a2", dead)
	}

	// Coalesce: c1 is the head; c2, c3 wait; c4 drops them.
	enq("c1", "c", true)
	enq("c2", "c", true)
	enq("c3", "c", true)
	enq("c4", "c", true)
	held, co, err := q.Coalesced(ctx)
	if err != nil || held != 1 || co != 2 {
		t.Fatalf("held %d, coalesced %d, %v; want c4 held and c2, c3 coalesced", held, co, err)
	}
	// A duplicate key is answered with the first id, held or not.
	if id, dup, _ := q.EnqueueOrdered(ctx, "c4", []byte("again"), "c", true); !dup || id == "" {
		t.Errorf("duplicate: %s %v", id, dup)
	}
}
