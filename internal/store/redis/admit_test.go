package redis_test

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// TestAdmitErrors: a closed store and too many caps are errors, never a
// decision.
func TestAdmitErrors(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := newStore(t, srv, redis.Options{})
	caps := make([]store.Cap, store.MaxCaps+1)
	if _, err := s.Admit(ctx, time.Now(), store.AdmitRequest{N: 1, Caps: caps}); err == nil {
		t.Error("Admit with 3 caps: no error")
	}
	s.Close()
	if _, err := s.Admit(ctx, time.Now(), store.AdmitRequest{N: 1}); err == nil {
		t.Error("Admit after Close: no error")
	}
}

// TestAdmitFollowsRedisClock: Admit reads the Redis clock once and uses it
// for the buckets, the leases, the quota period and the key expiries, as
// the single calls do: a replica an hour ahead cannot start the next
// quota period before Redis midnight.
func TestAdmitFollowsRedisClock(t *testing.T) {
	day := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	redisNow := day.Add(24*time.Hour - 10*time.Second) // 23:59:50
	srv := redistest.Start(t, redistest.Options{Frozen: redisNow})
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer raw.Close()
	o := redis.Options{Prefix: "aclock:"}
	onTime, ahead := newStore(t, srv, o), newStore(t, srv, o)
	req := func(skew time.Duration) store.AdmitRequest {
		return store.AdmitRequest{N: 1, Buckets: []store.Bucket{{Key: "b", Rate: 2, Burst: 10}},
			QuotaKey: "q", Quota: store.Quota{Period: redisNow.Add(skew).Truncate(24 * time.Hour), Limit: 3},
			Caps: []store.Cap{{Key: "c", Max: 5}}, LeaseTTL: 10 * time.Second}
	}
	for i := range 3 {
		if r, err := onTime.Admit(ctx, redisNow, req(0)); err != nil || r.Refused != store.Admitted || r.Quota.Used != int64(i+1) {
			t.Fatalf("admit %d = %+v, %v", i, r, err)
		}
	}
	if d := raw.PTTL(ctx, "aclock:{g}:b:b").Val(); d != 1500*time.Millisecond {
		t.Errorf("bucket 3 tokens short at 2/s expires in %v, want 1.5s", d)
	}
	if d := raw.PTTL(ctx, "aclock:{g}:l:c").Val(); d != 10*time.Second {
		t.Errorf("lease set expires in %v, want 10s", d)
	}
	if d := raw.PTTL(ctx, "aclock:{g}:q:q").Val(); d != -1 {
		t.Errorf("quota counter PTTL %v, want none", d)
	}
	if r, err := ahead.Admit(ctx, redisNow.Add(time.Hour), req(time.Hour)); err != nil || r.Refused != store.OverQuota || r.Quota.Used != 3 {
		t.Errorf("ahead before Redis midnight = %+v, %v; want over quota, 3 used", r, err)
	}
	srv.SetTime(day.Add(24 * time.Hour))
	r, err := ahead.Admit(ctx, redisNow.Add(time.Hour), req(time.Hour))
	if err != nil || r.Refused != store.Admitted || r.Quota.Used != 1 {
		t.Errorf("ahead after Redis midnight = %+v, %v; want admitted, the new period's first", r, err)
	}
	// The three leases of the first requests (never released) expired on
	// the Redis clock 10 s after 23:59:50; this one is the only holder.
	if n, err := onTime.InUse(ctx, "c", redisNow); err != nil || n != 1 {
		t.Errorf("InUse = %d, %v; want 1", n, err)
	}
}
