package redis_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// The cross-process tests re-run this test binary as worker processes
// (separate OS processes, each with its own Store and connection pool, as
// replicas have) against one redis-server. A worker connects, waits for
// "go" on stdin so all start together, runs its load and prints one line
// of results. The env vars configure it.
//
// Protocol on stdout: "ready" once connected, then after "go" the result.
const (
	envWorker = "DRAWBRIDGE_REDIS_WORKER" // mode: take | count | lease | admit | hold | accept
	envURL    = "DRAWBRIDGE_REDIS_URL"
	envPrefix = "DRAWBRIDGE_REDIS_PREFIX"
	envOps    = "DRAWBRIDGE_REDIS_OPS" // calls per worker process
)

// Shared limits of the cross-process tests.
var (
	burstBucket = store.Bucket{Key: "stage", Rate: 1, Burst: 100}
	dayQuota    = store.Quota{Period: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Limit: 1000}
)

// admitLoad is one guarded request of the "admit" workers: a bucket that
// never refills (burst 300 of 400 requests: exactly 100 throttled), a
// quota of 200 (exactly 100 over quota), and max_concurrent 5 on two caps.
var admitLoad = store.AdmitRequest{
	N:        1,
	Buckets:  []store.Bucket{{Key: "stage", Rate: 0, Burst: 300}},
	QuotaKey: "key",
	Quota:    store.Quota{Period: dayQuota.Period, Limit: 200},
	Caps:     []store.Cap{{Key: "conc:stage", Max: maxConcurrent}, {Key: "conc:route", Max: maxConcurrent}},
	LeaseTTL: leaseTTL,
}

const (
	maxConcurrent = 5
	leaseTTL      = 30 * time.Second
	goroutines    = 4 // per worker process
)

func TestMain(m *testing.M) {
	redis.QuietClientLogs() // dial failures are the point of the fault tests
	if mode := os.Getenv(envWorker); mode != "" {
		if err := worker(mode); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// worker runs one worker process's load and prints
// "ok N refused N max N": calls admitted, refused, and (lease) the highest
// number of lease holders seen at once.
func worker(mode string) error {
	ops, _ := strconv.Atoi(os.Getenv(envOps))
	s, err := redis.New(redis.Options{URL: os.Getenv(envURL), Prefix: os.Getenv(envPrefix), Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Ready(context.Background()); err != nil {
		return err
	}
	raw, err := goredis.ParseURL(os.Getenv(envURL))
	if err != nil {
		return err
	}
	shared := goredis.NewClient(raw) // the "backend" counting lease holders
	defer shared.Close()
	inside := os.Getenv(envPrefix) + "inside"

	if mode == "hold" { // take ops leases, report, then wait to be killed
		for i := 0; i < ops; i++ {
			if _, ok, err := s.Acquire(ctx, "held", 100, 2*time.Second, time.Now()); err != nil || !ok {
				return fmt.Errorf("hold: %v %v", ok, err)
			}
		}
		fmt.Println("held")
		io.Copy(io.Discard, os.Stdin)
		return nil
	}

	if mode == "accept" { // enqueue ops deliveries, claim some, wait to be killed
		q := s.Queue("hooks", redis.QueueOptions{Consumer: "replica-a", MinIdle: time.Minute})
		for i := 0; i < ops; i++ {
			if _, _, err := q.Enqueue(ctx, fmt.Sprintf("delivery-%d", i), []byte(fmt.Sprintf("event %d", i))); err != nil {
				return err
			}
		}
		m, err := q.Claim(ctx, int64(ops/2))
		if err != nil {
			return err
		}
		fmt.Println("claimed", len(m)) // in flight: delivered to the target, never acknowledged
		io.Copy(io.Discard, os.Stdin)
		return nil
	}

	fmt.Println("ready")
	if line, _ := bufio.NewReader(os.Stdin).ReadString('\n'); line != "go\n" {
		return fmt.Errorf("want go, got %q", line)
	}
	var ok, refused, peak atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < ops; i += goroutines {
				var admitted bool
				var err error
				switch mode {
				case "take":
					var r store.TakeResult
					r, err = s.Take(ctx, time.Now(), 1, []store.Bucket{burstBucket})
					admitted = r.OK
				case "count":
					var r store.QuotaResult
					r, err = s.Count(ctx, "key", dayQuota)
					admitted = r.OK
				case "lease":
					var l store.Lease
					l, admitted, err = s.Acquire(ctx, "conc", maxConcurrent, leaseTTL, time.Now())
					if err == nil && admitted {
						n, ierr := shared.Incr(ctx, inside).Result()
						for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
						}
						time.Sleep(time.Millisecond) // the request's work, holding the slot
						if ierr == nil {
							ierr = shared.Decr(ctx, inside).Err()
						}
						err = ierr
						if rerr := s.Release(ctx, l); err == nil {
							err = rerr
						}
					}
				case "admit":
					var r store.AdmitResult
					r, err = s.Admit(ctx, time.Now(), admitLoad)
					admitted = err == nil && r.Refused == store.Admitted
					if err == nil {
						err = shared.HIncrBy(ctx, os.Getenv(envPrefix)+"stages", strconv.Itoa(int(r.Refused)), 1).Err()
					}
					if err == nil && admitted {
						n, ierr := shared.Incr(ctx, inside).Result()
						for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
						}
						time.Sleep(time.Millisecond)
						if ierr == nil {
							ierr = shared.Decr(ctx, inside).Err()
						}
						err = ierr
						for _, l := range r.Leases {
							if rerr := s.Release(ctx, l); err == nil {
								err = rerr
							}
						}
					}
				default:
					err = fmt.Errorf("unknown mode %q", mode)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if admitted {
					ok.Add(1)
				} else {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	fmt.Printf("ok %d refused %d max %d\n", ok.Load(), refused.Load(), peak.Load())
	return nil
}

// result is one worker's line.
type result struct{ ok, refused, max int64 }

// runWorkers starts n worker processes in mode, releases them together and
// returns their results and the time from release to the last exit.
func runWorkers(t *testing.T, srv *redistest.Server, prefix, mode string, n, ops int) ([]result, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
		errb  strings.Builder
	}
	procs := make([]*proc, n)
	for i := range procs {
		p := &proc{cmd: exec.CommandContext(ctx, os.Args[0], "-test.run=^$")}
		p.cmd.Env = append(os.Environ(), envWorker+"="+mode, envURL+"="+srv.URL(), envPrefix+"="+prefix, envOps+"="+strconv.Itoa(ops))
		p.cmd.Stderr = &p.errb
		var err error
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		out, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.out = bufio.NewReader(out)
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = p
	}
	for i, p := range procs {
		if line, _ := p.out.ReadString('\n'); line != "ready\n" {
			p.stdin.Close()
			p.cmd.Wait()
			t.Fatalf("worker %d said %q: %s", i, line, p.errb.String())
		}
	}
	start := time.Now()
	for _, p := range procs {
		io.WriteString(p.stdin, "go\n")
		p.stdin.Close()
	}
	res := make([]result, n)
	lines := make([]string, n)
	for i, p := range procs {
		lines[i], _ = p.out.ReadString('\n')
	}
	took := time.Since(start)
	for i, p := range procs {
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("worker %d: %v\n%s", i, err, p.errb.String())
		}
		if _, err := fmt.Sscanf(lines[i], "ok %d refused %d max %d", &res[i].ok, &res[i].refused, &res[i].max); err != nil {
			t.Fatalf("worker %d printed %q: %v", i, lines[i], err)
		}
	}
	return res, took
}

func sum(rs []result) (ok, refused, max int64) {
	for _, r := range rs {
		ok += r.ok
		refused += r.refused
		max = maxOf(max, r.max)
	}
	return ok, refused, max
}

func maxOf(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// TestReplicasShareLimits: 2 and 4 processes on one Redis. A burst-100
// bucket admits 100 plus what its rate refills while the burst lasts; a
// 1000/DAY quota admits exactly 1000; max_concurrent 5 is never exceeded,
// counted by a shared counter the lease holders increment.
func TestReplicasShareLimits(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	for _, n := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d processes", n), func(t *testing.T) {
			t.Run("burst 100", func(t *testing.T) {
				rs, took := runWorkers(t, srv, fmt.Sprintf("burst%d:", n), "take", n, 400/n)
				ok, refused, _ := sum(rs)
				// Rate 1/s: each second of the run may refill one token.
				refill := int64(took.Seconds()*burstBucket.Rate) + 1
				if ok < burstBucket.Burst || ok > burstBucket.Burst+refill {
					t.Errorf("admitted %d of %d in %v, want %d..%d", ok, ok+refused, took, burstBucket.Burst, burstBucket.Burst+refill)
				}
				t.Logf("admitted %d, refused %d in %v: %v", ok, refused, took, rs)
			})
			t.Run("quota 1000/DAY", func(t *testing.T) {
				prefix := fmt.Sprintf("quota%d:", n)
				rs, took := runWorkers(t, srv, prefix, "count", n, 1600/n)
				ok, refused, _ := sum(rs)
				if ok != dayQuota.Limit || refused != 600 {
					t.Errorf("admitted %d, refused %d; want exactly 1000 and 600", ok, refused)
				}
				s := newStore(t, srv, redis.Options{Prefix: prefix})
				if u, err := s.Usage(ctx, "key", dayQuota); err != nil || u.Used != dayQuota.Limit {
					t.Errorf("Usage = %+v, %v; want 1000 used", u, err)
				}
				t.Logf("admitted %d, refused %d in %v: %v", ok, refused, took, rs)
			})
			t.Run("max_concurrent 5", func(t *testing.T) {
				prefix := fmt.Sprintf("conc%d:", n)
				rs, took := runWorkers(t, srv, prefix, "lease", n, 200)
				ok, refused, peak := sum(rs)
				if peak > maxConcurrent {
					t.Errorf("%d lease holders at once, max_concurrent %d", peak, maxConcurrent)
				}
				if peak < 2 || ok == 0 || refused == 0 {
					t.Errorf("no contention (peak %d, admitted %d, refused %d): the test proves nothing", peak, ok, refused)
				}
				s := newStore(t, srv, redis.Options{Prefix: prefix})
				if n, err := s.InUse(ctx, "conc", time.Now()); err != nil || n != 0 {
					t.Errorf("InUse after all released = %d, %v", n, err)
				}
				t.Logf("peak %d holders; admitted %d, refused %d in %v", peak, ok, refused, took)
			})
		})
	}
}

// TestReplicasShareLimitsAdmit: the same limits through Admit, one script
// per request, from 2 and 4 processes at once: of 400 requests exactly 100
// throttled, exactly 100 over quota, the other 200 admitted or refused by
// max_concurrent, never more than 5 holders at once; afterwards the
// read-only calls see the same state.
func TestReplicasShareLimitsAdmit(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer raw.Close()
	for _, n := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d processes", n), func(t *testing.T) {
			prefix := fmt.Sprintf("admit%d:", n)
			rs, took := runWorkers(t, srv, prefix, "admit", n, 400/n)
			ok, _, peak := sum(rs)
			st, err := raw.HGetAll(ctx, prefix+"stages").Result()
			if err != nil {
				t.Fatal(err)
			}
			get := func(s store.Stage) int64 { v, _ := strconv.ParseInt(st[strconv.Itoa(int(s))], 10, 64); return v }
			if get(store.Throttled) != 100 || get(store.OverQuota) != 100 || get(store.Admitted)+get(store.OverConcurrency) != 200 || get(store.Admitted) != ok {
				t.Errorf("stages %v, admitted %d: want 100 throttled, 100 over quota, 200 admitted or over concurrency", st, ok)
			}
			if peak > maxConcurrent || peak < 2 {
				t.Errorf("peak %d lease holders, want 2..%d", peak, maxConcurrent)
			}
			s := newStore(t, srv, redis.Options{Prefix: prefix})
			if u, err := s.Usage(ctx, "key", admitLoad.Quota); err != nil || u.Used != 200 {
				t.Errorf("Usage = %+v, %v; want 200 used", u, err)
			}
			if v, err := s.Tokens(ctx, time.Now(), admitLoad.Buckets[0]); err != nil || v != 0 {
				t.Errorf("Tokens = %v, %v; want 0", v, err)
			}
			for _, c := range admitLoad.Caps {
				if n, err := s.InUse(ctx, c.Key, time.Now()); err != nil || n != 0 {
					t.Errorf("InUse(%s) after all released = %d, %v", c.Key, n, err)
				}
			}
			t.Logf("stages %v, peak %d, in %v", st, peak, took)
		})
	}
}

// TestCrashedReplicaLeasesExpire: a replica holding leases is killed with
// SIGKILL; its slots stay taken until their ttl passes on the Redis clock,
// then free themselves, with no replica left to release them.
func TestCrashedReplicaLeasesExpire(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	srv := redistest.Start(t, redistest.Options{Frozen: start})
	const prefix = "crash:"
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorker+"=hold", envURL+"="+srv.URL(), envPrefix+"="+prefix, envOps+"=3")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "held\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("worker said %q: %s", line, errb.String())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	s := newStore(t, srv, redis.Options{Prefix: prefix})
	if n, _ := s.InUse(ctx, "held", time.Now()); n != 3 {
		t.Fatalf("InUse right after the crash = %d, want 3", n)
	}
	if _, ok, _ := s.Acquire(ctx, "held", 3, time.Second, time.Now()); ok {
		t.Fatal("acquired a slot the crashed replica still holds")
	}
	srv.SetTime(start.Add(2 * time.Second)) // the leases' ttl
	if n, _ := s.InUse(ctx, "held", time.Now()); n != 0 {
		t.Fatalf("InUse after the ttl = %d, want 0", n)
	}
	if _, ok, _ := s.Acquire(ctx, "held", 3, time.Second, time.Now()); !ok {
		t.Fatal("slots of the crashed replica not reclaimed")
	}
}
