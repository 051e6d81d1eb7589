package store

import (
	"context"
	"fmt"
	"time"

	"github.com/drawbridge/drawbridge/internal/throttle"
)

// Admitter is implemented by drivers that run a request's throttle, quota
// and concurrency steps in one call of their own (the redis driver: one
// script, one round trip, instead of Take, Count and Acquire). It is
// optional: call Admit, which uses it when the driver has it and the
// separate calls otherwise; both give the same decisions and leave the
// same state (storetest.Run holds every driver to that).
type Admitter interface {
	// Admit is Admit (the function) done by the driver: atomically, with
	// no lease of a refused request left held.
	Admit(ctx context.Context, now time.Time, r AdmitRequest) (AdmitResult, error)
}

// Local is implemented by drivers whose state lives in this process (the
// memory driver): reading it costs no I/O, so a caller may read before it
// decides whether to write (the gateway's early rejections).
type Local interface {
	Local()
}

// MaxCaps is how many concurrency caps one Admit takes leases on (the
// stage's and the route's).
const MaxCaps = 2

// AdmitRequest is what one request must pass at the store. Admit does not
// retain it.
type AdmitRequest struct {
	N        int64    // tokens to take from every bucket
	Buckets  []Bucket // may be empty: no throttle
	QuotaKey string   // "" : no quota
	Quota    Quota
	Caps     []Cap // at most MaxCaps; may be empty
	LeaseTTL time.Duration
}

// Empty reports whether r guards nothing: no bucket, no quota, no cap.
// Admit and Peek answer it without calling the store.
func (r *AdmitRequest) Empty() bool {
	return len(r.Buckets) == 0 && r.QuotaKey == "" && len(r.Caps) == 0
}

// Cap is one max_concurrent limit: Acquire's key and max.
type Cap struct {
	Key string
	Max int64 // <= 0 admits nothing
}

// Stage names the step of an Admit that refused.
type Stage uint8

// The stages, in the order Admit runs them.
const (
	Admitted Stage = iota
	Throttled
	OverQuota
	OverConcurrency
)

// AdmitResult is the outcome of Admit. Refused is the first stage that
// refused, or Admitted. Take is valid always (Denied -1 when it took);
// Quota once the quota was counted or refused (Refused >= OverQuota or
// Admitted, with a QuotaKey); Denied is the index in Caps of the cap that
// refused (OverConcurrency), else -1. Leases are what the caller must
// Release when the request ends: Leases[i] is the lease on Caps[i] when
// Admitted; after a refusal or an error, only a lease the store could not
// give back (so the caller's release tries again and reports it).
type AdmitResult struct {
	Refused Stage
	Take    TakeResult
	Quota   QuotaResult
	Denied  int
	Leases  [MaxCaps]Lease
}

// admitted is the result of a request that guards nothing.
var admitted = AdmitResult{Take: TakeResult{OK: true, Denied: -1}, Denied: -1}

// Admit runs r against s, stopping at the first refusal:
// Take(now, r.N, r.Buckets); Count(r.QuotaKey, r.Quota) when r.QuotaKey is
// set; then one lease of every cap in r.Caps, each with ttl r.LeaseTTL,
// all or none. So a throttled request costs nothing, a quota refusal has
// taken its tokens, and a max_concurrent refusal has taken its tokens and
// been counted against the quota, but holds no lease of an earlier cap.
//
// It is the driver's own Admit when s is an Admitter (one atomic call),
// else the separate calls in that order, giving back the leases taken
// before a refused cap. An error means the decision is unknown: some of
// the steps may have run (tokens taken, a request counted). An empty r
// (Empty) is admitted without calling s.
func Admit(ctx context.Context, s Store, now time.Time, r AdmitRequest) (AdmitResult, error) {
	if r.Empty() {
		return admitted, nil
	}
	if len(r.Caps) > MaxCaps {
		return AdmitResult{Take: TakeResult{Denied: -1}, Denied: -1}, fmt.Errorf("admit: %d caps, at most %d", len(r.Caps), MaxCaps)
	}
	if a, ok := s.(Admitter); ok {
		return a.Admit(ctx, now, r)
	}
	return admitSeparately(ctx, s, now, r)
}

// admitSeparately is Admit on a driver without an Admitter.
func admitSeparately(ctx context.Context, s Store, now time.Time, r AdmitRequest) (AdmitResult, error) {
	res := admitted
	if len(r.Buckets) > 0 {
		t, err := s.Take(ctx, now, r.N, r.Buckets)
		if err != nil {
			return AdmitResult{Take: TakeResult{Denied: -1}, Denied: -1}, err
		}
		if res.Take = t; !t.OK {
			res.Refused = Throttled
			return res, nil
		}
	}
	if r.QuotaKey != "" {
		q, err := s.Count(ctx, r.QuotaKey, r.Quota)
		if err != nil {
			return res, err
		}
		if res.Quota = q; !q.OK {
			res.Refused = OverQuota
			return res, nil
		}
	}
	for i, c := range r.Caps {
		l, ok, err := s.Acquire(ctx, c.Key, c.Max, r.LeaseTTL, now)
		if err != nil || !ok {
			// All or none: give back the caps taken before this one. The
			// request's context may be the reason Acquire failed; the
			// release must happen all the same.
			held := res.Leases
			res.Leases = [MaxCaps]Lease{}
			for j, l := range held[:i] {
				if s.Release(context.WithoutCancel(ctx), l) != nil {
					res.Leases[j] = l
				}
			}
			if err != nil {
				return res, err
			}
			res.Refused, res.Denied = OverConcurrency, i
			return res, nil
		}
		res.Leases[i] = l
	}
	return res, nil
}

// Preview is what Peek reports: the result Admit would give at now (with
// no leases), and the state it read to decide.
type Preview struct {
	AdmitResult
	// Tokens[i] is the tokens Buckets[i] holds at now.
	Tokens []float64
	// InUse[i] is the leases Caps[i] holds at now, for the caps read: all
	// of them, or up to and including Denied when OverConcurrency.
	InUse [MaxCaps]int64
}

// Peek is Admit's read-only twin, for explain: it reads what Admit would
// change (Tokens, Usage, InUse), in Admit's order and stopping where Admit
// would stop, and reports the decision Admit would make, taking, counting
// and leasing nothing. An empty r is admitted without calling s.
func Peek(ctx context.Context, s Store, now time.Time, r AdmitRequest) (Preview, error) {
	p := Preview{AdmitResult: admitted}
	if r.Empty() {
		return p, nil
	}
	if len(r.Caps) > MaxCaps {
		return p, fmt.Errorf("peek: %d caps, at most %d", len(r.Caps), MaxCaps)
	}
	p.Tokens = make([]float64, len(r.Buckets))
	for i, b := range r.Buckets {
		tokens, err := s.Tokens(ctx, now, b)
		if err != nil {
			return p, err
		}
		p.Tokens[i] = tokens
		// The longest wait decides, the first of equal waits: as Take.
		if tokens < float64(r.N) {
			if w := throttle.Wait(tokens, throttle.Limit{Rate: b.Rate, Burst: b.Burst}, r.N); p.Take.OK || w > p.Take.RetryAfter {
				p.Take = TakeResult{Denied: i, RetryAfter: w}
			}
		}
	}
	if !p.Take.OK {
		p.Refused = Throttled
		return p, nil
	}
	if r.QuotaKey != "" {
		q, err := s.Usage(ctx, r.QuotaKey, r.Quota)
		if err != nil {
			return p, err
		}
		if p.Quota = q; !q.OK {
			p.Refused = OverQuota
			return p, nil
		}
	}
	for i, c := range r.Caps {
		n, err := s.InUse(ctx, c.Key, now)
		if err != nil {
			return p, err
		}
		if p.InUse[i] = n; n >= c.Max {
			p.Refused, p.Denied = OverConcurrency, i
			return p, nil
		}
	}
	return p, nil
}
