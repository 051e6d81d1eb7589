// Package throttle is the token-bucket arithmetic behind every drawbridge
// throttle level (account, stage, route, usage-plan key, per-method).
//
// A bucket holds up to Burst tokens and refills at Rate tokens per second
// (fractional rates allowed, as API Gateway's rateLimit is a double); one
// request takes one token. A bucket never seen before starts full, as API
// Gateway's do, so a zero Bucket is a full bucket.
//
// Every method takes the time explicitly (TakeAt, TokensAt), like
// golang.org/x/time/rate's AllowN(t, n): the gateway reads the clock once per
// request and tests walk fixed instants without sleeping.
//
// Why not golang.org/x/time/rate: a rate.Limiter owns a mutex and its limit,
// so a keyed table of them costs one allocation per key, config reloads must
// call SetLimitAt on each, and "take from every level or from none" needs
// ReserveN plus Cancel, which mutates and restores state. Drivers need the
// bare state instead: Bucket is two words (tokens, last refill) guarded by
// the driver's own lock, exactly what a Redis script keeps in a hash, and the
// limit arrives with each call. The arithmetic below is the same as rate's
// advance/reserveN (including how it treats a clock that steps backwards).
package throttle

import (
	"math"
	"time"
)

// Limit is one bucket's configuration. The zero Limit (rate 0, burst 0)
// admits nothing, as API Gateway does for a throttle of 0/0.
type Limit struct {
	// Rate is the steady-state refill in tokens per second; fractional values
	// (0.5 = one request every two seconds) are allowed. Zero never refills.
	Rate float64
	// Burst is the capacity: how many requests may arrive at once after a
	// quiet period. Zero admits nothing.
	Burst int64
}

// Never is the retry delay reported when waiting cannot help: more tokens
// were asked for than the bucket holds, or the bucket never refills.
const Never = time.Duration(math.MaxInt64)

// Bucket is the state of one token bucket. The zero value is a bucket that
// has never been used, which counts as full (a new bucket starts full).
// A Bucket is not safe for concurrent use; drivers guard it with their lock.
type Bucket struct {
	tokens float64 // tokens available at last; meaningful only when last != 0
	last   int64   // UnixNano of the last update; 0 = never used (full), so the instant 1970-01-01T00:00:00Z reads as "never used"
}

// TokensAt reports how many tokens the bucket would hold at now under l,
// without changing it (for `drawbridge explain`).
func (b *Bucket) TokensAt(now time.Time, l Limit) float64 {
	tokens, _ := b.advance(now.UnixNano(), l)
	return tokens
}

// TakeAt refills the bucket to now under l and takes n tokens if all n are
// there. When they are not, nothing is taken and retryAfter says how long
// until n tokens will be available (Never if that cannot happen).
func (b *Bucket) TakeAt(now time.Time, l Limit, n int64) (ok bool, retryAfter time.Duration) {
	t := now.UnixNano()
	tokens, last := b.advance(t, l)
	// The refill is stored even when refusing: it is exact either way, and it
	// records a backwards clock step so the stepped interval is not refilled
	// later.
	b.last = last
	if float64(n) <= tokens {
		b.tokens = tokens - float64(n)
		return true, 0
	}
	b.tokens = tokens
	return false, Wait(tokens, l, n)
}

// CanTakeAt reports whether TakeAt(now, l, n) would succeed and, if not, the
// wait, without changing the bucket. Drivers use it to check every level of
// a request before taking from any of them.
func (b *Bucket) CanTakeAt(now time.Time, l Limit, n int64) (ok bool, retryAfter time.Duration) {
	tokens, _ := b.advance(now.UnixNano(), l)
	if float64(n) <= tokens {
		return true, 0
	}
	return false, Wait(tokens, l, n)
}

// FullAt reports whether the bucket is full at now under l. A full bucket
// behaves exactly like a new one, so a driver may forget it without changing
// any future answer: that is how the memory driver stays bounded.
func (b *Bucket) FullAt(now time.Time, l Limit) bool {
	return b.TokensAt(now, l) >= float64(l.Burst)
}

// advance returns the tokens at t and the timestamp to store, without
// modifying b. A clock that stepped backwards refills nothing and moves the
// reference point back, as x/time/rate does: the interval is never counted
// twice and elapsed time is never negative.
func (b *Bucket) advance(t int64, l Limit) (tokens float64, last int64) {
	burst := float64(l.Burst)
	if b.last == 0 {
		return burst, t
	}
	last = b.last
	if t < last {
		last = t
	}
	tokens = b.tokens
	if elapsed := t - last; elapsed > 0 && l.Rate > 0 {
		tokens += float64(elapsed) * l.Rate / 1e9
	}
	if tokens > burst { // also trims a bucket whose burst was lowered by a reload
		tokens = burst
	}
	return tokens, t
}

// Wait is how long a bucket holding tokens needs under l until n tokens are
// there: Never if n exceeds the burst or the bucket never refills, else the
// deficit divided by the rate, rounded up to the nanosecond.
func Wait(tokens float64, l Limit, n int64) time.Duration {
	need := float64(n) - tokens
	if need <= 0 {
		return 0
	}
	if n > l.Burst || l.Rate <= 0 {
		return Never
	}
	secs := need / l.Rate
	if secs >= float64(Never)/1e9 {
		return Never
	}
	return time.Duration(math.Ceil(secs * 1e9))
}

// RetryAfterSeconds turns a wait into the value of a Retry-After header:
// whole seconds, rounded up, at least 1 (a client told "0" retries at once
// and is throttled again). It returns 0 for Never, meaning "send no
// Retry-After": waiting will not help.
func RetryAfterSeconds(d time.Duration) int64 {
	if d >= Never {
		return 0
	}
	if d <= time.Second {
		return 1
	}
	return int64((d + time.Second - 1) / time.Second)
}
