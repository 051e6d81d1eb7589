// Package bolt is the embedded store driver (`state.driver: embedded`, the
// default): quota counters persisted in a bbolt file, token buckets and
// concurrency leases in memory (package memory): losing them on restart
// frees slots and refills buckets, which errs toward the client
// (docs/guards.md#state).
//
// Durability of quota counters: Count works on an in-memory copy (no disk
// I/O on the request path) and marks the counter dirty; a background loop
// writes every dirty counter in one bbolt transaction (one fsync) every
// Options.FlushInterval, 500 ms by default. Close stops the loop and writes
// the rest, so a clean restart resumes exactly; SIGKILL or a power cut loses
// the counts since the last completed flush: at most one interval plus one
// commit's duration (well under the 1 s docs/design.md#state promises). bbolt's
// two-phase commit means the file reopens in the old or the new state, never
// torn. A lost count errs toward the client (a few requests more than the
// quota), which API Gateway also allows: its quotas are best-effort targets.
//
// A failed flush (disk full, read-only file system) keeps the counters dirty
// for the next attempt, keeps counting in memory and makes Ready report the
// error, so /readyz turns red while requests keep their quota decisions.
//
// Only one process may open the file: bbolt takes an exclusive lock, and
// Open gives up after Options.Timeout with an error naming the file instead
// of blocking forever (bbolt's default).
package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memory"
)

// Defaults for the zero Options.
const (
	DefaultTimeout       = time.Second
	DefaultFlushInterval = 500 * time.Millisecond
)

// ErrLocked is returned (wrapped, with the file name) by Open when another
// process holds the state file.
var ErrLocked = errors.New("state file is in use by another process")

// Options tune Open. The zero value is ready to use.
type Options struct {
	// Timeout bounds the wait for the file lock. Zero means DefaultTimeout
	// (never bbolt's "wait forever"); negative means do not wait at all.
	Timeout time.Duration
	// FlushInterval is how often dirty quota counters are written: the
	// most a crash can lose. Zero means DefaultFlushInterval.
	FlushInterval time.Duration
	// HealthInterval is how often the store checks that its path still
	// names the file it opened (health.go). Zero means
	// DefaultHealthInterval.
	HealthInterval time.Duration

	healthTick    <-chan time.Time // tests: drives the health loop instead of a ticker
	healthChecked chan<- struct{}  // tests: told after each tick's work
	now           func() time.Time // tests: the health probe's clock
}

// Bucket names and the counter record layout: three big-endian int64
// (period start, first period start, used), Unix seconds for the times.
var (
	quotaBucket = []byte("quota")
	metaBucket  = []byte("meta")
	versionKey  = []byte("version")
	version1    = []byte{1}
)

const recordLen = 24

// Store is the bolt driver. Create it with Open; the zero value is not
// usable.
type Store struct {
	*memory.Store // buckets, leases

	db     *bbolt.DB
	path   string
	closed atomic.Bool

	mu       sync.Mutex // guards counters, flushErr
	counters map[string]*counter
	flushErr error // last flush failure, nil after a success

	flushMu sync.Mutex // serialises flushes (loop and Close)
	batch   []record   // reused by flush; guarded by flushMu

	stop chan struct{}
	done chan struct{}

	health health
}

type counter struct {
	c     store.Counter
	dirty bool
}

type record struct {
	key string
	c   store.Counter
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the state file at path, loads its quota
// counters and starts the flush loop.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		timeout = time.Nanosecond // bbolt treats 0 as forever
	}
	interval := opts.FlushInterval
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open state file %s: %w (gave up after %v; is another drawbridge running?)", path, ErrLocked, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	s := &Store{
		Store:    memory.New(),
		db:       db,
		path:     path,
		counters: make(map[string]*counter),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if err := s.startHealth(opts.HealthInterval, opts.healthTick, opts.healthChecked, opts.now); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	go s.loop(interval)
	return s, nil
}

// load creates the buckets on a new file and reads every counter.
func (s *Store) load() error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		switch v := meta.Get(versionKey); {
		case v == nil:
			if err := meta.Put(versionKey, version1); err != nil {
				return err
			}
		case len(v) != 1 || v[0] != version1[0]:
			return fmt.Errorf("unsupported state format version %v", v)
		}
		qb, err := tx.CreateBucketIfNotExists(quotaBucket)
		if err != nil {
			return err
		}
		return qb.ForEach(func(k, v []byte) error {
			if len(v) != recordLen {
				return fmt.Errorf("quota counter %q: corrupt record of %d bytes", k, len(v))
			}
			// string(k) copies: bytes from bbolt die with the transaction.
			s.counters[string(k)] = &counter{c: decode(v)}
			return nil
		})
	})
}

func decode(v []byte) store.Counter {
	return store.Counter{
		Period: int64(binary.BigEndian.Uint64(v[0:])),
		First:  int64(binary.BigEndian.Uint64(v[8:])),
		Used:   int64(binary.BigEndian.Uint64(v[16:])),
		Seen:   true,
	}
}

func encode(c store.Counter) []byte {
	v := make([]byte, recordLen)
	binary.BigEndian.PutUint64(v[0:], uint64(c.Period))
	binary.BigEndian.PutUint64(v[8:], uint64(c.First))
	binary.BigEndian.PutUint64(v[16:], uint64(c.Used))
	return v
}

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

// DB is the open bbolt file, for other packages that keep their own
// buckets in the same file (the delivery queue), so that the embedded
// driver stays one file under one lock. The Store owns it: callers must
// not close it, and must stop using it before Close.
func (s *Store) DB() *bbolt.DB { return s.db }

// Count implements store.Store on the in-memory copy; see the package doc
// for when it reaches the file.
func (s *Store) Count(_ context.Context, key string, q store.Quota) (store.QuotaResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under mu, which Close holds while setting closed: every count
	// that succeeds happens before Close's final flush.
	if s.closed.Load() {
		return store.QuotaResult{}, fmt.Errorf("count quota: %w", store.ErrClosed)
	}
	e := s.counters[key]
	if e == nil {
		e = new(counter)
		s.counters[key] = e
	}
	before := e.c
	r := e.c.Count(q)
	if e.c != before {
		e.dirty = true
	}
	return r, nil
}

// Usage implements store.Store.
func (s *Store) Usage(_ context.Context, key string, q store.Quota) (store.QuotaResult, error) {
	if s.closed.Load() {
		return store.QuotaResult{}, fmt.Errorf("read quota: %w", store.ErrClosed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var c store.Counter
	if e := s.counters[key]; e != nil {
		c = e.c
	}
	return c.Peek(q), nil
}

func (s *Store) loop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Flush()
		}
	}
}

// Flush writes every dirty quota counter now, in one transaction. The flush
// loop and Close call it; tests and shutdown hooks may too.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	s.batch = s.batch[:0]
	for k, e := range s.counters {
		if e.dirty {
			s.batch = append(s.batch, record{k, e.c})
			e.dirty = false
		}
	}
	s.mu.Unlock()
	if len(s.batch) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		qb := tx.Bucket(quotaBucket)
		for _, r := range s.batch {
			if err := qb.Put([]byte(r.key), encode(r.c)); err != nil {
				return err
			}
		}
		return nil
	})
	s.Committed(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("write quota counters to %s: %w", s.path, err)
		for _, r := range s.batch {
			if e := s.counters[r.key]; e != nil {
				e.dirty = true // retry with whatever value it holds by then
			}
		}
	}
	s.flushErr = err
	return err
}

// Ready implements store.Store: closed, the file lost, the last flush or
// the latest commit failed.
func (s *Store) Ready(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := s.healthErr(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flushErr != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, s.flushErr)
	}
	return nil
}

// Close stops the flush loop, writes every dirty counter and closes the
// file. Buckets and leases are dropped (they are not persisted).
func (s *Store) Close() error {
	s.mu.Lock()
	already := s.closed.Swap(true)
	s.mu.Unlock()
	if already {
		return store.ErrClosed
	}
	close(s.stop)
	<-s.done
	s.stopHealth()
	ferr := s.Flush()
	s.Store.Close()
	if err := s.db.Close(); err != nil {
		return errors.Join(ferr, fmt.Errorf("close state file %s: %w", s.path, err))
	}
	return ferr
}
