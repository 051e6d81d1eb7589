package redis_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// The benchmarks run each call against a local redis-server and report
// round trips per call (rt/op): one is the target, steady state, since
// EVALSHA finds the script cached after the first call.

func bench(b *testing.B, f func(s *redis.Store, i int) error) {
	srv := redistest.Start(b, redistest.Options{})
	s := newStore(b, srv, redis.Options{})
	if err := f(s, -1); err != nil { // load the script, dial
		b.Fatal(err)
	}
	var rt atomic.Int64
	s.CountRoundTrips(&rt)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := f(s, i); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rt.Load())/float64(b.N), "rt/op")
}

// BenchmarkTake: the blog's three levels (account, stage, key) in one call.
func BenchmarkTake(b *testing.B) {
	bs := []store.Bucket{
		{Key: "account", Rate: 1e9, Burst: 1e9},
		{Key: "stage:/forward", Rate: 1e9, Burst: 1e9},
		{Key: "key:secret", Rate: 1e9, Burst: 1e9},
	}
	bench(b, func(s *redis.Store, _ int) error {
		_, err := s.Take(ctx, time.Time{}, 1, bs)
		return err
	})
}

func BenchmarkCount(b *testing.B) {
	q := store.Quota{Period: time.Now().UTC().Truncate(24 * time.Hour), Limit: 1 << 50}
	bench(b, func(s *redis.Store, _ int) error {
		_, err := s.Count(ctx, "key:secret", q)
		return err
	})
}

// BenchmarkAcquireRelease: two round trips, one per call.
func BenchmarkAcquireRelease(b *testing.B) {
	bench(b, func(s *redis.Store, _ int) error {
		l, _, err := s.Acquire(ctx, "route:/forward", 50, 30*time.Second, time.Time{})
		if err == nil {
			err = s.Release(ctx, l)
		}
		return err
	})
}

// BenchmarkTakeParallel: many goroutines on one Store, as a gateway under
// load; the pool keeps one connection per concurrent call.
func BenchmarkTakeParallel(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	s := newStore(b, srv, redis.Options{})
	bs := []store.Bucket{{Key: "account", Rate: 1e9, Burst: 1e9}, {Key: "stage", Rate: 1e9, Burst: 1e9}}
	s.Take(ctx, time.Time{}, 1, bs)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Take(ctx, time.Time{}, 1, bs); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBlogChain: the store calls of one request through the blog's
// guard chain (account+stage+key buckets, the key's 1000/DAY-style quota,
// the stage's max_concurrent lease and its release), on this driver and,
// for scale, on the memory driver.
func BenchmarkBlogChain(b *testing.B) {
	bs := []store.Bucket{
		{Key: "account", Rate: 1e9, Burst: 1e9},
		{Key: "stage:/forward", Rate: 1e9, Burst: 1e9},
		{Key: "key:secret", Rate: 1e9, Burst: 1e9},
	}
	q := store.Quota{Period: time.Now().UTC().Truncate(24 * time.Hour), Limit: 1 << 50}
	chain := func(s store.Store) error {
		now := time.Now()
		if _, err := s.Take(ctx, now, 1, bs); err != nil {
			return err
		}
		if _, err := s.Count(ctx, "key:secret:plan:global", q); err != nil {
			return err
		}
		l, _, err := s.Acquire(ctx, "stage", 50, 30*time.Second, now)
		if err != nil {
			return err
		}
		return s.Release(ctx, l)
	}
	b.Run("redis", func(b *testing.B) {
		bench(b, func(s *redis.Store, _ int) error { return chain(s) })
	})
	// The same request as one Admit (the gateway's path on this driver),
	// and its Release: 2 round trips.
	admit := store.AdmitRequest{N: 1, Buckets: bs, QuotaKey: "key:secret:plan:global", Quota: q,
		Caps: []store.Cap{{Key: "stage", Max: 50}}, LeaseTTL: 30 * time.Second}
	b.Run("redis_admit", func(b *testing.B) {
		bench(b, func(s *redis.Store, _ int) error {
			r, err := s.Admit(ctx, time.Now(), admit)
			if err != nil {
				return err
			}
			return s.Release(ctx, r.Leases[0])
		})
	})
	b.Run("memory", func(b *testing.B) {
		s := memory.New()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := chain(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
