package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
)

// separately is the specification of store.Admit written with the single
// calls: Take, then Count, then Acquire of every cap, stopping at the
// first refusal, giving back the leases of the caps before a refused one.
func separately(t *testing.T, s store.Store, now time.Time, r store.AdmitRequest) store.AdmitResult {
	t.Helper()
	res := store.AdmitResult{Take: store.TakeResult{OK: true, Denied: -1}, Denied: -1}
	var err error
	if len(r.Buckets) > 0 {
		if res.Take, err = s.Take(ctx, now, r.N, r.Buckets); err != nil {
			t.Fatal(err)
		}
		if !res.Take.OK {
			res.Refused = store.Throttled
			return res
		}
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
				if err := s.Release(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			res.Leases = [store.MaxCaps]store.Lease{}
			res.Refused, res.Denied = store.OverConcurrency, i
			return res
		}
		res.Leases[i] = l
	}
	return res
}

// state is what explain and `keys usage` read of r's keys.
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

// testAdmit holds store.Admit and store.Peek to their contract on the
// driver, for every refusal order: Admit gives the decision the separate
// calls give and leaves the same state behind (before and after the
// leases are released); a refused request holds no lease; Peek, run
// first, predicts Admit's decision and changes nothing.
func testAdmit(t *testing.T, open func(*testing.T) store.Store) {
	b1 := store.Bucket{Key: "stage", Rate: 1, Burst: 2}
	b2 := store.Bucket{Key: "key", Rate: 0.5, Burst: 1}
	day := store.Quota{Period: T0.Truncate(24 * time.Hour), Limit: 2}
	c1, c2 := store.Cap{Key: "conc:stage", Max: 1}, store.Cap{Key: "conc:route", Max: 2}
	full := store.AdmitRequest{N: 1, Buckets: []store.Bucket{b1, b2}, QuotaKey: "q", Quota: day, Caps: []store.Cap{c1, c2}, LeaseTTL: time.Minute}
	with := func(f func(*store.AdmitRequest)) store.AdmitRequest {
		r := full
		f(&r)
		return r
	}
	drain := func(b store.Bucket) func(store.Store) {
		return func(s store.Store) { s.Take(ctx, T0, b.Burst, []store.Bucket{b}) }
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
				s.Acquire(ctx, c.Key, 10, time.Minute, T0)
			}
		}
	}
	type pre = []func(store.Store)
	cases := []struct {
		name string
		pre  pre
		req  store.AdmitRequest
		want store.Stage
	}{
		{"fresh: admitted", nil, full, store.Admitted},
		{"second bucket empty: throttled, nothing counted", pre{drain(b2)}, full, store.Throttled},
		{"both buckets empty: the longest wait decides", pre{drain(b1), drain(b2)}, full, store.Throttled},
		{"throttled and over quota: throttled, quota untouched", pre{drain(b1), useQuota(2)}, full, store.Throttled},
		{"quota used up: over quota, tokens taken", pre{useQuota(2)}, full, store.OverQuota},
		{"stage cap full: over concurrency, counted", pre{hold(c1, 1)}, full, store.OverConcurrency},
		{"route cap full: the stage lease is given back", pre{hold(c2, 2)}, full, store.OverConcurrency},
		{"cap max 0 admits nothing", nil, with(func(r *store.AdmitRequest) { r.Caps = []store.Cap{{Key: "zero", Max: 0}} }), store.OverConcurrency},
		{"quota only", nil, with(func(r *store.AdmitRequest) { r.Buckets, r.Caps = nil, nil }), store.Admitted},
		{"quota only, used up", pre{useQuota(2)}, with(func(r *store.AdmitRequest) { r.Buckets, r.Caps = nil, nil }), store.OverQuota},
		{"offset in the first period", pre{useQuota(1)}, with(func(r *store.AdmitRequest) { r.Quota.Offset = 1 }), store.OverQuota},
		{"caps only", nil, with(func(r *store.AdmitRequest) { r.Buckets, r.QuotaKey = nil, "" }), store.Admitted},
		{"buckets only, no ttl", nil, with(func(r *store.AdmitRequest) { r.QuotaKey, r.Caps, r.LeaseTTL = "", nil, 0 }), store.Admitted},
		{"lease without ttl", nil, with(func(r *store.AdmitRequest) { r.LeaseTTL = 0 }), store.Admitted},
		{"nothing to guard", nil, store.AdmitRequest{N: 1}, store.Admitted},
		{"n above burst: never", nil, with(func(r *store.AdmitRequest) { r.N = 3 }), store.Throttled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t), open(t)
			for _, f := range tc.pre {
				f(a)
				f(b)
			}
			now := T0.Add(100 * time.Millisecond)
			before := state(t, a, now, tc.req)
			p, err := store.Peek(ctx, a, now, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if after := state(t, a, now, tc.req); after != before {
				t.Fatalf("Peek changed the state:\n%s\nto:\n%s", before, after)
			}
			got, err := store.Admit(ctx, a, now, tc.req)
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
			for i := range store.MaxCaps {
				if (got.Leases[i].ID != 0) != (want.Leases[i].ID != 0) || got.Leases[i].Key != want.Leases[i].Key {
					t.Errorf("lease %d: Admit %+v, separate %+v", i, got.Leases[i], want.Leases[i])
				}
				if got.Refused != store.Admitted && got.Leases[i].ID != 0 {
					t.Errorf("refused, yet holds lease %d %+v", i, got.Leases[i])
				}
			}
			if p.Refused != got.Refused || p.Take.OK != got.Take.OK || p.Take.Denied != got.Take.Denied || p.Denied != got.Denied {
				t.Errorf("Peek = %+v\nAdmit = %+v", p.AdmitResult, got)
			}
			// Peek's wait comes from the tokens it read, Take's from its own
			// arithmetic: they may differ in the last digit.
			if d := p.Take.RetryAfter - got.Take.RetryAfter; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("Peek waits %v, Admit %v", p.Take.RetryAfter, got.Take.RetryAfter)
			}
			if len(p.Tokens) != len(tc.req.Buckets) {
				t.Errorf("Peek read %d buckets of %d", len(p.Tokens), len(tc.req.Buckets))
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
	t.Run("too many caps is an error, not a decision", func(t *testing.T) {
		s := open(t)
		r := store.AdmitRequest{N: 1, Caps: make([]store.Cap, store.MaxCaps+1)}
		if _, err := store.Admit(ctx, s, T0, r); err == nil {
			t.Error("Admit: no error")
		}
		if _, err := store.Peek(ctx, s, T0, r); err == nil {
			t.Error("Peek: no error")
		}
	})
	t.Run("closed store is an error", func(t *testing.T) {
		s := open(t)
		s.Close()
		if _, err := store.Admit(ctx, s, T0, full); err == nil {
			t.Error("Admit after Close: no error")
		}
		if _, err := store.Peek(ctx, s, T0, full); err == nil {
			t.Error("Peek after Close: no error")
		}
	})
}

// testAdmitConcurrent: Admits racing on two caps never hold more leases
// than either cap allows, and a refusal leaves none behind.
func testAdmitConcurrent(t *testing.T, open func(*testing.T) store.Store) {
	const workers, each = 8, 100
	s := open(t)
	r := store.AdmitRequest{N: 1, Caps: []store.Cap{{Key: "wide", Max: 5}, {Key: "narrow", Max: 2}}, LeaseTTL: time.Minute}
	var inside, peak, admitted atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				res, err := store.Admit(ctx, s, T0, r)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Refused != store.Admitted {
					continue
				}
				admitted.Add(1)
				n := inside.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				inside.Add(-1)
				for _, l := range res.Leases {
					s.Release(ctx, l)
				}
			}
		})
	}
	wg.Wait()
	if peak.Load() > 2 || admitted.Load() < 1 {
		t.Fatalf("peak %d requests inside a cap of 2, %d admitted", peak.Load(), admitted.Load())
	}
	for _, c := range r.Caps {
		if n, _ := s.InUse(ctx, c.Key, T0); n != 0 {
			t.Errorf("%s: %d leases held at the end, want 0 (a refused Admit kept one)", c.Key, n)
		}
	}
}
