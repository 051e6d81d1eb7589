// Package store defines the state every guard shares: token buckets for
// throttles, quota counters for usage plans and concurrency leases for
// max_concurrent. Drivers (memory, bolt, and later redis) implement Store.
//
// Every method is one whole, atomic operation on the driver's side ("take n
// tokens from these buckets", "count one request against this quota"), never
// a read followed by a write from the caller: that is what lets a Redis
// driver run each call as one Lua script, and the embedded drivers run it
// under one lock. Limits travel with every call instead of being registered
// up front, so a config reload needs no store migration and a Redis script
// needs no second lookup.
//
// Keys are opaque strings the gateway builds once at config load (for
// example "route:/forward" or "key:<name>:plan:<plan>"), never per request.
// A driver may hash-tag or prefix them; it never parses them.
//
// Times are passed in: the gateway reads its clock once per request, and
// tests move time by hand. A Redis driver may substitute the server's clock.
//
// How a Redis driver maps onto this interface: Take is one script over
// the buckets of one request (each a hash {tokens, last}, the state of
// throttle.Bucket, with PEXPIRE at the time to refill); Count is one script
// over a hash {period, first, used} (the state of Counter); Acquire/Release
// are ZADD/ZREM of Lease.ID in a sorted set scored by expiry, with
// ZREMRANGEBYSCORE before counting, which is why leases carry an ID and a
// ttl.
//
// A request passes the three in one shape on every driver: Admit (admit.go)
// runs Take, Count and Acquire in that order, stopping at the first
// refusal and giving back a refused request's leases, either as the
// driver's own single call (Admitter: the redis driver's one script, one
// round trip, so every key of a request shares one hash tag to live in one
// Cluster slot) or as the separate calls. Peek is its read-only twin, for
// explain.
package store

import (
	"context"
	"errors"
	"time"
)

// Store is the state shared by the guards. Implementations are safe for
// concurrent use. Test every driver with storetest.Run.
type Store interface {
	// Take takes n tokens from every bucket in bs, refilled to now, or from
	// none of them: a request must pass every throttle level it is subject
	// to, and a request one level refuses costs nothing at the others.
	// A refusal reports the bucket whose wait is longest (the most
	// restrictive level) and that wait. Take does not retain bs.
	Take(ctx context.Context, now time.Time, n int64, bs []Bucket) (TakeResult, error)

	// Tokens reports the tokens bucket b would hold at now, without taking
	// any or creating the bucket (for `drawbridge explain`). A bucket the
	// store has never seen is full.
	Tokens(ctx context.Context, now time.Time, b Bucket) (float64, error)

	// Count counts one request against quota counter key for the period
	// q.Period if that keeps the count within the period's limit. A refused
	// request is not counted.
	Count(ctx context.Context, key string, q Quota) (QuotaResult, error)

	// Usage reports the counter as Count would see it, without counting
	// (for `drawbridge keys usage` and explain).
	Usage(ctx context.Context, key string, q Quota) (QuotaResult, error)

	// Acquire takes one of max concurrency slots for key. On success the
	// caller must Release the lease when the request ends, however it ends.
	// A lease not released within ttl (when ttl > 0) is reclaimed, so a
	// crashed replica (Redis) or a leaked lease cannot hold a slot forever;
	// ttl <= 0 means the lease lasts until released.
	Acquire(ctx context.Context, key string, max int64, ttl time.Duration, now time.Time) (l Lease, ok bool, err error)

	// Release gives a lease's slot back. Releasing the zero Lease, an
	// expired lease or one already released is a no-op, so a deferred
	// Release is always safe.
	Release(ctx context.Context, l Lease) error

	// InUse reports how many unexpired leases key holds at now.
	InUse(ctx context.Context, key string, now time.Time) (int64, error)

	// Ready reports whether the store can serve guards: nil, or why not
	// (closed, file unwritable, Redis unreachable). For /readyz.
	Ready(ctx context.Context) error

	// Close releases the store's resources, persisting whatever the driver
	// promises to persist. Calls after Close return ErrClosed, except
	// Release, which stays a harmless no-op for requests still finishing.
	Close() error
}

// Bucket names one token bucket and the limit it is taken under.
// The zero Rate never refills; the zero Burst admits nothing.
type Bucket struct {
	Key   string
	Rate  float64 // refill in tokens per second; fractional allowed
	Burst int64   // capacity; a bucket the store has never seen starts full
}

// TakeResult is the outcome of Take.
type TakeResult struct {
	// OK is true when n tokens were taken from every bucket.
	OK bool
	// Denied is the index in bs of the bucket that decided a refusal (the
	// one with the longest wait); -1 when OK.
	Denied int
	// RetryAfter is how long until the refused request would pass every
	// bucket it failed, throttle.Never when it never will. Zero when OK.
	RetryAfter time.Duration
}

// Quota is one quota counter's window and limit for a call.
type Quota struct {
	// Period is the start of the calendar period being counted (see
	// apikey.Period). A counter holds one period; a later Period starts it
	// again at zero. An earlier Period than the one held (the clock stepped
	// back across a boundary) is counted against the period held, so a
	// clock step never grants a fresh quota.
	Period time.Time
	// Limit is the number of requests allowed per period. Zero allows none.
	Limit int64
	// Offset is subtracted from Limit in the counter's first period only:
	// API Gateway's QuotaSettings.offset ("the number of requests
	// subtracted from the given limit in the initial time period"). The
	// first period is the one in which the store first counted this key,
	// that is, when the key first used the plan; drivers record it
	// atomically with the first count. The effective limit never goes
	// below zero.
	Offset int64
}

// QuotaResult is a quota counter as Count or Usage left it.
type QuotaResult struct {
	Used  int64 // requests counted in the period
	Limit int64 // effective limit in the period (Offset applied in the first)
	OK    bool  // Count: this request was counted; Usage: one more would be
}

// Remaining is how many more requests the period allows, never negative.
func (r QuotaResult) Remaining() int64 {
	if r.Used >= r.Limit {
		return 0
	}
	return r.Limit - r.Used
}

// EffectiveLimit applies q.Offset when first is true (the counter's first
// period), clamped at zero. Drivers share it so they agree exactly.
func (q Quota) EffectiveLimit(first bool) int64 {
	l := q.Limit
	if first {
		l -= q.Offset
	}
	if l < 0 {
		return 0
	}
	return l
}

// Lease is a held concurrency slot. The zero Lease holds nothing; releasing
// it is a no-op. Leases are values (no allocation per request) and carry an
// ID the driver issued, so a release is idempotent and a Redis driver can
// keep leases as members of a sorted set scored by expiry.
type Lease struct {
	Key string
	ID  uint64 // 0 = no lease
}

// Errors callers branch on. They are wrapped with the failed action, so
// test with errors.Is.
var (
	// ErrClosed: the store was used after Close.
	ErrClosed = errors.New("store closed")
	// ErrUnavailable: the backing service cannot answer (Redis down or
	// slow, state file unwritable). Guards fail closed with 503.
	ErrUnavailable = errors.New("state store unavailable")
)
