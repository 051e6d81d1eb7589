package redis_test

import (
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

// separately is what Admit must equal: Take, then Count, then Acquire of
// every cap, stopping at the first refusal (the gateway's steps on a
// driver without Admit), except that a refused cap gives back the leases
// of the caps before it (Admit takes all or none).
func separately(t *testing.T, s store.Store, now time.Time, r store.AdmitRequest) store.AdmitResult {
	t.Helper()
	res := store.AdmitResult{Denied: -1}
	var err error
	if res.Take, err = s.Take(ctx, now, r.N, r.Buckets); err != nil {
		t.Fatal(err)
	}
	if !res.Take.OK {
		res.Refused = store.Throttled
		return res
	}
	if r.QuotaKey != "" {
		if res.Quota, err = s.Count(ctx, r.QuotaKey, r.Quota); err != nil {
			t.Fatal(err)
		}
		if !res.Quota.OK {
			res.Refused = store.OverQuota
			return res
		}
	}
	for i, c := range r.Caps {
		l, ok, err := s.Acquire(ctx, c.Key, c.Max, r.LeaseTTL, now)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			for _, l := range res.Leases[:i] {
				s.Release(ctx, l)
			}
			res.Leases = [store.MaxCaps]store.Lease{}
			res.Refused, res.Denied = store.OverConcurrency, i
			return res
		}
		res.Leases[i] = l
	}
	return res
}

// TestAdmitEqualsSeparateCalls: for every refusal order, one Admit gives
// the decision the separate calls give and leaves the same state behind,
// as the read-only calls (explain, keys usage) see it.
func TestAdmitEqualsSeparateCalls(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	t0 := storetest.T0
	b1 := store.Bucket{Key: "stage", Rate: 1, Burst: 2}
	b2 := store.Bucket{Key: "key", Rate: 0.5, Burst: 1}
	day := store.Quota{Period: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Limit: 2}
	c1, c2 := store.Cap{Key: "conc:stage", Max: 1}, store.Cap{Key: "conc:route", Max: 2}
	full := store.AdmitRequest{N: 1, Buckets: []store.Bucket{b1, b2}, QuotaKey: "q", Quota: day, Caps: []store.Cap{c1, c2}, LeaseTTL: time.Minute}
	with := func(f func(*store.AdmitRequest)) store.AdmitRequest {
		r := full
		f(&r)
		return r
	}
	drain := func(b store.Bucket) func(store.Store) {
		return func(s store.Store) { s.Take(ctx, t0, b.Burst, []store.Bucket{b}) }
	}
	useQuota := func(n int) func(store.Store) {
		return func(s store.Store) {
			for range n {
				s.Count(ctx, "q", day)
			}
		}
	}
	hold := func(c store.Cap, n int) func(store.Store) {
		return func(s store.Store) {
			for range n {
				s.Acquire(ctx, c.Key, 10, time.Minute, t0)
			}
		}
	}
	cases := []struct {
		name string
		pre  []func(store.Store)
		req  store.AdmitRequest
		want store.Stage
	}{
		{"fresh: admitted", nil, full, store.Admitted},
		{"second bucket empty: throttled, nothing counted", []func(store.Store){drain(b2)}, full, store.Throttled},
		{"both buckets empty: the longest wait decides", []func(store.Store){drain(b1), drain(b2)}, full, store.Throttled},
		{"throttled and over quota: throttled, quota untouched", []func(store.Store){drain(b1), useQuota(2)}, full, store.Throttled},
		{"quota used up: over quota, tokens taken", []func(store.Store){useQuota(2)}, full, store.OverQuota},
		{"stage cap full: over concurrency, counted", []func(store.Store){hold(c1, 1)}, full, store.OverConcurrency},
		{"route cap full: no stage lease held", []func(store.Store){hold(c2, 2)}, full, store.OverConcurrency},
		{"cap max 0 admits nothing", nil, with(func(r *store.AdmitRequest) { r.Caps = []store.Cap{{Key: "zero", Max: 0}} }), store.OverConcurrency},
		{"quota only", nil, with(func(r *store.AdmitRequest) { r.Buckets, r.Caps = nil, nil }), store.Admitted},
		{"quota only, used up", []func(store.Store){useQuota(2)}, with(func(r *store.AdmitRequest) { r.Buckets, r.Caps = nil, nil }), store.OverQuota},
		{"offset in the first period", []func(store.Store){useQuota(1)}, with(func(r *store.AdmitRequest) { r.Quota.Offset = 1 }), store.OverQuota},
		{"caps only", nil, with(func(r *store.AdmitRequest) { r.Buckets, r.QuotaKey = nil, "" }), store.Admitted},
		{"buckets only, no ttl", nil, with(func(r *store.AdmitRequest) { r.QuotaKey, r.Caps, r.LeaseTTL = "", nil, 0 }), store.Admitted},
		{"lease without ttl", nil, with(func(r *store.AdmitRequest) { r.LeaseTTL = 0 }), store.Admitted},
		{"nothing to guard", nil, store.AdmitRequest{N: 1}, store.Admitted},
		{"n above burst: never", nil, with(func(r *store.AdmitRequest) { r.N = 3 }), store.Throttled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newStore(t, srv, redis.Options{ClientClock: true})
			b := newStore(t, srv, redis.Options{ClientClock: true})
			for _, f := range tc.pre {
				f(a)
				f(b)
			}
			now := t0.Add(100 * time.Millisecond)
			got, err := a.Admit(ctx, now, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			want := separately(t, b, now, tc.req)
			if got.Refused != tc.want {
				t.Errorf("Refused = %d, want %d", got.Refused, tc.want)
			}
			if got.Refused != want.Refused || got.Take != want.Take || got.Denied != want.Denied {
				t.Errorf("Admit = %+v\nseparate calls = %+v", got, want)
			}
			if tc.req.QuotaKey != "" && got.Refused != store.Throttled && got.Quota != want.Quota {
				t.Errorf("Admit quota %+v, separate %+v", got.Quota, want.Quota)
			}
			for i := range tc.req.Caps {
				if (got.Leases[i].ID != 0) != (want.Leases[i].ID != 0) || got.Leases[i].Key != want.Leases[i].Key {
					t.Errorf("lease %d: Admit %+v, separate %+v", i, got.Leases[i], want.Leases[i])
				}
			}
			if sa, sb := state(t, a, now, tc.req), state(t, b, now, tc.req); sa != sb {
				t.Errorf("state after Admit:\n%s\nafter separate calls:\n%s", sa, sb)
			}
			for i := range got.Leases {
				if err := a.Release(ctx, got.Leases[i]); err != nil {
					t.Fatal(err)
				}
				b.Release(ctx, want.Leases[i])
			}
			if sa, sb := state(t, a, now, tc.req), state(t, b, now, tc.req); sa != sb {
				t.Errorf("state after Release:\n%s\nseparate:\n%s", sa, sb)
			}
		})
	}
}

// state is what explain and keys usage read of r's keys.
func state(t *testing.T, s store.Store, now time.Time, r store.AdmitRequest) string {
	t.Helper()
	out := ""
	for _, b := range r.Buckets {
		v, err := s.Tokens(ctx, now, b)
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%s: %.6f tokens\n", b.Key, v)
	}
	if r.QuotaKey != "" {
		u, err := s.Usage(ctx, r.QuotaKey, r.Quota)
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%s: %+v\n", r.QuotaKey, u)
	}
	for _, c := range r.Caps {
		n, err := s.InUse(ctx, c.Key, now)
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%s: %d in use\n", c.Key, n)
	}
	return out
}

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
