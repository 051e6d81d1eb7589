package delivery

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/webhook"
)

// Policy is one route's delivery schedule (config `delivery.retry` and
// `delivery.concurrency`). Zero fields take the defaults below.
//
// Defaults, in the spirit of Svix (≈ 27 h) and Stripe (3 days): max_age
// 72 h is the real bound (it is also GitHub's manual redelivery window), so
// a backend may be down for three days without losing an event. Max 1 h
// caps how long a recovered backend waits for its backlog to start moving.
// With full jitter the mean wait at the cap is 30 min, so MaxAttempts 150
// (≈ 75 h of attempts on average) does not end a delivery before MaxAge
// does; it is the count-based bound for routes that set a smaller one.
// Base 5 s retries a blip quickly (Svix's second try is at +5 s).
type Policy struct {
	MaxAttempts int           // attempts per retry budget; default 150
	MaxAge      time.Duration // since acceptance (or replay); default 72h
	Base        time.Duration // first backoff ceiling; default 5s
	Max         time.Duration // backoff ceiling; default 1h
	Timeout     time.Duration // per attempt; default 30s (the route's timeout is a good value)
	Concurrency int           // window and in-flight limit per route; default 1 (in order)
	// Sign, when set, signs every attempt as it is sent (delivery.sign).
	Sign *webhook.Signer
}

// Policy defaults.
const (
	DefaultMaxAttempts = 150
	DefaultMaxAge      = 72 * time.Hour
	DefaultBase        = 5 * time.Second
	DefaultMax         = time.Hour
	DefaultTimeout     = 30 * time.Second
	DefaultConcurrency = 1

	// MinRetryDelay floors the jittered backoff (or Base, if smaller):
	// full jitter may draw zero, and a retry fired back-to-back is both a
	// hammer on a sick target and an endless loop for RunOnce under a
	// stopped clock.
	MinRetryDelay = time.Second
)

// PolicyFor reads a route's delivery settings (zero fields: defaults). The
// per-attempt timeout is the route's timeout.
func PolicyFor(r *config.Route) Policy {
	p := Policy{Timeout: time.Duration(r.Timeout)}
	if d := r.Delivery; d != nil {
		p.MaxAttempts = int(d.Retry.MaxAttempts)
		p.MaxAge = time.Duration(d.Retry.MaxAge)
		p.Base = time.Duration(d.Retry.Base)
		p.Max = time.Duration(d.Retry.Max)
		p.Concurrency = int(d.Concurrency)
	}
	return p.WithDefaults()
}

// PolicyForLane reads one lane's delivery settings (zero fields:
// defaults). A sign block whose secret the signer refuses (config checks
// it first) signs nothing; the gateway's Build reports the same error.
func PolicyForLane(l config.Lane) Policy {
	p := Policy{
		Timeout:     time.Duration(l.Timeout),
		MaxAttempts: int(l.Retry.MaxAttempts),
		MaxAge:      time.Duration(l.Retry.MaxAge),
		Base:        time.Duration(l.Retry.Base),
		Max:         time.Duration(l.Retry.Max),
		Concurrency: int(l.Concurrency),
	}
	if s := l.Sign; s != nil {
		p.Sign, _ = webhook.NewSigner(webhook.SignSpec{Scheme: s.Scheme, Secret: s.Secret,
			Header: s.Header, Algorithm: s.Algorithm, Encoding: s.Encoding, Prefix: s.Prefix})
	}
	return p.WithDefaults()
}

// WithDefaults returns p with zero fields set to the defaults.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxAge <= 0 {
		p.MaxAge = DefaultMaxAge
	}
	if p.Base <= 0 {
		p.Base = DefaultBase
	}
	if p.Max <= 0 {
		p.Max = DefaultMax
	}
	if p.Max < p.Base {
		p.Max = p.Base
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.Concurrency <= 0 {
		p.Concurrency = DefaultConcurrency
	}
	return p
}

// Result is what a Send reports about one attempt.
type Result struct {
	Status     int           // HTTP status; 0 when no response arrived
	RetryAfter time.Duration // the target's Retry-After, if any (honoured on 429 and 503)
	Err        error         // transport error (no response), or nil
}

// Retryable reports whether a result asks for another attempt: no
// response, 408, 429 or 5xx. 2xx is success; 1xx, 3xx (redirects are never
// followed) and other 4xx are permanent failures that go to dead letters
// at once: repeating them cannot change the answer
// (docs/delivery.md#outcomes-and-retries).
func (r Result) Retryable() bool {
	switch {
	case r.Err != nil || r.Status == 0:
		return true
	case r.Status == http.StatusRequestTimeout, r.Status == http.StatusTooManyRequests:
		return true
	}
	return r.Status >= 500 && r.Status <= 599
}

// OK reports a 2xx.
func (r Result) OK() bool { return r.Err == nil && r.Status >= 200 && r.Status <= 299 }

// Decide turns an attempt's result into the delivery's next state and,
// when pending, the time of the next attempt. d is the delivery before the
// attempt is appended; now is the end of the attempt; rnd draws uniformly
// from [0, n) (rand.Int64N; tests inject a fixed one).
//
// Backoff is full jitter (AWS Architecture Blog, "Exponential Backoff and
// Jitter"): uniform in [0, min(Max, Base·2^(n-1))) after the n-th failed
// attempt, floored at MinRetryDelay. Jitter spreads the retries of many
// deliveries whose target failed at the same moment, so its recovery is
// not met by a thundering herd. A Retry-After on 429 or 503 is a floor:
// the next attempt is never earlier. The floor is min(Base, MinRetryDelay). When the next attempt would fall after
// the budget's max_age, backoff is cut short to one last try at the
// deadline; a Retry-After beyond the deadline dead-letters now.
func (p Policy) Decide(d *Delivery, r Result, now time.Time, rnd func(int64) int64) (State, time.Time) {
	p = p.WithDefaults()
	if r.OK() {
		return Delivered, time.Time{}
	}
	if !r.Retryable() {
		return Dead, time.Time{}
	}
	n := d.tries() + 1 // including this attempt
	if n >= p.MaxAttempts {
		return Dead, time.Time{}
	}
	deadline := d.budgetStart().Add(p.MaxAge)
	if !now.Before(deadline) {
		return Dead, time.Time{}
	}
	if rnd == nil {
		rnd = rand.Int64N
	}
	next := now.Add(p.backoff(n, rnd))
	if next.After(deadline) {
		next = deadline
	}
	if r.RetryAfter > 0 && (r.Status == http.StatusTooManyRequests || r.Status == http.StatusServiceUnavailable) {
		if ra := now.Add(r.RetryAfter); ra.After(next) {
			if ra.After(deadline) {
				return Dead, time.Time{}
			}
			next = ra
		}
	}
	return Pending, next
}

// backoff is the jittered delay after the n-th failed attempt (n ≥ 1).
func (p Policy) backoff(n int, rnd func(int64) int64) time.Duration {
	ceil := p.Max
	if n-1 < 62 {
		if c := p.Base << (n - 1); c > 0 && c < p.Max && c>>(n-1) == p.Base {
			ceil = c
		}
	}
	d := time.Duration(rnd(int64(ceil)))
	return max(d, min(p.Base, MinRetryDelay))
}

// ParseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): delay
// seconds, or an HTTP-date taken relative to now (pass the response's Date
// when it has one, so the two clocks that matter are the target's). A date
// in the past means 0. It reports false for a missing or malformed value.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
