package redis_test

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// faultBudget is the per-call budget of the fault tests, and faultSlack
// what a call may take beyond it on a loaded 2-core machine under -race
// (scheduling, not waiting on Redis). Both are far below what a hang with
// go-redis's defaults costs: 5 s per try, four tries.
const (
	faultBudget = 100 * time.Millisecond
	faultSlack  = 400 * time.Millisecond
)

// load runs the guards' three calls from several goroutines until stop is
// closed (or each has made maxCalls calls), checking that every call either
// succeeds or fails with ErrUnavailable, within the budget.
type load struct {
	ok, unavailable atomic.Int64
	slowest         atomic.Int64 // nanoseconds
	wg              sync.WaitGroup
	stop            chan struct{}
}

func startLoad(t *testing.T, s *redis.Store, workers int) *load {
	const maxCalls = 100000
	l := &load{stop: make(chan struct{})}
	bs := []store.Bucket{{Key: "stage", Rate: 1e6, Burst: 1e6}}
	q := store.Quota{Period: time.Now().UTC().Truncate(24 * time.Hour), Limit: 1 << 40}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; i < maxCalls; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				start := time.Now()
				var err error
				switch i % 3 {
				case 0:
					_, err = s.Take(ctx, start, 1, bs)
				case 1:
					_, err = s.Count(ctx, "k", q)
				case 2:
					var lease store.Lease
					lease, _, err = s.Acquire(ctx, "c", 1<<20, time.Minute, start)
					if err == nil {
						err = s.Release(ctx, lease)
					}
				}
				d := time.Since(start)
				for old := l.slowest.Load(); int64(d) > old && !l.slowest.CompareAndSwap(old, int64(d)); old = l.slowest.Load() {
				}
				switch {
				case err == nil:
					l.ok.Add(1)
				case errors.Is(err, store.ErrUnavailable):
					l.unavailable.Add(1)
					time.Sleep(time.Millisecond) // a refused dial fails at once: don't spin
				default:
					t.Errorf("call %d: %v, want nil or ErrUnavailable", i%3, err)
				}
			}
		}()
	}
	return l
}

// until waits (bounded) for cond, polling: it waits for real processes and
// sockets, never for a throttle.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

// TestRedisKilledMidLoad: SIGKILL the server under load. Calls fail with
// ErrUnavailable within the budget; after a restart on the same port the
// same Store serves again.
func TestRedisKilledMidLoad(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := newStore(t, srv, redis.Options{Timeout: faultBudget})
	l := startLoad(t, s, 8)
	until(t, "calls to succeed", func() bool { return l.ok.Load() >= 300 })
	srv.Kill()
	okAtKill := l.ok.Load()
	until(t, "calls to fail", func() bool { return l.unavailable.Load() >= 300 })
	okWhileDown := l.ok.Load() - okAtKill
	srv.Restart()
	down := l.unavailable.Load()
	start := time.Now()
	until(t, "recovery", func() bool { return l.ok.Load() >= okAtKill+okWhileDown+300 })
	recovered := time.Since(start)
	l.halt()
	if d := time.Duration(l.slowest.Load()); d > faultBudget+faultSlack {
		t.Errorf("slowest call %v, budget %v", d, faultBudget)
	}
	// Calls in flight at the kill may still have been answered.
	if okWhileDown > 8 {
		t.Errorf("%d calls succeeded while Redis was down", okWhileDown)
	}
	t.Logf("ok %d, unavailable %d (%d before restart), slowest %v, recovered %v after restart",
		l.ok.Load(), l.unavailable.Load(), down, time.Duration(l.slowest.Load()), recovered)
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}
}

// TestRedisHung: SIGSTOP the server (connections accepted, nothing
// answered, as a black-holed or swapping Redis). Every call gives up within
// the budget and no goroutines pile up; SIGCONT recovers.
func TestRedisHung(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := newStore(t, srv, redis.Options{Timeout: faultBudget})
	l := startLoad(t, s, 8)
	until(t, "calls to succeed", func() bool { return l.ok.Load() >= 300 })
	before := runtime.NumGoroutine()
	srv.Pause()
	until(t, "calls to fail", func() bool { return l.unavailable.Load() >= 80 })
	during := runtime.NumGoroutine()
	srv.Resume()
	ok := l.ok.Load()
	until(t, "recovery", func() bool { return l.ok.Load() >= ok+300 })
	l.halt()
	if d := time.Duration(l.slowest.Load()); d > faultBudget+faultSlack {
		t.Errorf("slowest call %v, budget %v", d, faultBudget)
	}
	if during > before+20 {
		t.Errorf("goroutines grew from %d to %d while Redis hung", before, during)
	}
	t.Logf("ok %d, unavailable %d, slowest %v, goroutines %d -> %d",
		l.ok.Load(), l.unavailable.Load(), time.Duration(l.slowest.Load()), before, during)
}

// lossyProxy relays TCP between the driver and Redis. While drop is set it
// still delivers requests but swallows Redis's replies and closes the
// client's connection: the script ran, the client never heard (R4). A new
// connection's first reply (the HELLO handshake) always passes, so a
// redialed connection gets far enough to send its command.
type lossyProxy struct {
	ln     net.Listener
	target string
	drop   atomic.Bool
}

func startLossyProxy(t *testing.T, target string) *lossyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(r, c); r.Close() }()
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 32<<10)
				for first := true; ; first = false {
					n, err := r.Read(buf)
					if p.drop.Load() && !first {
						r.Close()
						return
					}
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// TestLostReplyNotRetried: a script whose reply is lost ran once, and the
// driver does not run it again (go-redis would retry three times by
// default, taking four tokens for one request).
func TestLostReplyNotRetried(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := startLossyProxy(t, srv.Addr)
	o := redis.Options{Prefix: "lost:", Timeout: time.Second}
	direct := newStore(t, srv, o)
	o.URL = "redis://" + proxy.ln.Addr().String() + "/0"
	viaProxy, err := redis.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()

	bs := []store.Bucket{{Key: "b", Rate: 0, Burst: 10}}
	q := store.Quota{Period: time.Now().UTC().Truncate(24 * time.Hour), Limit: 10}
	if _, err := viaProxy.Take(ctx, time.Now(), 1, bs); err != nil {
		t.Fatal(err)
	}
	if _, err := viaProxy.Count(ctx, "k", q); err != nil {
		t.Fatal(err)
	}
	admit := store.AdmitRequest{N: 1, Buckets: bs, QuotaKey: "k", Quota: q}
	if _, err := viaProxy.Admit(ctx, time.Now(), admit); err != nil { // loads the script
		t.Fatal(err)
	}
	proxy.drop.Store(true)
	if _, err := viaProxy.Take(ctx, time.Now(), 1, bs); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Take with the reply lost = %v, want ErrUnavailable", err)
	}
	if _, err := viaProxy.Count(ctx, "k", q); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Count with the reply lost = %v, want ErrUnavailable", err)
	}
	if _, err := viaProxy.Admit(ctx, time.Now(), admit); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Admit with the reply lost = %v, want ErrUnavailable", err)
	}
	proxy.drop.Store(false)
	if tok, _ := direct.Tokens(ctx, time.Now(), bs[0]); tok != 6 {
		t.Errorf("tokens after 2 taken (take, admit) and 2 lost = %v, want 6 (each ran once)", tok)
	}
	if u, _ := direct.Usage(ctx, "k", q); u.Used != 4 {
		t.Errorf("quota used after 2 counted (count, admit) and 2 lost = %d, want 4 (each ran once)", u.Used)
	}
	if _, err := viaProxy.Take(ctx, time.Now(), 1, bs); err != nil {
		t.Errorf("Take after the link healed: %v", err)
	}
}
