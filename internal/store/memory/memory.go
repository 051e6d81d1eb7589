// Package memory is the in-process store driver: token buckets, quota
// counters and concurrency leases in mutex-protected maps. Nothing survives
// the process; use it for tests, `drawbridge demo`, and as the volatile half
// of the bolt driver (which keeps buckets and leases here).
//
// Memory stays bounded without approximating any limit (unlike an LRU of
// keys, which forgets a busy key and hands it a fresh burst):
//   - Keys come from config (stage, route, key×plan), never from requests,
//     so every map is bounded by the config.
//   - Beyond that, whenever the bucket map doubles past its size at the last
//     sweep (at least 1024 entries), Take drops every bucket that is full at
//     that instant. A full bucket answers exactly like a bucket never seen
//     (a new bucket starts full), so dropping it changes no decision; a
//     config reload that retires keys thus frees their buckets by the next
//     sweep. Cost: amortised O(1) per new bucket.
//   - Quota counters keep one period per key, replaced in place.
//   - Lease sets shrink as leases are released; expired leases are reclaimed
//     when a key is at its cap and by InUse.
//
// The driver never blocks on I/O, so it ignores ctx.
package memory

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/throttle"
)

// minSweep is the bucket-map size below which Take never sweeps.
const minSweep = 1024

// Store is the memory driver. Create it with New; the zero value is not
// usable.
type Store struct {
	closed atomic.Bool

	bmu     sync.Mutex // guards buckets, sweepAt
	buckets map[string]*bucket
	sweepAt int // sweep when len(buckets) reaches this

	qmu    sync.Mutex // guards quotas
	quotas map[string]*store.Counter

	lmu    sync.Mutex                  // guards leases, nextID
	leases map[string]map[uint64]int64 // key -> lease ID -> expiry (UnixNano, 0 = none)
	nextID uint64
}

type bucket struct {
	b throttle.Bucket
	l throttle.Limit // limit of the last take, for sweeping
}

var _ store.Store = (*Store)(nil)

// Local marks the store as in-process (store.Local).
func (*Store) Local() {}

// New returns an empty store.
func New() *Store {
	return &Store{
		buckets: make(map[string]*bucket),
		sweepAt: minSweep,
		quotas:  make(map[string]*store.Counter),
		leases:  make(map[string]map[uint64]int64),
	}
}

// maxPinned is how many buckets one Take resolves once and remembers on the
// stack; longer lists are looked up twice.
const maxPinned = 8

// Take implements store.Store: check every bucket, then take from all or
// none, under one lock. Keys in bs should be distinct; a repeated key is
// checked once per occurrence but may then be taken from past empty.
func (s *Store) Take(_ context.Context, now time.Time, n int64, bs []store.Bucket) (store.TakeResult, error) {
	if s.closed.Load() {
		return store.TakeResult{Denied: -1}, fmt.Errorf("take tokens: %w", store.ErrClosed)
	}
	var pinned [maxPinned]*bucket
	res := store.TakeResult{OK: true, Denied: -1}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	for i := range bs {
		e := s.buckets[bs[i].Key]
		if i < maxPinned {
			pinned[i] = e
		}
		var zero throttle.Bucket
		b := &zero
		if e != nil {
			b = &e.b
		}
		if ok, wait := b.CanTakeAt(now, limit(bs[i]), n); !ok && (res.OK || wait > res.RetryAfter) {
			res = store.TakeResult{OK: false, Denied: i, RetryAfter: wait}
		}
	}
	if !res.OK {
		return res, nil
	}
	for i := range bs {
		var e *bucket
		if i < maxPinned {
			e = pinned[i]
		} else {
			e = s.buckets[bs[i].Key]
		}
		if e == nil {
			e = &bucket{}
			s.buckets[bs[i].Key] = e
		}
		e.l = limit(bs[i])
		e.b.TakeAt(now, e.l, n)
	}
	if len(s.buckets) >= s.sweepAt {
		s.sweepLocked(now)
	}
	return res, nil
}

// sweepLocked drops every full bucket (see the package doc). s.bmu is held.
func (s *Store) sweepLocked(now time.Time) {
	for k, e := range s.buckets {
		if e.b.FullAt(now, e.l) {
			delete(s.buckets, k)
		}
	}
	s.sweepAt = max(2*len(s.buckets), minSweep)
}

// Buckets reports how many buckets the store holds (for tests and metrics).
func (s *Store) Buckets() int {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	return len(s.buckets)
}

func limit(b store.Bucket) throttle.Limit { return throttle.Limit{Rate: b.Rate, Burst: b.Burst} }

// Tokens implements store.Store.
func (s *Store) Tokens(_ context.Context, now time.Time, b store.Bucket) (float64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("read tokens: %w", store.ErrClosed)
	}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	e := s.buckets[b.Key]
	if e == nil {
		return float64(b.Burst), nil
	}
	return e.b.TokensAt(now, limit(b)), nil
}

// Count implements store.Store.
func (s *Store) Count(_ context.Context, key string, q store.Quota) (store.QuotaResult, error) {
	if s.closed.Load() {
		return store.QuotaResult{}, fmt.Errorf("count quota: %w", store.ErrClosed)
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	c := s.quotas[key]
	if c == nil {
		c = new(store.Counter)
		s.quotas[key] = c
	}
	return c.Count(q), nil
}

// Usage implements store.Store.
func (s *Store) Usage(_ context.Context, key string, q store.Quota) (store.QuotaResult, error) {
	if s.closed.Load() {
		return store.QuotaResult{}, fmt.Errorf("read quota: %w", store.ErrClosed)
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	var c store.Counter
	if p := s.quotas[key]; p != nil {
		c = *p
	}
	return c.Peek(q), nil
}

// Acquire implements store.Store. max <= 0 admits nothing.
func (s *Store) Acquire(_ context.Context, key string, max int64, ttl time.Duration, now time.Time) (store.Lease, bool, error) {
	if s.closed.Load() {
		return store.Lease{}, false, fmt.Errorf("acquire lease: %w", store.ErrClosed)
	}
	if max <= 0 {
		return store.Lease{}, false, nil
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	held := s.leases[key]
	if held == nil {
		held = make(map[uint64]int64)
		s.leases[key] = held
	}
	if int64(len(held)) >= max {
		expireLocked(held, now)
		if int64(len(held)) >= max {
			return store.Lease{}, false, nil
		}
	}
	var exp int64
	if ttl > 0 {
		exp = now.Add(ttl).UnixNano()
	}
	s.nextID++
	held[s.nextID] = exp
	return store.Lease{Key: key, ID: s.nextID}, true, nil
}

// expireLocked drops leases whose expiry is at or before now. s.lmu is held.
func expireLocked(held map[uint64]int64, now time.Time) {
	t := now.UnixNano()
	for id, exp := range held {
		if exp != 0 && exp <= t {
			delete(held, id)
		}
	}
}

// Release implements store.Store. It works after Close too (a request
// finishing during shutdown must not fail on its deferred release).
func (s *Store) Release(_ context.Context, l store.Lease) error {
	if l.ID == 0 {
		return nil
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if held := s.leases[l.Key]; held != nil {
		delete(held, l.ID) // the key's map stays: reusing it keeps Acquire allocation-free
	}
	return nil
}

// InUse implements store.Store.
func (s *Store) InUse(_ context.Context, key string, now time.Time) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("read leases: %w", store.ErrClosed)
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	held := s.leases[key]
	expireLocked(held, now)
	return int64(len(held)), nil
}

// Ready implements store.Store: nil until Close.
func (s *Store) Ready(context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// Close implements store.Store. The state is dropped; a second Close
// returns ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return store.ErrClosed
	}
	return nil
}
