package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// postAsync posts one event to the async route: its status and, for a
// 202, the delivery ID.
func postAsync(addr, guid string) (int, string) {
	req, _ := http.NewRequest("POST", "http://"+addr+"/hooks/push", strings.NewReader("event "+guid))
	req.Header.Set("X-GitHub-Delivery", guid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var v struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v.ID
}

// TestSentinelFailoverServe: two `drawbridge serve` replicas on a
// Sentinel-fronted Redis (primary, replica, three sentinels) under steady
// guarded (/q, a quota) and async (/hooks) load. The primary is
// SIGKILLed; the sentinels promote the replica; guarded requests answer
// 503 for a short window and then 200 again on both gateways without a
// restart. With state.wait_replicas 1, async events are answered 202 only
// once the replica holds them: after the failover, until the crashed
// server is restarted and rejoins as a replica, they are 503 (the sender
// retries); every event ever answered 202 is delivered. The quota counter
// afterwards is compared with the 200s the gateways answered: the
// difference is what the failover lost.
func TestSentinelFailoverServe(t *testing.T) {
	ss := redistest.StartSentinel(t, redistest.Options{})
	hooks := newHookBackend(t)
	t.Setenv("STATE_TEST_KEY", stateKey)
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, `listen: 127.0.0.1:0
admin: "off"
state: {driver: redis, url: "`+ss.URL()+`", prefix: "f:", wait_replicas: 1}
throttle: {rate: 1000000, burst: 1000000}
usage_plans:
  p:
    quota: {limit: 1000000, period: DAY}
    throttle: {rate: 1000000, burst: 1000000}
api_keys: [{name: k, plan: p, value_env: STATE_TEST_KEY}]
routes:
  - {path: /q, target: "`+okBackend(t)+`/q", timeout: 5s, api_key_required: true}
  - {path: /hooks/*, target: "`+hooks.URL+`/ci/", timeout: 1s, delivery: {mode: async}}
`)
	// check reads the durability settings through the sentinels, and
	// warns that without wait_replicas a failover can lose accepted
	// events.
	for _, c := range []struct {
		wait string
		warn bool
	}{{"1", false}, {"0", true}} {
		text, _ := os.ReadFile(cfg)
		p := filepath.Join(t.TempDir(), "check.yaml")
		writeConfig(t, p, strings.Replace(string(text), "wait_replicas: 1", "wait_replicas: "+c.wait, 1))
		var out, errb bytes.Buffer
		if code := Main(context.Background(), []string{"check", "-c", p}, &out, &errb); code != 0 {
			t.Fatalf("check: exit %d: %s", code, errb.String())
		}
		if !strings.Contains(errb.String(), `WARNING: redis: appendonly is "no"`) || strings.Contains(errb.String(), "state.wait_replicas is 0") != c.warn {
			t.Errorf("check with wait_replicas %s: %s", c.wait, errb.String())
		}
	}

	gws := []*process{startServe(t, cfg), startServe(t, cfg)}

	type result struct {
		at   time.Time
		gw   int
		path string
		code int
	}
	var (
		mu       sync.Mutex
		results  []result
		accepted []string // delivery IDs answered 202
		seq      atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				gw := (w + i) % 2
				r := result{gw: gw}
				if w%2 == 0 {
					r.path = "/q"
					r.code, _, _ = timedGet("http://"+gws[gw].addr+"/q", stateKey)
				} else {
					r.path = "/hooks"
					var id string
					r.code, id = postAsync(gws[gw].addr, "ev-"+strconv.FormatInt(seq.Add(1), 10))
					if r.code == 202 {
						mu.Lock()
						accepted = append(accepted, id)
						mu.Unlock()
					}
				}
				r.at = time.Now()
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond) // steady, not a flood: two cores are shared
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()

	// okSince waits until both gateways answered code on path after since.
	okSince := func(path string, code int, since time.Time, within time.Duration) time.Time {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			mu.Lock()
			var first [2]time.Time
			for _, r := range results {
				if r.path == path && r.code == code && r.at.After(since) && first[r.gw].IsZero() {
					first[r.gw] = r.at
				}
			}
			mu.Unlock()
			if !first[0].IsZero() && !first[1].IsZero() {
				return maxTime(first[0], first[1])
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: both gateways not answering %d within %v after %v", path, code, within, since.Format(time.StampMilli))
		return time.Time{}
	}
	okSince("/q", 200, time.Now().Add(-time.Hour), 10*time.Second)
	okSince("/hooks", 202, time.Now().Add(-time.Hour), 10*time.Second)
	time.Sleep(time.Second) // steady load before the crash

	ss.Primary.Kill()
	killed := time.Now()
	guardedBack := okSince("/q", 200, killed.Add(50*time.Millisecond), 20*time.Second)
	// The gateways must have noticed: some guarded request failed.
	mu.Lock()
	var guarded503, last503 = 0, time.Time{}
	for _, r := range results {
		if r.path == "/q" && r.at.After(killed) && r.code != 200 {
			guarded503++
			if r.code != 503 {
				t.Errorf("guarded request during the failover: %d, want 503", r.code)
			}
			last503 = maxTime(last503, r.at)
		}
	}
	mu.Unlock()
	if guarded503 == 0 {
		t.Error("no guarded request failed after the primary was killed")
	}
	window := last503.Sub(killed)
	t.Logf("guarded: %d answers 503 within %v after SIGKILL of the primary; both gateways 200 again %v after it", guarded503, window.Round(time.Millisecond), guardedBack.Sub(killed).Round(time.Millisecond))
	if window > 10*time.Second {
		t.Errorf("503 window %v, want under 10 s", window)
	}
	if got := ss.PrimaryAddr(); got != ss.Replica.Addr {
		t.Errorf("sentinels name %s as primary, want the promoted replica %s", got, ss.Replica.Addr)
	}

	// The crashed server comes back (empty: no persistence in the test)
	// as a replica of the new primary, as an orchestrator restarting it
	// would (the sentinels would also convert it, within about 10 s);
	// async events are answered 202 again.
	ss.Primary.Restart()
	restarted := time.Now()
	host, port, _ := strings.Cut(ss.Replica.Addr, ":")
	if out, err := exec.Command("redis-cli", "-p", strings.TrimPrefix(ss.Primary.Addr, "127.0.0.1:"), "replicaof", host, port).CombinedOutput(); err != nil {
		t.Fatalf("replicaof: %v %s", err, out)
	}
	asyncBack := okSince("/hooks", 202, restarted, 20*time.Second)
	t.Logf("async: 503 from the SIGKILL until the old primary rejoined as a replica, 202 again %v after its restart", asyncBack.Sub(restarted).Round(time.Millisecond))
	okSince("/q", 200, asyncBack, 5*time.Second)
	time.Sleep(time.Second) // steady load after the recovery
	stopLoad()

	mu.Lock()
	ok200, ids := 0, append([]string(nil), accepted...)
	// Answers per path and phase: before the SIGKILL, until async
	// recovered, after.
	codes := map[string]map[int]int{}
	for _, r := range results {
		ph := "before"
		switch {
		case r.at.After(asyncBack):
			ph = "after"
		case r.at.After(killed):
			ph = "failover"
		}
		if codes[r.path+" "+ph] == nil {
			codes[r.path+" "+ph] = map[int]int{}
		}
		codes[r.path+" "+ph][r.code]++
		if r.path == "/q" && r.code == 200 {
			ok200++
		}
	}
	mu.Unlock()
	t.Logf("answers: %v", codes)
	for p, m := range codes {
		for c := range m {
			if c != 200 && c != 202 && c != 503 {
				t.Errorf("%s answered %d (%d times): want only 200/202 and 503", p, c, m[c])
			}
		}
	}
	waitDelivered(t, hooks, ids, 30*time.Second, func() string { return gws[0].logText() + gws[1].logText() })
	hooks.mu.Lock()
	dups := 0
	for _, n := range hooks.answered {
		dups += n - 1
	}
	if len(hooks.bad) > 0 {
		t.Errorf("bad deliveries: %v", hooks.bad)
	}
	hooks.mu.Unlock()
	t.Logf("async: all %d events answered 202 delivered (%d duplicates)", len(ids), dups)

	used := quotaUsed(t, ss.PrimaryAddr(), "f:")
	t.Logf("quota: %d guarded requests answered 200, counter at %d after the failover (difference %d)", ok200, used, int64(ok200)-used)
	if d := int64(ok200) - used; d < 0 || d > 50 {
		t.Errorf("quota counter %d vs %d admitted: difference %d beyond the documented bound", used, ok200, d)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// quotaUsed reads the one quota counter under prefix from the server at
// addr with redis-cli.
func quotaUsed(t *testing.T, addr, prefix string) int64 {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	keys, err := exec.Command("redis-cli", "-h", host, "-p", port, "--scan", "--pattern", prefix+"{g}:q:*").Output()
	if err != nil {
		t.Fatal(err)
	}
	ks := strings.Fields(string(keys))
	if len(ks) != 1 {
		t.Fatalf("quota keys %q, want one", ks)
	}
	out, err := exec.Command("redis-cli", "-h", host, "-p", port, "hget", ks[0], "used").Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("quota used %q: %v", out, err)
	}
	return n
}
