// Package body reads request bodies into memory under one memory budget
// shared by every request in flight.
//
// A declared Content-Length is a promise, not bytes: a client can declare
// 10 MiB and send nothing. So a body's buffers grow with the bytes that
// arrive, never with the declared length alone: a first buffer of at most
// FirstBuffer bytes (nginx's first buffer is likewise min(declared,
// client_body_buffer_size)), then Chunk-sized buffers as bytes keep
// coming, joined into one buffer of exactly the body's length once it is
// complete. Every buffer is taken
// from a Budget before it is allocated; when the budget is spent, a
// request waits up to Wait for memory another request gives back, then
// fails with ErrNoMemory (the gateway answers 503 and closes the
// connection, as Envoy's overload manager stops new streams).
//
// The trade-off: a complete body of more than FirstBuffer bytes is copied
// once (the callers need one contiguous slice), so for a moment it takes
// twice its length; the budget counts both copies.
package body

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// FirstBuffer is the most a body holds before any byte of it has
	// arrived: a request that declares a length and sends nothing costs
	// this much, whatever it declared. 4 KiB, net/http's own read
	// buffer per connection: 10,000 requests in flight (the default
	// limits.max_inflight) hold 40 MiB at most, under the default budget,
	// so header-only requests alone cannot spend it.
	FirstBuffer = 4 << 10
	// Chunk is the size of each later buffer: at most Chunk bytes are
	// held beyond those received. 32 KiB is the largest of Go's small
	// allocation size classes (cheap, pooled per P).
	Chunk = 32 << 10
	// Slack bounds what a body holds beyond the bytes received while it
	// arrives.
	Slack = Chunk
	// Wait is how long a request waits for memory another request gives
	// back (a burst of large bodies being forwarded) before ErrNoMemory.
	Wait = 100 * time.Millisecond
)

var (
	// ErrTooLarge: the body is longer than the maximum (413).
	ErrTooLarge = errors.New("body: longer than limits.max_body_bytes")
	// ErrNoMemory: the budget had no room for the body's next buffer
	// within Wait (503).
	ErrNoMemory = errors.New("body: limits.max_body_memory in use by other requests")
)

// Budget is the memory all bodies in flight may hold together. Its zero
// value has no room; make one with NewBudget. It is safe for concurrent
// use, and one Budget outlives config reloads (SetLimit changes it in
// place) so that requests under the old and the new config share it.
//
// First buffers may use the whole limit; later buffers (large bodies) only
// seven eighths of it. The last eighth is kept for small bodies, so while
// large uploads fill their share, bodies up to FirstBuffer bytes are still
// read, the way Envoy's overload manager resets the largest streams first
// and keeps serving small ones.
type Budget struct {
	limit atomic.Int64
	used  atomic.Int64
	// nwait counts requests waiting for room; Release takes mu only when
	// it is non-zero, so the common path stays lock-free.
	nwait atomic.Int32
	mu    sync.Mutex
	wake  chan struct{} // closed by a Release while requests wait; guarded by mu
	wait  time.Duration // Wait; tests lengthen it
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget {
	b := &Budget{wait: Wait}
	b.limit.Store(limit)
	return b
}

// SetLimit changes the limit. Bodies already held keep their memory; a
// lower limit refuses new buffers until enough are released.
func (b *Budget) SetLimit(limit int64) {
	b.limit.Store(limit)
	b.wakeWaiters()
}

// Limit is the current limit in bytes.
func (b *Budget) Limit() int64 { return b.limit.Load() }

// Used is the memory held by bodies now, in bytes.
func (b *Budget) Used() int64 { return b.used.Load() }

// Release gives back n bytes that Read returned as held.
func (b *Budget) Release(n int64) {
	if n == 0 {
		return
	}
	b.used.Add(-n)
	if b.nwait.Load() > 0 {
		b.wakeWaiters()
	}
}

func (b *Budget) wakeWaiters() {
	b.mu.Lock()
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	b.mu.Unlock()
}

// tryReserve takes n bytes if the first-buffer or large-body share has
// room for them.
func (b *Budget) tryReserve(n int64, first bool) bool {
	limit := b.limit.Load()
	if !first {
		limit -= limit / 8
	}
	for {
		u := b.used.Load()
		if u+n > limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// reserve takes n bytes, waiting up to Wait (never past deadline) for
// another request to release some.
func (b *Budget) reserve(n int64, first bool, deadline time.Time) bool {
	if b.tryReserve(n, first) {
		return true
	}
	wait := b.wait
	if !deadline.IsZero() {
		wait = min(wait, time.Until(deadline))
	}
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		b.mu.Lock()
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		// Counted before trying again: a Release that lands after this
		// try failed sees the count and closes wake (Go's atomics are
		// sequentially consistent), so no wake-up is lost.
		b.nwait.Add(1)
		ok := b.tryReserve(n, first)
		if !ok {
			select {
			case <-wake:
				ok = b.tryReserve(n, first)
			case <-t.C:
				b.nwait.Add(-1)
				return false
			}
		}
		b.nwait.Add(-1)
		if ok {
			return true
		}
	}
}

// Read reads src to its end into memory taken from b. declared is the
// length the request declared (-1: unknown, as for chunked bodies); max is
// the longest body accepted; deadline bounds the wait for memory (reads
// themselves are bounded by the connection's read deadline, which the
// caller sets).
//
// On success the body is one slice and held is the memory it keeps from
// b, to Release once nothing uses the body any more. On error everything
// was released and held is 0. Errors: ErrTooLarge, ErrNoMemory,
// io.ErrUnexpectedEOF when src ends before the declared length, or src's
// own error.
func (b *Budget) Read(src io.Reader, declared, max int64, deadline time.Time) (body []byte, held int64, err error) {
	if declared > max {
		return nil, 0, ErrTooLarge
	}
	// end is how many bytes to read: the declared length, or one more
	// than max when the length is unknown, so a body over it shows.
	end := declared
	if declared < 0 {
		end = max + 1
	}
	if end == 0 {
		return nil, 0, nil
	}
	first := min(end, FirstBuffer)
	if !b.reserve(first, true, deadline) {
		return nil, 0, ErrNoMemory
	}
	held = first
	cur := make([]byte, 0, first)
	var full [][]byte // filled buffers before cur
	received := int64(0)
	fail := func(e error) ([]byte, int64, error) {
		b.Release(held)
		return nil, 0, e
	}
	for received < end {
		if len(cur) == cap(cur) {
			size := min(end-received, Chunk)
			if !b.reserve(size, false, deadline) {
				return fail(ErrNoMemory)
			}
			held += size
			full = append(full, cur)
			cur = make([]byte, 0, size)
		}
		n, rerr := src.Read(cur[len(cur):cap(cur)])
		cur = cur[:len(cur)+n]
		received += int64(n)
		if rerr == io.EOF {
			if declared >= 0 && received < declared {
				return fail(io.ErrUnexpectedEOF)
			}
			break
		}
		if rerr != nil {
			return fail(rerr)
		}
	}
	if declared < 0 && received > max {
		return fail(ErrTooLarge)
	}
	if len(full) == 0 {
		return cur, held, nil
	}
	// Join: the callers forward, store and sign one slice. The copy is
	// reserved before it is made and the buffers released after, so the
	// budget never counts less than is live.
	if !b.reserve(received, false, deadline) {
		return fail(ErrNoMemory)
	}
	body = make([]byte, 0, received)
	for _, f := range full {
		body = append(body, f...)
	}
	body = append(body, cur...)
	b.Release(held)
	return body, received, nil
}
