package redis_test

import (
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// TestLimitsFollowRedisClock: three replicas whose clocks disagree by an
// hour either way share one Redis whose clock the test sets. Buckets,
// leases and quota periods follow the Redis clock; what each replica passes
// as `now` (or computes as its quota period) changes nothing it should not.
func TestLimitsFollowRedisClock(t *testing.T) {
	day := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	redisNow := day.Add(24*time.Hour - 10*time.Second) // 23:59:50 on the Redis clock
	srv := redistest.Start(t, redistest.Options{Frozen: redisNow})
	o := redis.Options{Prefix: "clock:"}
	onTime, ahead, behind := newStore(t, srv, o), newStore(t, srv, o), newStore(t, srv, o)
	clocks := []struct {
		name string
		s    *redis.Store
		skew time.Duration
	}{{"on time", onTime, 0}, {"ahead", ahead, time.Hour}, {"behind", behind, -time.Hour}}

	t.Run("bucket", func(t *testing.T) {
		bs := []store.Bucket{{Key: "stage", Rate: 1, Burst: 2}}
		for i := 0; i < 2; i++ {
			if r, err := onTime.Take(ctx, redisNow, 1, bs); err != nil || !r.OK {
				t.Fatalf("take %d = %+v, %v", i, r, err)
			}
		}
		// An hour ahead would see a full bucket, an hour behind a wait of an
		// hour and a second, if their clocks counted.
		for _, c := range clocks {
			r, err := c.s.Take(ctx, redisNow.Add(c.skew), 1, bs)
			if err != nil || r.OK || r.RetryAfter != time.Second {
				t.Errorf("%s: %+v, %v; want refused, retry 1s", c.name, r, err)
			}
		}
		srv.SetTime(redisNow.Add(time.Second))
		if r, _ := behind.Take(ctx, redisNow.Add(-time.Hour), 1, bs); !r.OK {
			t.Errorf("behind, one Redis second later: %+v; want one token", r)
		}
		if r, _ := ahead.Take(ctx, redisNow.Add(time.Hour), 1, bs); r.OK {
			t.Errorf("ahead took a second token the Redis clock has not refilled: %+v", r)
		}
	})

	t.Run("lease", func(t *testing.T) {
		srv.SetTime(redisNow)
		l, ok, err := onTime.Acquire(ctx, "conc", 1, 10*time.Second, redisNow)
		if err != nil || !ok {
			t.Fatalf("acquire = %v, %v", ok, err)
		}
		if _, ok, _ := ahead.Acquire(ctx, "conc", 1, 10*time.Second, redisNow.Add(time.Hour)); ok {
			t.Error("a replica an hour ahead saw the lease as expired")
		}
		if n, _ := ahead.InUse(ctx, "conc", redisNow.Add(time.Hour)); n != 1 {
			t.Errorf("InUse from ahead = %d, want 1", n)
		}
		srv.SetTime(redisNow.Add(10 * time.Second))
		if n, _ := behind.InUse(ctx, "conc", redisNow.Add(-time.Hour)); n != 0 {
			t.Errorf("InUse from behind after the Redis ttl = %d, want 0 (expired)", n)
		}
		onTime.Release(ctx, l)
	})

	t.Run("quota period", func(t *testing.T) {
		srv.SetTime(redisNow) // 23:59:50 of day
		q := func(skew time.Duration) store.Quota {
			// Each replica computes the period from its own clock.
			return store.Quota{Period: redisNow.Add(skew).Truncate(24 * time.Hour), Limit: 3}
		}
		for i := 0; i < 3; i++ {
			if r, _ := onTime.Count(ctx, "key", q(0)); !r.OK {
				t.Fatalf("count %d refused", i)
			}
		}
		// The replica an hour ahead is already in the next day: its period
		// must not start before the Redis clock reaches it.
		if r, _ := ahead.Count(ctx, "key", q(time.Hour)); r.OK || r.Used != 3 {
			t.Errorf("ahead before Redis midnight = %+v; want refused, 3 used", r)
		}
		if u, _ := ahead.Usage(ctx, "key", q(time.Hour)); u.OK || u.Used != 3 {
			t.Errorf("Usage from ahead before Redis midnight = %+v; want 3 used", u)
		}
		srv.SetTime(day.Add(24 * time.Hour)) // Redis midnight
		if r, _ := ahead.Count(ctx, "key", q(time.Hour)); !r.OK || r.Used != 1 {
			t.Errorf("ahead after Redis midnight = %+v; want the new period's first", r)
		}
		// The replica behind still computes yesterday: counted in the new
		// period, never granted the old one again.
		if r, _ := behind.Count(ctx, "key", q(-time.Hour)); !r.OK || r.Used != 2 {
			t.Errorf("behind after Redis midnight = %+v; want counted as the new period's second", r)
		}
	})
}

// TestShiftedRedisClock: a redis-server whose clock runs two days ahead of
// this process's. The state written by a Take carries the Redis time.
func TestShiftedRedisClock(t *testing.T) {
	const shift = 48 * time.Hour
	srv := redistest.Start(t, redistest.Options{Shift: shift})
	s := newStore(t, srv, redis.Options{Prefix: "shift:"})
	if r, err := s.Take(ctx, time.Now(), 1, []store.Bucket{{Key: "b", Rate: 1, Burst: 5}}); err != nil || !r.OK {
		t.Fatalf("take = %+v, %v", r, err)
	}
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer raw.Close()
	v, err := raw.HGet(ctx, "shift:{g}:b:b", "last").Result()
	if err != nil {
		t.Fatal(err)
	}
	last, _ := strconv.ParseFloat(v, 64)
	got := time.UnixMicro(int64(last))
	if want := time.Now().Add(shift); got.Before(want.Add(-time.Minute)) || got.After(want.Add(time.Minute)) {
		t.Fatalf("bucket stamped %v, want about %v (the Redis clock)", got, want)
	}
	ts, _ := raw.Time(ctx).Result()
	t.Logf("process clock %v, Redis clock %v", time.Now().UTC(), ts.UTC())
}

// TestKeysExpire: with the Redis clock, a bucket expires when it would be
// full again (never when it never refills) and a lease set with its
// longest-lived lease, so keys of retired config and crashed replicas go
// away by themselves. Quota counters never expire (they remember the first
// period, where the offset applies).
func TestKeysExpire(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv := redistest.Start(t, redistest.Options{Frozen: t0})
	s := newStore(t, srv, redis.Options{Prefix: "exp:"})
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer raw.Close()
	pttl := func(key string) time.Duration { return raw.PTTL(ctx, key).Val() }

	s.Take(ctx, t0, 3, []store.Bucket{{Key: "r", Rate: 2, Burst: 4}, {Key: "never", Rate: 0, Burst: 4}})
	if d := pttl("exp:{g}:b:r"); d != 1500*time.Millisecond {
		t.Errorf("bucket 3 tokens short at 2/s expires in %v, want 1.5s", d)
	}
	if d := pttl("exp:{g}:b:never"); d != -1 {
		t.Errorf("bucket that never refills has PTTL %v, want none (-1)", d)
	}
	s.Acquire(ctx, "c", 5, 10*time.Second, t0)
	s.Acquire(ctx, "c", 5, 3*time.Second, t0)
	if d := pttl("exp:{g}:l:c"); d != 10*time.Second {
		t.Errorf("lease set expires in %v, want 10s (its longest lease)", d)
	}
	s.Count(ctx, "k", store.Quota{Period: t0.Truncate(24 * time.Hour), Limit: 5})
	if d := pttl("exp:{g}:q:k"); d != -1 {
		t.Errorf("quota counter has PTTL %v, want none", d)
	}
	srv.SetTime(t0.Add(10*time.Second + time.Millisecond)) // Redis expires a key once past its time
	for _, k := range []string{"exp:{g}:b:r", "exp:{g}:l:c"} {
		if n := raw.Exists(ctx, k).Val(); n != 0 {
			t.Errorf("%s still exists after its expiry", k)
		}
	}
	if tok, _ := s.Tokens(ctx, t0, store.Bucket{Key: "r", Rate: 2, Burst: 4}); tok != 4 {
		t.Errorf("expired bucket reads %v tokens, want 4 (full)", tok)
	}
}
