package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// replicaConfig is the gateway every replica runs: the stage throttle
// (burst 100, refilling one token per 10 s) guards /burst; /quota needs
// the API key whose plan allows 1000 a DAY; /conc allows 5 requests in
// flight. The other levels are high enough never to decide.
func replicaConfig(t *testing.T, redisURL, prefix, backend string) string {
	t.Helper()
	t.Setenv("STATE_TEST_KEY", stateKey)
	path := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, path, `listen: 127.0.0.1:0
admin: "off"
state: {driver: redis, url: "`+redisURL+`", prefix: "`+prefix+`"}
account_throttle: {rate: 1000000, burst: 1000000}
throttle: {rate: 0.1, burst: 100}
usage_plans:
  p:
    quota: {limit: 1000, period: DAY}
    throttle: {rate: 1000000, burst: 1000000}
api_keys: [{name: k, plan: p, value_env: STATE_TEST_KEY}]
routes:
  - {path: /burst, target: "`+backend+`/burst", timeout: 10s}
  - path: /quota
    target: "`+backend+`/quota"
    timeout: 10s
    api_key_required: true
    throttle: {rate: 1000000, burst: 1000000}
  - path: /conc
    target: "`+backend+`/conc"
    timeout: 10s
    throttle: {rate: 1000000, burst: 1000000, max_concurrent: 5}
`)
	return path
}

// peakBackend answers every request, holding /conc ones for hold, and
// records the most /conc requests it ever had in flight at once.
type peakBackend struct {
	hold           time.Duration
	inFlight, peak atomic.Int64
	served         atomic.Int64
}

func (b *peakBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.served.Add(1)
	if r.URL.Path == "/conc" {
		n := b.inFlight.Add(1)
		for {
			p := b.peak.Load()
			if n <= p || b.peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(b.hold) // the backend's work: what the cap protects
		b.inFlight.Add(-1)
	}
	io.WriteString(w, "ok")
}

// hammer sends total requests for path, spread round-robin over the
// replicas by workers concurrent clients, and counts the answers by
// status. It gives up after limit.
func hammer(t *testing.T, replicas []*process, path, key string, total, workers int, limit time.Duration) map[int]int {
	t.Helper()
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: workers},
		Timeout:   limit,
	}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	counts := map[int]int{}
	var next atomic.Int64
	deadline := time.Now().Add(limit)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(total) || time.Now().After(deadline) {
					return
				}
				req, _ := http.NewRequest("GET", "http://"+replicas[i%int64(len(replicas))].addr+path, nil)
				if key != "" {
					req.Header.Set("x-api-key", key)
				}
				code := 0
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				counts[code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if n := sum(counts); n != total {
		t.Fatalf("%s: %d of %d requests answered within %v: %v", path, n, total, limit, counts)
	}
	return counts
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestReplicasShareLimitsOnRedis: replicas share exact limits
// (docs/redis.md#replicas), on real
// `drawbridge serve` processes sharing one redis-server, with 2 and with 4
// replicas: the stage burst of 100 admits 100 (+1 for the refill of a
// slow burst) in total; the 1000/DAY quota admits exactly 1000 of 1600
// concurrent requests; max_concurrent 5 is never exceeded, as counted by
// the backend, while 24 clients push requests through all replicas.
func TestReplicasShareLimitsOnRedis(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	// The same limits on a 3-primary Redis Cluster (all guard keys on
	// the {g} slot: docs/redis.md), with 2 replicas.
	cl := redistest.StartCluster(t, 3, 0, redistest.Options{})
	for _, c := range []struct {
		n   int
		url string
	}{{2, rs.URL()}, {4, rs.URL()}, {2, cl.URL()}} {
		n, name := c.n, fmt.Sprintf("%d replicas", c.n)
		if c.url == cl.URL() {
			name += " on a cluster"
		}
		t.Run(name, func(t *testing.T) {
			b := &peakBackend{hold: 20 * time.Millisecond}
			srv := httptest.NewServer(b)
			defer srv.Close()
			cfg := replicaConfig(t, c.url, fmt.Sprintf("r%d:", n), srv.URL)
			replicas := make([]*process, n)
			for i := range replicas {
				replicas[i] = startServe(t, cfg)
				// The first guarded request dials Redis (on a Cluster,
				// loads the slot map) within the 100 ms budget and may be
				// 503 on a loaded machine: warm up on /conc, whose limits
				// are not counted below.
				for try := 0; ; try++ {
					code, _, _ := timedGet("http://"+replicas[i].addr+"/conc", "")
					if code == 200 {
						break
					}
					if try == 20 {
						t.Fatalf("replica %d: /conc answered %d 20 times", i, code)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}

			burst := hammer(t, replicas, "/burst", "", 300, 24, 60*time.Second)
			if !shared(burst, 300, 100, 1) {
				t.Errorf("stage burst 100: %v, want 100 (±1) 200s and the rest 429", burst)
			}

			quota := hammer(t, replicas, "/quota", stateKey, 1600, 24, 90*time.Second)
			if !shared(quota, 1600, 1000, 0) {
				t.Errorf("quota 1000/DAY: %v, want exactly 1000 200s and 600 429s", quota)
			}

			b.peak.Store(0)
			conc := hammer(t, replicas, "/conc", "", 400, 24, 60*time.Second)
			if p := b.peak.Load(); p > 5 || p < 2 {
				t.Errorf("max_concurrent 5: backend saw a peak of %d in flight (want 2..5; <2 means no contention)", p)
			}
			if conc[200] == 0 || conc[429] == 0 || conc[200]+conc[429]+conc[503] != 400 || conc[503] > 40 {
				t.Errorf("max_concurrent 5: %v, want both 200s and 429s only", conc)
			}
			t.Logf("%d replicas: burst %v, quota %v, conc %v (peak %d)", n, burst, quota, conc, b.peak.Load())
		})
	}
}

// TestRedisKilledMidLoadServe: the failure policy
// (docs/redis.md#failure-policy) on two real
// `drawbridge serve` processes under steady load: Redis SIGKILLed, then
// hung (SIGSTOP, the black-holed case), then back each time. While it is
// down every guarded request is 503 {"message":"Service Unavailable"};
// none takes longer than a second (three store calls at a 100 ms budget
// each; the route timeout is 5 s); after Redis returns both replicas
// serve 200 again without a restart, and neither logged a panic.
func TestRedisKilledMidLoadServe(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	cfg := redisConfig(t, rs.URL(), okBackend(t), "closed")
	replicas := []*process{startServe(t, cfg), startServe(t, cfg)}

	type result struct {
		phase, endPhase int32
		code            int
		body            string
		took            time.Duration
	}
	var phase atomic.Int32 // even: Redis up; odd: down
	var mu sync.Mutex
	var results []result
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := 0; i < 20000; i++ { // bounded; stop ends it long before
				select {
				case <-stop:
					return
				default:
				}
				path := []string{"/t", "/q"}[i%2]
				p := phase.Load()
				code, body, took := timedGet("http://"+replicas[(w+i)%2].addr+path, stateKey)
				mu.Lock()
				results = append(results, result{p, phase.Load(), code, body, took})
				mu.Unlock()
			}
		})
	}
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopLoad()
	// okFrom waits (bounded) until both replicas have answered 200 in
	// phase ph: the load loop is what observes recovery.
	okFrom := func(ph int32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := 0
			for _, r := range results {
				if r.phase == ph && r.endPhase == ph && r.code == 200 {
					n++
				}
			}
			mu.Unlock()
			if n >= 20 {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("phase %d: no recovery within 10s", ph)
	}
	downFor := func(ph int32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := 0
			for _, r := range results {
				if r.phase == ph && r.endPhase == ph {
					n++
				}
			}
			mu.Unlock()
			if n >= 100 {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("phase %d: fewer than 100 requests answered in 10s", ph)
	}

	okFrom(0)
	rs.Kill()
	phase.Store(1)
	downFor(1)
	phase.Store(2)
	rs.Restart()
	okFrom(2)
	rs.Pause()
	phase.Store(3)
	downFor(3)
	phase.Store(4)
	rs.Resume()
	okFrom(4)
	stopLoad()

	var worst time.Duration
	byPhase := map[int32]map[int]int{}
	for _, r := range results {
		worst = max(worst, r.took)
		if r.code != 200 && (r.code != 503 || r.body != `{"message":"Service Unavailable"}`) {
			t.Errorf("phase %d: answer %d %q, want 200 or the 503 body", r.phase, r.code, r.body)
		}
		if r.phase != r.endPhase {
			continue
		}
		if byPhase[r.phase] == nil {
			byPhase[r.phase] = map[int]int{}
		}
		byPhase[r.phase][r.code]++
		if r.phase%2 == 1 && r.code != 503 {
			t.Errorf("phase %d (Redis down): %d, want 503", r.phase, r.code)
		}
	}
	if worst > time.Second {
		t.Errorf("slowest request took %v, want < 1s (route timeout 5s)", worst)
	}
	for _, p := range replicas {
		if strings.Contains(p.logText(), "panic") {
			t.Errorf("a replica logged a panic:\n%s", p.logText())
		}
	}
	t.Logf("answers by phase (0 up, 1 killed, 2 restarted, 3 hung, 4 resumed): %v; slowest %v", byPhase, worst)
}

// shared reports whether n requests against a limit shared by the
// replicas admitted exactly limit of them (+slack for refill), refusing
// the rest with 429. A store call that missed its 100 ms budget on a
// loaded machine answers 503 and may or may not have spent its unit, so
// each 503 may stand for one admission; more than a tenth of 503s, or any
// over-admission, fails.
func shared(got map[int]int, n, limit, slack int) bool {
	ok, refused, failed := got[200], got[429], got[503]
	return ok <= limit+slack && ok+failed >= limit && ok+refused+failed == n && failed <= n/10
}
