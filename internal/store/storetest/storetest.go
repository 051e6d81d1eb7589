// Package storetest is the conformance suite every store driver passes:
// call Run from the driver's tests with a function returning a fresh,
// empty store. The suite pins the semantics the guards rely on (bucket
// refill and all-or-nothing takes, quota periods and offsets, idempotent
// lease release, and store.Admit's shape: the separate calls' decisions,
// no lease left by a refusal, store.Peek predicting it) and hammers each
// operation from many goroutines, so run it under -race.
package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/throttle"
)

// T0 is the instant the suite's clock starts at.
var T0 = time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC)

// Run runs the suite. newStore must return a fresh, empty store for each
// subtest; the suite closes every store it gets (a driver's cleanup must
// tolerate that, for example by ignoring store.ErrClosed).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	open := func(t *testing.T) store.Store {
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	t.Run("Buckets", func(t *testing.T) { testBuckets(t, open) })
	t.Run("TakeAllOrNothing", func(t *testing.T) { testAllOrNothing(t, open) })
	t.Run("Tokens", func(t *testing.T) { testTokens(t, open) })
	t.Run("Quota", func(t *testing.T) { testQuota(t, open) })
	t.Run("Leases", func(t *testing.T) { testLeases(t, open) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("Admit", func(t *testing.T) { testAdmit(t, open) })
	t.Run("AdmitConcurrent", func(t *testing.T) { testAdmitConcurrent(t, open) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, open) })
}

var ctx = context.Background()

func at(d time.Duration) time.Time { return T0.Add(d) }

func testBuckets(t *testing.T, open func(*testing.T) store.Store) {
	type take struct {
		d     time.Duration
		ok    bool
		retry time.Duration
	}
	tests := []struct {
		name  string
		b     store.Bucket
		takes []take
	}{
		{"new bucket is full: burst at once then refused", store.Bucket{Key: "b", Rate: 1, Burst: 3}, []take{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, false, time.Second},
		}},
		{"steady rate 10/s", store.Bucket{Key: "b", Rate: 10, Burst: 1}, []take{
			{0, true, 0}, {40 * time.Millisecond, false, 60 * time.Millisecond},
			{100 * time.Millisecond, true, 0}, {200 * time.Millisecond, true, 0}, {250 * time.Millisecond, false, 50 * time.Millisecond},
		}},
		{"fractional rate 0.25/s", store.Bucket{Key: "b", Rate: 0.25, Burst: 1}, []take{
			{0, true, 0}, {time.Second, false, 3 * time.Second}, {4 * time.Second, true, 0},
		}},
		{"zero burst admits nothing", store.Bucket{Key: "b", Rate: 100, Burst: 0}, []take{
			{0, false, throttle.Never},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			for i, tk := range tt.takes {
				r, err := s.Take(ctx, at(tk.d), 1, []store.Bucket{tt.b})
				if err != nil {
					t.Fatalf("take %d: %v", i, err)
				}
				if r.OK != tk.ok || r.RetryAfter != tk.retry {
					t.Fatalf("take %d at T0+%v: got %+v, want ok=%v retry=%v", i, tk.d, r, tk.ok, tk.retry)
				}
				if want := -1; r.OK && r.Denied != want || !r.OK && r.Denied != 0 {
					t.Fatalf("take %d: Denied = %d", i, r.Denied)
				}
			}
		})
	}
	t.Run("take n", func(t *testing.T) {
		s := open(t)
		b := []store.Bucket{{Key: "n", Rate: 1, Burst: 5}}
		if r, _ := s.Take(ctx, T0, 4, b); !r.OK {
			t.Fatal("take 4 of 5 refused")
		}
		if r, _ := s.Take(ctx, T0, 2, b); r.OK || r.RetryAfter != time.Second {
			t.Fatalf("take 2 of 1 left = %+v, want refused with 1s", r)
		}
		if r, _ := s.Take(ctx, T0, 1, b); !r.OK {
			t.Fatal("the refused take consumed tokens")
		}
	})
	t.Run("keys are independent", func(t *testing.T) {
		s := open(t)
		a := []store.Bucket{{Key: "a", Rate: 1, Burst: 1}}
		if r, _ := s.Take(ctx, T0, 1, a); !r.OK {
			t.Fatal("a refused")
		}
		if r, _ := s.Take(ctx, T0, 1, []store.Bucket{{Key: "b", Rate: 1, Burst: 1}}); !r.OK {
			t.Fatal("b refused after a was emptied")
		}
	})
	t.Run("limit changes between calls (config reload)", func(t *testing.T) {
		s := open(t)
		if r, _ := s.Take(ctx, T0, 1, []store.Bucket{{Key: "r", Rate: 1, Burst: 100}}); !r.OK {
			t.Fatal("refused")
		}
		lower := []store.Bucket{{Key: "r", Rate: 1, Burst: 2}}
		for i := 0; i < 2; i++ {
			if r, _ := s.Take(ctx, T0, 1, lower); !r.OK {
				t.Fatalf("take %d under lowered burst refused", i)
			}
		}
		if r, _ := s.Take(ctx, T0, 1, lower); r.OK {
			t.Fatal("lowered burst not enforced")
		}
	})
}

func testAllOrNothing(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	stage := store.Bucket{Key: "stage", Rate: 100, Burst: 10}
	route := store.Bucket{Key: "route", Rate: 1, Burst: 1}
	key := store.Bucket{Key: "key", Rate: 0.5, Burst: 1}
	bs := []store.Bucket{stage, route, key}
	if r, err := s.Take(ctx, T0, 1, bs); err != nil || !r.OK || r.Denied != -1 || r.RetryAfter != 0 {
		t.Fatalf("first take = %+v, %v; want OK", r, err)
	}
	// route needs 1s, key needs 2s: key is the most restrictive.
	r, err := s.Take(ctx, T0, 1, bs)
	if err != nil || r.OK || r.Denied != 2 || r.RetryAfter != 2*time.Second {
		t.Fatalf("second take = %+v, %v; want refused by index 2 after 2s", r, err)
	}
	for _, b := range []store.Bucket{stage} {
		if got, _ := s.Tokens(ctx, T0, b); got != 9 {
			t.Fatalf("refused take consumed from %s: %v tokens, want 9", b.Key, got)
		}
	}
	// Per-key aggregation: the key bucket shared by two routes.
	other := []store.Bucket{stage, {Key: "route2", Rate: 1, Burst: 1}, key}
	if r, _ := s.Take(ctx, at(time.Second), 1, other); r.OK || r.Denied != 2 {
		t.Fatalf("other route with the same key = %+v; want refused by the shared key bucket", r)
	}
	if r, _ := s.Take(ctx, at(2*time.Second), 1, other); !r.OK {
		t.Fatalf("other route after key refill = %+v; want OK", r)
	}
	if r, _ := s.Take(ctx, at(2*time.Second), 1, bs); r.OK || r.Denied != 2 {
		t.Fatalf("first route right after = %+v; want refused by the key bucket", r)
	}
	if r, _ := s.Take(ctx, T0, 1, nil); !r.OK {
		t.Fatalf("empty bucket list = %+v; want OK", r)
	}
}

func testTokens(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	b := store.Bucket{Key: "t", Rate: 2, Burst: 4}
	if got, err := s.Tokens(ctx, T0, b); err != nil || got != 4 {
		t.Fatalf("unknown bucket Tokens = %v, %v; want 4 (full)", got, err)
	}
	if got, _ := s.Tokens(ctx, T0, b); got != 4 {
		t.Fatalf("Tokens consumed: %v", got)
	}
	s.Take(ctx, T0, 4, []store.Bucket{b})
	for _, c := range []struct {
		d    time.Duration
		want float64
	}{{0, 0}, {500 * time.Millisecond, 1}, {time.Second, 2}, {time.Hour, 4}} {
		if got, _ := s.Tokens(ctx, at(c.d), b); got != c.want {
			t.Errorf("Tokens(T0+%v) = %v, want %v", c.d, got, c.want)
		}
	}
}

func testQuota(t *testing.T, open func(*testing.T) store.Store) {
	day1 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 1)
	t.Run("limit, refusal not counted, Usage reads without counting", func(t *testing.T) {
		s := open(t)
		q := store.Quota{Period: day1, Limit: 3}
		for i := int64(1); i <= 3; i++ {
			if r, err := s.Count(ctx, "k", q); err != nil || !r.OK || r.Used != i || r.Limit != 3 {
				t.Fatalf("count %d = %+v, %v", i, r, err)
			}
		}
		for i := 0; i < 2; i++ {
			if r, _ := s.Count(ctx, "k", q); r.OK || r.Used != 3 {
				t.Fatalf("count over limit = %+v; want refused at 3", r)
			}
		}
		for i := 0; i < 2; i++ {
			if u, err := s.Usage(ctx, "k", q); err != nil || u.Used != 3 || u.OK || u.Remaining() != 0 {
				t.Fatalf("Usage = %+v, %v; want used 3, none remaining", u, err)
			}
		}
		if u, _ := s.Usage(ctx, "other", q); u.Used != 0 || u.Limit != 3 || !u.OK {
			t.Fatalf("Usage of unknown key = %+v", u)
		}
	})
	t.Run("period change resets; stepping back does not", func(t *testing.T) {
		s := open(t)
		q1 := store.Quota{Period: day1, Limit: 2}
		q2 := store.Quota{Period: day2, Limit: 2}
		s.Count(ctx, "k", q1)
		s.Count(ctx, "k", q1)
		if u, _ := s.Usage(ctx, "k", q2); u.Used != 0 || !u.OK {
			t.Fatalf("Usage in next period = %+v; want 0 used", u)
		}
		if r, _ := s.Count(ctx, "k", q2); !r.OK || r.Used != 1 {
			t.Fatalf("first count in next period = %+v", r)
		}
		if r, _ := s.Count(ctx, "k", q1); !r.OK || r.Used != 2 {
			t.Fatalf("count with the old period after a clock step back = %+v; want counted in the current period (2)", r)
		}
		if r, _ := s.Count(ctx, "k", q1); r.OK {
			t.Fatalf("clock step back granted a fresh quota: %+v", r)
		}
	})
	t.Run("offset subtracted in the first period only", func(t *testing.T) {
		s := open(t)
		q1 := store.Quota{Period: day1, Limit: 5, Offset: 3}
		if u, _ := s.Usage(ctx, "k", q1); u.Limit != 2 {
			t.Fatalf("Usage before first count: limit %d, want 2", u.Limit)
		}
		for i := 0; i < 2; i++ {
			if r, _ := s.Count(ctx, "k", q1); !r.OK {
				t.Fatalf("count %d in first period refused", i)
			}
		}
		if r, _ := s.Count(ctx, "k", q1); r.OK || r.Limit != 2 {
			t.Fatalf("third count in first period = %+v; want refused, limit 2", r)
		}
		q2 := store.Quota{Period: day2, Limit: 5, Offset: 3}
		for i := 0; i < 5; i++ {
			if r, _ := s.Count(ctx, "k", q2); !r.OK || r.Limit != 5 {
				t.Fatalf("count %d in second period = %+v; want OK under 5", i, r)
			}
		}
		if r, _ := s.Count(ctx, "k", q2); r.OK {
			t.Fatal("sixth count in second period accepted")
		}
		// A key first seen in the second period has that as its first.
		if r, _ := s.Count(ctx, "late", q2); r.Limit != 2 {
			t.Fatalf("late key's first period limit = %d, want 2", r.Limit)
		}
	})
	t.Run("zero limit", func(t *testing.T) {
		s := open(t)
		if r, _ := s.Count(ctx, "k", store.Quota{Period: day1}); r.OK || r.Used != 0 {
			t.Fatalf("zero limit = %+v", r)
		}
	})
}

func testLeases(t *testing.T, open func(*testing.T) store.Store) {
	t.Run("cap, release, release twice", func(t *testing.T) {
		s := open(t)
		var held []store.Lease
		for i := 0; i < 2; i++ {
			l, ok, err := s.Acquire(ctx, "c", 2, 0, T0)
			if err != nil || !ok || l.ID == 0 {
				t.Fatalf("acquire %d = %+v, %v, %v", i, l, ok, err)
			}
			held = append(held, l)
		}
		if held[0] == held[1] {
			t.Fatal("two leases are equal")
		}
		if _, ok, _ := s.Acquire(ctx, "c", 2, 0, T0); ok {
			t.Fatal("third acquire under max 2 succeeded")
		}
		if n, _ := s.InUse(ctx, "c", T0); n != 2 {
			t.Fatalf("InUse = %d, want 2", n)
		}
		if err := s.Release(ctx, held[0]); err != nil {
			t.Fatal(err)
		}
		l3, ok, _ := s.Acquire(ctx, "c", 2, 0, T0)
		if !ok {
			t.Fatal("acquire after release refused")
		}
		// Releasing held[0] again must not free l3's or held[1]'s slot.
		if err := s.Release(ctx, held[0]); err != nil {
			t.Fatalf("second release: %v", err)
		}
		if _, ok, _ := s.Acquire(ctx, "c", 2, 0, T0); ok {
			t.Fatal("double release freed a slot that is still held")
		}
		if err := s.Release(ctx, store.Lease{}); err != nil {
			t.Fatalf("zero lease release: %v", err)
		}
		s.Release(ctx, held[1])
		s.Release(ctx, l3)
		if n, _ := s.InUse(ctx, "c", T0); n != 0 {
			t.Fatalf("InUse after releasing all = %d", n)
		}
	})
	t.Run("keys are independent; max 0 admits nothing", func(t *testing.T) {
		s := open(t)
		if _, ok, _ := s.Acquire(ctx, "a", 1, 0, T0); !ok {
			t.Fatal("a refused")
		}
		if _, ok, _ := s.Acquire(ctx, "b", 1, 0, T0); !ok {
			t.Fatal("b refused while a is held")
		}
		if _, ok, _ := s.Acquire(ctx, "z", 0, 0, T0); ok {
			t.Fatal("max 0 admitted")
		}
	})
	t.Run("ttl expiry reclaims a leaked lease", func(t *testing.T) {
		s := open(t)
		leaked, ok, _ := s.Acquire(ctx, "c", 1, 10*time.Second, T0)
		if !ok {
			t.Fatal("refused")
		}
		if _, ok, _ := s.Acquire(ctx, "c", 1, 10*time.Second, at(9*time.Second)); ok {
			t.Fatal("acquired before the lease expired")
		}
		if n, _ := s.InUse(ctx, "c", at(10*time.Second)); n != 0 {
			t.Fatalf("InUse after expiry = %d", n)
		}
		fresh, ok, _ := s.Acquire(ctx, "c", 1, 10*time.Second, at(10*time.Second))
		if !ok {
			t.Fatal("expired lease still holds the slot")
		}
		s.Release(ctx, leaked) // late release of the expired lease
		if n, _ := s.InUse(ctx, "c", at(11*time.Second)); n != 1 {
			t.Fatalf("late release of an expired lease freed the new one: InUse = %d", n)
		}
		s.Release(ctx, fresh)
	})
}

func testConcurrent(t *testing.T, open func(*testing.T) store.Store) {
	const workers, each = 8, 200
	run := func(f func()) {
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					f()
				}
			}()
		}
		wg.Wait()
	}
	t.Run("takers never exceed burst", func(t *testing.T) {
		s := open(t)
		bs := []store.Bucket{{Key: "stage", Rate: 0, Burst: 500}, {Key: "route", Rate: 0, Burst: 1000}}
		var got atomic.Int64
		run(func() {
			if r, err := s.Take(ctx, T0, 1, bs); err != nil {
				t.Error(err)
			} else if r.OK {
				got.Add(1)
			}
		})
		if got.Load() != 500 {
			t.Fatalf("admitted %d, want exactly 500", got.Load())
		}
		if tok, _ := s.Tokens(ctx, T0, bs[1]); tok != 500 {
			t.Fatalf("route bucket has %v tokens, want 500 (refused takes must not consume)", tok)
		}
	})
	t.Run("quota admits exactly its limit", func(t *testing.T) {
		s := open(t)
		q := store.Quota{Period: T0.Truncate(24 * time.Hour), Limit: 777}
		var got atomic.Int64
		run(func() {
			if r, err := s.Count(ctx, "k", q); err != nil {
				t.Error(err)
			} else if r.OK {
				got.Add(1)
			}
		})
		if u, _ := s.Usage(ctx, "k", q); got.Load() != 777 || u.Used != 777 {
			t.Fatalf("admitted %d, used %d; want 777", got.Load(), u.Used)
		}
	})
	t.Run("leases never exceed max", func(t *testing.T) {
		s := open(t)
		var inside, peak atomic.Int64
		run(func() {
			l, ok, err := s.Acquire(ctx, "c", 3, time.Minute, T0)
			if err != nil {
				t.Error(err)
				return
			}
			if !ok {
				return
			}
			n := inside.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			inside.Add(-1)
			s.Release(ctx, l)
			s.Release(ctx, l)
		})
		if peak.Load() > 3 || peak.Load() < 1 {
			t.Fatalf("peak concurrent leases %d, want 1..3", peak.Load())
		}
		if n, _ := s.InUse(ctx, "c", T0); n != 0 {
			t.Fatalf("InUse at the end = %d", n)
		}
	})
}

func testClosed(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	l, _, _ := s.Acquire(ctx, "c", 1, 0, T0)
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready before Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ready(ctx); err == nil {
		t.Fatal("Ready after Close = nil")
	}
	if _, err := s.Take(ctx, T0, 1, []store.Bucket{{Key: "b", Rate: 1, Burst: 1}}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Take after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Count(ctx, "k", store.Quota{Period: T0, Limit: 1}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Count after Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.Acquire(ctx, "c", 1, 0, T0); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Acquire after Close: %v, want ErrClosed", err)
	}
	if err := s.Release(ctx, l); err != nil {
		t.Fatalf("Release after Close: %v, want nil", err)
	}
}
