package bolt

// The state file's health (docs/hardening.md, "The state file under a
// running gateway").
//
// bbolt keeps writing through the file descriptor it opened. If the file is
// unlinked (or another file is renamed over its path) while serve runs,
// every commit, fsync included, still succeeds, but into an inode that the
// next start never sees: each 202 given after that is a lie, and so is
// every 202 given before it for an event still queued. So the store
// compares the file at its path with the one it holds open, every
// Options.HealthInterval and at once after a failed commit. When they
// differ the store is lost for good: Healthy reports why until the process
// restarts (async routes answer 503, /readyz is not ready), and a copy of
// the open file, every queued event in it, is written back to the path (or
// next to it when something else now sits there), so a restart delivers
// what was accepted.
//
// Separately, the outcome of the latest commit: a failed one (disk full, a
// file-size limit, EIO) makes Ready report it until a commit succeeds. The
// delivery queue shares the file and reports its commits through Committed.
// When no commit has been reported for an interval since the failure, the
// health loop tries a small commit of its own, so a gateway taken out of a
// load balancer by its /readyz still notices that the disk has room again.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/drawbridge/drawbridge/internal/store"
)

// DefaultHealthInterval is how often the zero Options check the state file.
const DefaultHealthInterval = time.Second

// ErrFileLost is wrapped by Healthy's error once the state file was removed
// or replaced under the running process.
var ErrFileLost = errors.New("state file lost")

// HealthEvent is a change in the store's health, for the log and metrics.
type HealthEvent struct {
	// Err is why the store is unhealthy; nil when commits work again.
	Err error
	// Lost is true when Err is for good (ErrFileLost): only a restart
	// clears it.
	Lost bool
	// Rescue, on a later event of a lost file, is where the open file's
	// content was copied; RescueErr is set instead when the copy failed.
	Rescue    string
	RescueErr error
}

// health is the Store's watch on its file; see the comment at the top.
type health struct {
	path     string
	opened   os.FileInfo // the file bbolt holds open, as opened
	interval time.Duration
	now      func() time.Time      // the probe's idle test; tests inject one
	tick     <-chan time.Time      // nil: a ticker of interval; tests inject one
	checked  chan<- struct{}       // tests: one send after each tick's work
	lost     atomic.Pointer[error] // set once, never cleared
	failed   atomic.Pointer[error] // latest commit failure; nil after a success
	failedAt atomic.Int64          // when failed was last reported (UnixNano)

	mu     sync.Mutex // serialises hook calls and guards hook, lockFd
	hook   func(HealthEvent)
	lockFd *os.File // the rescued copy, flock'ed until Close

	stop    chan struct{}
	wg      sync.WaitGroup // the loop and a rescue in progress
	spawn   sync.Mutex     // orders a rescue's wg.Add before stopHealth's Wait
	closing bool           // guarded by spawn: no rescue starts any more
	stopped sync.Once
}

func (s *Store) startHealth(interval time.Duration, tick <-chan time.Time, checked chan<- struct{}, now func() time.Time) error {
	// bbolt does not expose its descriptor; the path was opened (and
	// locked) just now, so it names the open file.
	fi, err := os.Stat(s.path)
	if err != nil {
		return err
	}
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	if now == nil {
		now = time.Now
	}
	h := &s.health
	h.path, h.opened, h.interval, h.now, h.tick, h.checked = s.path, fi, interval, now, tick, checked
	h.stop = make(chan struct{})
	h.wg.Add(1)
	go s.healthLoop()
	return nil
}

func (s *Store) healthLoop() {
	h := &s.health
	defer h.wg.Done()
	tick := h.tick
	if tick == nil {
		t := time.NewTicker(h.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-h.stop:
			return
		case <-tick:
			s.CheckFile()
			s.probe()
			if h.checked != nil {
				h.checked <- struct{}{}
			}
		}
	}
}

// stopHealth checks the file one last time, ends the loop and waits for a
// rescue in progress, which reads the DB: call it before the DB closes.
// The last check is for a file removed since the last tick: serve closes
// the store after its listener drained, so that copy misses no 202. Safe
// to call twice.
func (s *Store) stopHealth() {
	h := &s.health
	h.stopped.Do(func() {
		if h.stop != nil {
			s.CheckFile()
		}
		h.spawn.Lock()
		h.closing = true
		h.spawn.Unlock()
		if h.stop != nil {
			close(h.stop)
		}
		h.wg.Wait()
		h.mu.Lock()
		if h.lockFd != nil {
			h.lockFd.Close() // releases the rescued copy's lock
			h.lockFd = nil
		}
		h.mu.Unlock()
	})
}

// OnHealth sets fn to be called, one call at a time, on every change of
// the store's health: the file lost (once), where its copy went (once),
// a commit failing after a success and succeeding after a failure.
func (s *Store) OnHealth(fn func(HealthEvent)) {
	s.health.mu.Lock()
	s.health.hook = fn
	s.health.mu.Unlock()
}

func (h *health) emit(ev HealthEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hook != nil {
		h.hook(ev)
	}
}

// Healthy is nil while the state file at the store's path is the file the
// store opened; after that, an error wrapping ErrFileLost and
// store.ErrUnavailable, until the process restarts. It costs one atomic
// load: async routes call it on every request.
func (s *Store) Healthy() error {
	if p := s.health.lost.Load(); p != nil {
		return *p
	}
	return nil
}

// healthErr is Ready's part: the file lost, or the latest commit failed.
func (s *Store) healthErr() error {
	if err := s.Healthy(); err != nil {
		return err
	}
	if p := s.health.failed.Load(); p != nil {
		return fmt.Errorf("%w: latest commit failed: %w", store.ErrUnavailable, *p)
	}
	return nil
}

// Committed records the outcome of a commit to the state file by one of
// its other users (the delivery queue): a failure makes Ready report it
// until a commit succeeds, and checks the file at once, since a write error
// may be the first sign of a file that went away. A success costs one
// atomic load.
func (s *Store) Committed(err error) {
	h := &s.health
	if err == nil {
		if h.failed.Load() != nil && h.failed.Swap(nil) != nil {
			h.emit(HealthEvent{})
		}
		return
	}
	h.failedAt.Store(h.now().UnixNano())
	e := err // a copy: taking err's address would move it to the heap on every call
	if h.failed.Swap(&e) == nil {
		h.emit(HealthEvent{Err: err})
	}
	s.CheckFile()
}

// CheckFile compares the file at the store's path with the open one now
// and returns Healthy. The health loop calls it every interval.
func (s *Store) CheckFile() error {
	h := &s.health
	if h.lost.Load() != nil {
		return s.Healthy()
	}
	fi, err := os.Stat(h.path)
	var why string
	switch {
	case errors.Is(err, os.ErrNotExist):
		why = "removed"
	case err != nil:
		// Cannot tell (a directory lost its search permission): the file
		// may well be fine, and a wrong verdict needs a restart.
		return nil
	case !os.SameFile(fi, h.opened):
		why = "replaced by another file"
	default:
		return nil
	}
	lost := fmt.Errorf("%w: %w: %s was %s while in use; restart drawbridge", store.ErrUnavailable, ErrFileLost, h.path, why)
	if !h.lost.CompareAndSwap(nil, &lost) {
		return s.Healthy()
	}
	h.emit(HealthEvent{Err: lost, Lost: true})
	h.spawn.Lock()
	defer h.spawn.Unlock()
	if !h.closing { // else the file closes now: too late to copy it
		h.wg.Add(1)
		go s.rescue(why == "removed")
	}
	return lost
}

// probe tries a small commit when the latest reported commit failed and
// none has been reported for an interval since; see the top comment.
func (s *Store) probe() {
	h := &s.health
	if h.failed.Load() == nil || h.lost.Load() != nil {
		return
	}
	if h.now().Sub(time.Unix(0, h.failedAt.Load())) < h.interval {
		return
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(metaBucket).Put(probeKey, []byte(h.now().UTC().Format(time.RFC3339Nano)))
	})
	if err != nil {
		err = fmt.Errorf("write to %s: %w", s.path, err)
	}
	s.Committed(err)
}

var probeKey = []byte("health-probe")

// rescue writes the open file's content where a restart will find it:
// back to the path when it was removed and nothing took its place, else to
// path.rescued-TIME beside it. The copy is a consistent snapshot taken
// after Healthy turned, so it holds every delivery answered 202 (accept
// answers 202 only when Healthy is still nil after the commit). It stays
// locked (as bbolt locks) until Close, so no second drawbridge opens it
// while this one still runs.
func (s *Store) rescue(removed bool) {
	h := &s.health
	defer h.wg.Done()
	dest, f, err := s.writeRescue(removed)
	if err != nil {
		h.emit(HealthEvent{Err: *h.lost.Load(), Lost: true, RescueErr: err})
		return
	}
	h.mu.Lock()
	h.lockFd = f
	h.mu.Unlock()
	h.emit(HealthEvent{Err: *h.lost.Load(), Lost: true, Rescue: dest})
}

func (s *Store) writeRescue(removed bool) (string, *os.File, error) {
	dir, base := filepath.Split(s.path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".rescue-*")
	if err != nil {
		return "", nil, fmt.Errorf("copy state file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // the copy lives on under its final name
	fail := func(err error) (string, *os.File, error) {
		f.Close()
		return "", nil, fmt.Errorf("copy state file to %s: %w", tmp, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fail(err)
	}
	if err := s.db.View(func(tx *bbolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	}); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	// Link, not rename: it never replaces a file that appeared meanwhile.
	dest := s.path
	if !removed || os.Link(tmp, dest) != nil {
		dest = fmt.Sprintf("%s.rescued-%s", s.path, s.health.now().UTC().Format("20060102T150405.000000000Z"))
		if err := os.Link(tmp, dest); err != nil {
			return fail(err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // the new name survives a crash
		d.Close()
	}
	return dest, f, nil
}
