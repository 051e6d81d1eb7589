package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"

	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

func redisAsyncConfig(backend, redisURL string) string {
	return `listen: 127.0.0.1:0
admin: 127.0.0.1:0
state: {driver: redis, url: "` + redisURL + `", prefix: "d:"}
routes:
  - path: /hooks/*
    target: ` + backend + `/ci/
    timeout: 1s
    delivery: {mode: async}
`
}

// waitDelivered waits (bounded) until the target has answered every id.
func waitDelivered(t *testing.T, b *hookBackend, ids []string, within time.Duration, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(b.missing(ids)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted events not delivered within %v: %v\n%s", len(b.missing(ids)), len(ids), within, b.missing(ids), logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisDeliveryAcrossReplicas: async routes on Redis
// (docs/redis.md#async-routes-on-redis), on real
// `drawbridge serve` processes sharing one redis-server:
//   - healthy: 40 events posted to two replicas are each delivered exactly
//     once, by whichever worker claimed it;
//   - crash: replica A accepts 10 events, its worker claims the first
//     (the target holds it), A is SIGKILLed; a new replica B delivers the
//     9 A never claimed at once and A's claimed one once it has been idle
//     for the route timeout + streams.TakeoverMargin (3 s). The held
//     attempt was never answered, so no event is answered twice here; a
//     replica killed between the target's 2xx and its Ack would cause one
//     duplicate per entry it had in flight (docs/redis.md).
//
// It runs on one redis-server and on a 3-primary Redis Cluster (the
// route's stream on its {d:<route>} slot: docs/redis.md).
func TestRedisDeliveryAcrossReplicas(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		deliveryAcrossReplicas(t, redistest.Start(t, redistest.Options{}).URL())
	})
	t.Run("cluster", func(t *testing.T) {
		deliveryAcrossReplicas(t, redistest.StartCluster(t, 3, 0, redistest.Options{}).URL())
	})
}

func deliveryAcrossReplicas(t *testing.T, redisURL string) {
	b := newHookBackend(t)
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, redisAsyncConfig(b.URL, redisURL))

	a, other := startServe(t, cfg), startServe(t, cfg)
	var healthy []string
	// A gateway's first enqueue dials Redis and, on a Cluster, loads the
	// slot map, all within the 100 ms budget: on a loaded machine (-race)
	// it may answer 503, which a sender retries. Warm each one up first.
	for i, p := range []*process{a, other} {
		for try := 0; ; try++ {
			code, id := postAsync(p.addr, fmt.Sprintf("warm-%d-%d", i, try))
			if code == 202 {
				healthy = append(healthy, id)
				break
			}
			if try == 20 {
				t.Fatalf("gateway %d: no 202 in 20 tries (last %d):\n%s", i, code, p.logText())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			id := postEvent(t, []*process{a, other}[i%2].addr, fmt.Sprintf("healthy-%d", i))
			mu.Lock()
			healthy = append(healthy, id)
			mu.Unlock()
		})
	}
	wg.Wait()
	waitDelivered(t, b, healthy, 15*time.Second, func() string { return a.logText() + other.logText() })
	b.mu.Lock()
	for id, n := range b.answered {
		if n != 1 {
			t.Errorf("healthy replicas: %s delivered %d times, want once", id, n)
		}
	}
	b.mu.Unlock()
	other.cmd.Process.Signal(syscall.SIGTERM)
	other.cmd.Wait()

	b.hold.Store(true)
	var crash []string
	for i := range 10 {
		crash = append(crash, postEvent(t, a.addr, fmt.Sprintf("crash-%d", i)))
	}
	select {
	case <-b.entered:
	case <-time.After(5 * time.Second):
		t.Fatalf("replica A started no delivery:\n%s", a.logText())
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	b.hold.Store(false)

	start := time.Now()
	replicaB := startServe(t, cfg)
	waitDelivered(t, b, crash, 20*time.Second, replicaB.logText)
	took := time.Since(start)
	if took < 2*time.Second {
		t.Errorf("A's claimed event delivered after %v: taken over before its MinIdle (3s)", took)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	dups := 0
	for _, n := range b.answered {
		dups += n - 1
	}
	if dups != 0 || len(b.bad) > 0 {
		t.Errorf("%d duplicate deliveries, wrong requests %v", dups, b.bad)
	}
	t.Logf("healthy: %d events once each; crash: %d events accepted by A, all delivered by B within %v", len(healthy), len(crash), took.Round(time.Millisecond))
}

// TestDeliveriesOnRedis: `drawbridge deliveries` on state.driver redis
// reads the shared streams itself, with serve running: a 400 dead-letters
// an event; list and show find it (headers redacted); replay puts it back
// and serve's worker delivers it; a purge of dead letters then finds none.
func TestDeliveriesOnRedis(t *testing.T) {
	b, code, hits := statusTarget(t, 400)
	srv := redistest.Start(t, redistest.Options{})
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, redisAsyncConfig(b.URL, srv.URL()))
	p := startServe(t, cfg)
	id := postEvent(t, p.addr, "guid-1")

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 15 s\n%s", what, p.logText())
			}
		}
	}
	waitFor("dead-lettered", func() bool {
		_, out, _ := cli("deliveries", "-c", cfg, "list", "--state", "dead", "--json")
		return strings.Contains(out, `"state": "dead"`)
	})
	c, out, errOut := cli("deliveries", "-c", cfg, "list", "--state", "dead", "--json")
	var ds []delivery.Delivery
	if err := json.Unmarshal([]byte(out), &ds); c != 0 || err != nil || len(ds) != 1 || ds[0].Route != "/hooks/*" {
		t.Fatalf("list: %d %v %s %s", c, err, out, errOut)
	}
	dead := ds[0].ID
	if c, out, errOut := cli("deliveries", "-c", cfg, "show", dead); c != 0 || !strings.Contains(out, "state:     dead") || !strings.Contains(out, "guid-1") {
		t.Fatalf("show %s: %d %s %s", dead, c, out, errOut)
	}
	if c, _, errOut := cli("deliveries", "-c", cfg, "show", id); c == 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("show of the 202 id, which left the stream: %d %s", c, errOut)
	}
	code.Store(200)
	if c, out, errOut := cli("deliveries", "-c", cfg, "replay", dead); c != 0 || strings.TrimSpace(out) != "replayed "+dead {
		t.Fatalf("replay: %d %q %q", c, out, errOut)
	}
	waitFor("delivered after the replay", func() bool { return hits.Load() == 2 })
	waitFor("the stream emptied", func() bool {
		_, out, _ := cli("deliveries", "-c", cfg, "list", "--json")
		return strings.TrimSpace(out) == "[]" || strings.TrimSpace(out) == "null"
	})
	if c, out, errOut := cli("deliveries", "-c", cfg, "purge", "--dead", "--older-than", "0s"); c != 0 || strings.TrimSpace(out) != "purged 0 dead deliveries" {
		t.Fatalf("purge: %d %q %q", c, out, errOut)
	}
}
