package redis_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

func newClusterStore(t testing.TB, c *redistest.Cluster, o redis.Options) *redis.Store {
	t.Helper()
	o.URL = c.URL()
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("c%d:", prefixes.Add(1))
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	s, err := redis.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestCluster runs against a 3-primary Redis Cluster: the whole store
// contract (every script's keys share the {g} slot), the delivery queue
// with one stream per route on the route's own {d:<route>} slot (three
// routes spread over the primaries), and the durability check on every
// primary.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0, redistest.Options{})

	t.Run("storetest", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			return newClusterStore(t, c, redis.Options{ClientClock: true})
		})
	})

	t.Run("queue", func(t *testing.T) {
		s := newClusterStore(t, c, redis.Options{})
		routes := []string{"hooks", "orders", "github"}
		const per = 50
		want := map[string]bool{}
		for _, r := range routes {
			q := s.Queue(r, redis.QueueOptions{})
			for i := 0; i < per; i++ {
				_, dup, err := q.Enqueue(ctx, fmt.Sprintf("k%d", i), []byte(r+fmt.Sprint(i)))
				if err != nil || dup {
					t.Fatalf("enqueue %s %d: %v %v", r, i, dup, err)
				}
				want[r+fmt.Sprint(i)] = true
			}
			if _, dup, err := q.Enqueue(ctx, "k0", []byte("again")); err != nil || !dup {
				t.Fatalf("dedupe on a cluster: dup %v, %v", dup, err)
			}
		}
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			for _, r := range routes {
				q := s.Queue(r, redis.QueueOptions{Consumer: fmt.Sprintf("w%d", w)})
				wg.Go(func() {
					for {
						ms, err := q.Claim(ctx, 7)
						if err != nil {
							t.Error(err)
							return
						}
						if len(ms) == 0 {
							return
						}
						mu.Lock()
						for _, m := range ms {
							got[string(m.Body)]++
						}
						mu.Unlock()
						for _, m := range ms {
							if err := q.Ack(ctx, m.ID); err != nil {
								t.Error(err)
							}
						}
					}
				})
			}
		}
		wg.Wait()
		for b := range want {
			if got[b] != 1 {
				t.Errorf("%s delivered %d times", b, got[b])
			}
		}
		if len(got) != len(want) {
			t.Errorf("delivered %d distinct entries, want %d", len(got), len(want))
		}

		// Takeover: a consumer that claimed and died; another takes its
		// entries over after MinIdle.
		dead := s.Queue("takeover", redis.QueueOptions{Consumer: "dead", MinIdle: 50 * time.Millisecond})
		dead.Enqueue(ctx, "", []byte("x"))
		if ms, err := dead.Claim(ctx, 1); err != nil || len(ms) != 1 {
			t.Fatalf("claim: %v %v", ms, err)
		}
		time.Sleep(100 * time.Millisecond) // MinIdle is on the Redis clock
		alive := s.Queue("takeover", redis.QueueOptions{Consumer: "alive", MinIdle: 50 * time.Millisecond})
		ms, err := alive.Claim(ctx, 1)
		if err != nil || len(ms) != 1 || ms[0].Deliveries != 2 {
			t.Fatalf("takeover on a cluster: %+v %v", ms, err)
		}

		// The three routes' streams are on more than one primary: the
		// layout spreads queues, not just guard state.
		cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
		defer cc.Close()
		owners := map[string]bool{}
		for _, r := range routes {
			m, err := cc.MasterForKey(ctx, "x{d:"+r+"}:s")
			if err != nil {
				t.Fatal(err)
			}
			owners[m.Options().Addr] = true
		}
		if len(owners) < 2 {
			t.Errorf("streams of %v all on %v", routes, owners)
		}
	})

	t.Run("durability", func(t *testing.T) {
		ws, err := newClusterStore(t, c, redis.Options{}).Durability(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all := strings.Join(ws, "\n")
		for _, want := range []string{`appendonly is "no"`, "state.wait_replicas is 0"} {
			if !strings.Contains(all, want) {
				t.Errorf("cluster durability warnings lack %q:\n%s", want, all)
			}
		}
		if strings.Count(all, "appendonly is") != 1 {
			t.Errorf("one warning per setting, not per primary:\n%s", all)
		}
	})
}

// TestClusterFailover: a 3-primary cluster with a replica each, under a
// steady stream of Admit calls; SIGKILL the primary that holds the {g}
// slot (all guard state). The calls fail (the gateway answers 503) until
// the replica is promoted and the client's slot map names it, then succeed
// again on the same Store: no restart.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1, redistest.Options{})
	s := newClusterStore(t, c, redis.Options{Timeout: 100 * time.Millisecond})
	admit := func() error {
		_, err := s.Admit(ctx, time.Now(), store.AdmitRequest{N: 1, Buckets: []store.Bucket{{Key: "fo", Rate: 1e6, Burst: 1e6}}})
		return err
	}
	if err := admit(); err != nil {
		t.Fatal(err)
	}
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
	defer cc.Close()
	m, err := cc.MasterForKey(ctx, "x{g}:b")
	if err != nil {
		t.Fatal(err)
	}
	victim := c.Server(m.Options().Addr)
	if victim == nil {
		t.Fatalf("no node at %s", m.Options().Addr)
	}
	victim.Kill()
	killed := time.Now()
	var firstErr, recovered time.Time
	failures := 0
	for time.Since(killed) < 15*time.Second {
		if err := admit(); err != nil {
			failures++
			if firstErr.IsZero() {
				firstErr = time.Now()
			}
		} else if failures > 0 {
			recovered = time.Now()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if failures == 0 {
		t.Fatal("no call failed after the {g} primary was killed")
	}
	if recovered.IsZero() {
		t.Fatalf("still failing %v after the primary was killed", time.Since(killed).Round(time.Millisecond))
	}
	t.Logf("{g} primary %s killed: calls failed for %v (%d failures), then succeeded", victim.Addr, recovered.Sub(killed).Round(time.Millisecond), failures)
	for i := 0; i < 20; i++ {
		if err := admit(); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	}
}

// TestClusterSlotMigration: the {g} slot (all guard state) moves to
// another primary while Admit calls run (CLUSTER SETSLOT IMPORTING /
// MIGRATING, MIGRATE, SETSLOT NODE, as redis-cli --cluster reshard does).
// Calls during the move may fail (a script whose keys are split between
// the two nodes gets TRYAGAIN: 503 at the gateway) but none runs twice or
// is lost: afterwards the quota counter, now on the new primary, equals
// the calls that succeeded, and calls keep succeeding on the same Store.
func TestClusterSlotMigration(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0, redistest.Options{})
	s := newClusterStore(t, c, redis.Options{Timeout: time.Second, ClientClock: true})
	q := store.Quota{Period: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Limit: 1 << 40}
	req := store.AdmitRequest{N: 1, QuotaKey: "mig", Quota: q,
		Buckets: []store.Bucket{{Key: "a", Rate: 1e9, Burst: 1e9}, {Key: "b", Rate: 1e9, Burst: 1e9}}}
	now := q.Period.Add(time.Hour)

	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
	defer cc.Close()
	slot, err := cc.ClusterKeySlot(ctx, "x{g}").Result()
	if err != nil {
		t.Fatal(err)
	}
	m, err := cc.MasterForKey(ctx, "x{g}")
	if err != nil {
		t.Fatal(err)
	}
	node := func(addr string) *goredis.Client {
		n := goredis.NewClient(&goredis.Options{Addr: addr})
		t.Cleanup(func() { n.Close() })
		return n
	}
	src := node(m.Options().Addr)
	var dst *goredis.Client
	var all []*goredis.Client
	for _, p := range c.Primaries {
		n := node(p.Addr)
		all = append(all, n)
		if p.Addr != src.Options().Addr && dst == nil {
			dst = n
		}
	}
	srcID, _ := src.Do(ctx, "CLUSTER", "MYID").Text()
	dstID, _ := dst.Do(ctx, "CLUSTER", "MYID").Text()

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r, err := s.Admit(ctx, now, req); err != nil {
					failed.Add(1)
				} else if r.Refused == store.Admitted {
					ok.Add(1)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	host, port, _ := strings.Cut(dst.Options().Addr, ":")
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		must(err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(src.Do(ctx, args...).Err())
		time.Sleep(20 * time.Millisecond) // let calls meet the half-moved slot
	}
	for _, n := range all {
		must(n.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
	}
	before := ok.Load()
	deadline := time.Now().Add(5 * time.Second)
	for ok.Load() < before+50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if ok.Load() < before+50 {
		t.Fatalf("after the move: %d calls succeeded in 5 s", ok.Load()-before)
	}
	// The calls met the half-moved slot: go-redis followed ASK there.
	if info, _ := dst.Info(ctx, "commandstats").Result(); !strings.Contains(info, "cmdstat_asking:") {
		t.Error("no call was redirected with ASK during the move: the test did not exercise it")
	}
	used, err := s.Usage(ctx, "mig", q)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := dst.ClusterCountKeysInSlot(ctx, int(slot)).Result(); n == 0 {
		t.Errorf("the new primary %s holds no key of slot %d", dst.Options().Addr, slot)
	}
	if n, _ := src.ClusterCountKeysInSlot(ctx, int(slot)).Result(); n != 0 {
		t.Errorf("the old primary still holds %d keys of slot %d", n, slot)
	}
	t.Logf("slot %d moved %s -> %s under load: %d calls admitted, %d failed during the move; quota counter %d", slot, src.Options().Addr, dst.Options().Addr, ok.Load(), failed.Load(), used.Used)
	if used.Used != ok.Load() {
		t.Errorf("quota counter %d, want the %d admitted calls", used.Used, ok.Load())
	}
}
