package bolt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/drawbridge/drawbridge/internal/store"
)

// watched is a Store whose health loop runs only when the test ticks it,
// with a clock the test moves, and whose health events the test reads.
type watched struct {
	*Store
	tick    chan time.Time
	checked chan struct{}
	events  chan HealthEvent
	mu      sync.Mutex
	now     time.Time
}

func openWatched(t *testing.T, path string) *watched {
	t.Helper()
	w := &watched{tick: make(chan time.Time), checked: make(chan struct{}), events: make(chan HealthEvent, 10),
		now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	s, err := Open(path, Options{healthTick: w.tick, healthChecked: w.checked, now: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	s.OnHealth(func(ev HealthEvent) { w.events <- ev })
	w.Store = s
	t.Cleanup(func() { s.Close() })
	return w
}

func (w *watched) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *watched) advance(d time.Duration) {
	w.mu.Lock()
	w.now = w.now.Add(d)
	w.mu.Unlock()
}

// runLoop runs one turn of the health loop and waits for it to finish.
func (w *watched) runLoop(t *testing.T) {
	t.Helper()
	select {
	case w.tick <- w.clock():
	case <-time.After(5 * time.Second):
		t.Fatal("health loop not running")
	}
	<-w.checked
}

func (w *watched) event(t *testing.T) HealthEvent {
	t.Helper()
	select {
	case ev := <-w.events:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no health event")
	}
	return HealthEvent{}
}

func (w *watched) noEvent(t *testing.T) {
	t.Helper()
	select {
	case ev := <-w.events:
		t.Fatalf("unexpected health event %+v", ev)
	default:
	}
}

var testBucket = []byte("test")

func put(t *testing.T, db *bbolt.DB, key string) {
	t.Helper()
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(testBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// keys reopens the state file at path as a restart would and lists the
// test bucket.
func keys(t *testing.T, path string) []string {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []string
	s.DB().View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(testBucket); b != nil {
			b.ForEach(func(k, _ []byte) error { out = append(out, string(k)); return nil })
		}
		return nil
	})
	return out
}

// TestFileRemoved: the file is unlinked while open. Writes keep
// succeeding (into the dead inode) until the next health tick, which turns
// Healthy and Ready for good and copies the open file back to its path:
// the restart finds what was written before and after the unlink.
func TestFileRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	w := openWatched(t, path)
	put(t, w.DB(), "before")
	w.runLoop(t)
	if err := w.Healthy(); err != nil {
		t.Fatalf("Healthy before removal: %v", err)
	}
	w.noEvent(t)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	put(t, w.DB(), "after-unlink") // what bbolt alone would lose
	if err := w.Healthy(); err != nil {
		t.Fatalf("Healthy before the tick: %v (only the loop or a write error checks)", err)
	}
	w.runLoop(t)
	err := w.Healthy()
	if !errors.Is(err, ErrFileLost) || !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), path+" was removed") {
		t.Fatalf("Healthy after removal = %v", err)
	}
	if rerr := w.Ready(ctx); !errors.Is(rerr, ErrFileLost) {
		t.Fatalf("Ready = %v", rerr)
	}
	if ev := w.event(t); !ev.Lost || !errors.Is(ev.Err, ErrFileLost) || ev.Rescue != "" {
		t.Fatalf("first event = %+v", ev)
	}
	if ev := w.event(t); ev.Rescue != path || ev.RescueErr != nil {
		t.Fatalf("rescue event = %+v, want a copy at %s", ev, path)
	}
	// Sticky: further ticks, commits and checks change nothing and say
	// nothing more.
	w.Committed(nil)
	w.runLoop(t)
	if !errors.Is(w.CheckFile(), ErrFileLost) {
		t.Fatal("the file is back at its path, but it is a copy: still lost")
	}
	w.noEvent(t)

	// The copy is locked, as a running drawbridge's file is.
	if _, err := Open(path, Options{Timeout: -1}); !errors.Is(err, ErrLocked) {
		t.Fatalf("open the copy while the first store runs: %v, want ErrLocked", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, path); strings.Join(got, ",") != "after-unlink,before" {
		t.Fatalf("after restart: %v, want both keys", got)
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 0 {
		t.Fatalf("left behind: %v", m)
	}
}

// TestCloseChecksFile: a file removed after the last tick is found, and
// copied back, by Close.
func TestCloseChecksFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	w := openWatched(t, path)
	os.Remove(path)
	put(t, w.DB(), "after-unlink")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if ev := w.event(t); !ev.Lost {
		t.Fatalf("event = %+v", ev)
	}
	if ev := w.event(t); ev.Rescue != path {
		t.Fatalf("rescue event = %+v", ev)
	}
	if got := keys(t, path); strings.Join(got, ",") != "after-unlink" {
		t.Fatalf("after restart: %v", got)
	}
}

// TestFileReplaced: another file renamed over the path. It is left alone;
// the open file's content goes beside it.
func TestFileReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	w := openWatched(t, path)
	put(t, w.DB(), "mine")
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	w.runLoop(t)
	if err := w.Healthy(); !errors.Is(err, ErrFileLost) || !strings.Contains(err.Error(), "replaced by another file") {
		t.Fatalf("Healthy = %v", err)
	}
	w.event(t)
	ev := w.event(t)
	if ev.RescueErr != nil || !strings.HasPrefix(ev.Rescue, path+".rescued-") {
		t.Fatalf("rescue event = %+v", ev)
	}
	w.Close()
	if b, _ := os.ReadFile(path); string(b) != "someone else's" {
		t.Fatalf("the replacement was touched: %q", b)
	}
	if got := keys(t, ev.Rescue); strings.Join(got, ",") != "mine" {
		t.Fatalf("copy holds %v", got)
	}
}

// TestWriteErrorChecksAtOnce: a failed commit checks the file without
// waiting for the loop.
func TestWriteErrorChecksAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	w := openWatched(t, path)
	os.Remove(path)
	w.Committed(errors.New("input/output error"))
	if err := w.Healthy(); !errors.Is(err, ErrFileLost) {
		t.Fatalf("Healthy = %v", err)
	}
}

// TestCommitFailure: a failed commit makes Ready fail, but not Healthy
// (each async request still tries, and gets 503 if its own commit fails);
// a success clears it. Without traffic, the loop's probe commit clears it
// once an interval has passed since the last failure.
func TestCommitFailure(t *testing.T) {
	w := openWatched(t, filepath.Join(t.TempDir(), "state.db"))
	full := errors.New("no space left on device")
	w.Committed(full)
	if err := w.Ready(ctx); !errors.Is(err, full) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ready = %v", err)
	}
	if err := w.Healthy(); err != nil {
		t.Fatalf("Healthy = %v", err)
	}
	if ev := w.event(t); ev.Err != full || ev.Lost {
		t.Fatalf("event = %+v", ev)
	}
	w.Committed(full) // still failing: no new event
	w.noEvent(t)
	w.Committed(nil)
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("Ready after a commit succeeded = %v", err)
	}
	if ev := w.event(t); ev.Err != nil {
		t.Fatalf("event = %+v", ev)
	}

	w.Committed(full)
	w.event(t)
	w.advance(DefaultHealthInterval / 2)
	w.runLoop(t) // failure too recent: traffic decides, no probe
	if err := w.Ready(ctx); !errors.Is(err, full) {
		t.Fatalf("Ready = %v", err)
	}
	w.advance(DefaultHealthInterval)
	w.runLoop(t) // idle for an interval: the probe commits, and succeeds
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("Ready after the probe = %v", err)
	}
	if ev := w.event(t); ev.Err != nil {
		t.Fatalf("event = %+v", ev)
	}
}

// BenchmarkAcceptChecks is what an async accept adds on the embedded
// store: Healthy before the commit, Committed and Healthy after it.
func BenchmarkAcceptChecks(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "state.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.Healthy() != nil {
				b.Fatal("unhealthy")
			}
			s.Committed(nil)
			if s.Healthy() != nil {
				b.Fatal("unhealthy")
			}
		}
	})
}
