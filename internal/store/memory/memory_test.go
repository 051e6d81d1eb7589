package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return New() })
}

func TestSweepDropsOnlyFullBuckets(t *testing.T) {
	s := New()
	ctx := context.Background()
	t0 := storetest.T0
	busy := []store.Bucket{{Key: "busy", Rate: 1, Burst: 2}}
	s.Take(ctx, t0, 2, busy)          // empty, refills in 2s
	for i := 0; i < minSweep-2; i++ { // with busy: one short of a sweep
		s.Take(ctx, t0, 1, []store.Bucket{{Key: fmt.Sprint("k", i), Rate: 1000, Burst: 1}})
	}
	// One more take 1s later triggers the sweep: the 1000/s buckets are
	// full again, "busy" holds 1 token of 2.
	s.Take(ctx, t0.Add(time.Second), 1, []store.Bucket{{Key: "trigger", Rate: 1, Burst: 10}})
	if n := s.Buckets(); n != 2 {
		t.Fatalf("after sweep %d buckets remain, want 2 (busy, trigger)", n)
	}
	if tok, _ := s.Tokens(ctx, t0.Add(time.Second), busy[0]); tok != 1 {
		t.Fatalf("busy bucket has %v tokens after sweep, want 1 (it must not be forgotten)", tok)
	}
}

func BenchmarkTake(b *testing.B) {
	s := New()
	ctx := context.Background()
	bs := []store.Bucket{{Key: "route:/forward", Rate: 1e9, Burst: 1 << 40}}
	now := storetest.T0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if r, _ := s.Take(ctx, now.Add(time.Duration(i)), 1, bs); !r.OK {
			b.Fatal("refused")
		}
	}
}

func BenchmarkTakeFourLevels(b *testing.B) {
	s := New()
	ctx := context.Background()
	bs := []store.Bucket{
		{Key: "account", Rate: 1e9, Burst: 1 << 40},
		{Key: "stage:prod", Rate: 1e9, Burst: 1 << 40},
		{Key: "route:/forward", Rate: 1e9, Burst: 1 << 40},
		{Key: "key:secret:plan:global", Rate: 1e9, Burst: 1 << 40},
	}
	now := storetest.T0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Take(ctx, now.Add(time.Duration(i)), 1, bs)
	}
}

func BenchmarkTakeParallel(b *testing.B) {
	s := New()
	ctx := context.Background()
	bs := []store.Bucket{{Key: "route:/forward", Rate: 1e9, Burst: 1 << 40}}
	now := storetest.T0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Take(ctx, now, 1, bs)
		}
	})
}

func BenchmarkCount(b *testing.B) {
	s := New()
	ctx := context.Background()
	q := store.Quota{Period: storetest.T0, Limit: 1 << 62}
	b.ReportAllocs()
	for b.Loop() {
		s.Count(ctx, "key:secret:plan:global", q)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	s := New()
	ctx := context.Background()
	now := storetest.T0
	b.ReportAllocs()
	for b.Loop() {
		l, _, _ := s.Acquire(ctx, "route:/forward", 50, 30*time.Second, now)
		s.Release(ctx, l)
	}
}
