package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// redisConfig writes a gateway on the redis driver at url: /t guarded by
// the stage throttle and max_concurrent, /q by an API key whose plan has a
// quota; /hooks/* is async.
func redisConfig(t *testing.T, url, backend, onError string) string {
	t.Helper()
	t.Setenv("STATE_TEST_KEY", stateKey)
	path := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, path, `listen: 127.0.0.1:0
admin: 127.0.0.1:0
state: {driver: redis, url: "`+url+`", prefix: "t:", on_error: `+onError+`}
throttle: {rate: 100000, burst: 100000, max_concurrent: 50}
usage_plans:
  p:
    quota: {limit: 1000, period: DAY}
api_keys: [{name: k, plan: p, value_env: STATE_TEST_KEY}]
routes:
  - {path: /t, target: "`+backend+`/t", timeout: 5s}
  - {path: /q, target: "`+backend+`/q", timeout: 5s, api_key_required: true}
  - {path: /hooks/*, target: "`+backend+`/h/", timeout: 5s, delivery: {mode: async}}
`)
	return path
}

// timedGet is one request with its status, body and duration; a transport
// error is status 0.
func timedGet(url string, key string) (int, string, time.Duration) {
	return timedDo("GET", url, key)
}

// timedDo is timedGet for any method (a POST carries an empty body).
func timedDo(method, url string, key string) (int, string, time.Duration) {
	req, _ := http.NewRequest(method, url, nil)
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error(), time.Since(start)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), time.Since(start)
}

// metricValue reads one unlabelled sample from the admin /metrics.
func metricValue(t *testing.T, admin, name string) float64 {
	t.Helper()
	_, body := get(t, "http://"+admin+"/metrics")
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestRedisStoreFailurePolicy: serve on the redis driver. It logs the
// server's durability warning (redistest runs without AOF). With Redis up
// the guards pass; with Redis killed every guarded request is 503
// {"message":"Service Unavailable"} within the per-call budget (outcome
// unavailable, counted in drawbridge_state_errors_total), except that
// on_error: open lets throttled routes through (never the quota, never an
// async route's 202);
// /readyz is 503 naming the store under both settings; an unguarded
// route never touches Redis. Redis restarted: traffic and readiness
// recover without restarting the gateway.
func TestRedisStoreFailurePolicy(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	backend := okBackend(t)
	for _, tc := range []struct {
		onError  string
		throttle int // /t while Redis is down
	}{
		{"closed", 503},
		{"open", 200},
	} {
		t.Run(tc.onError, func(t *testing.T) {
			cfg, err := config.Load(redisConfig(t, rs.URL(), backend, tc.onError))
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			s, err := start(cfg, slog.New(slog.NewJSONHandler(&logs, nil)), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown()
			base := "http://" + s.Addr()
			for _, p := range []string{"/t", "/q"} {
				if code, body, _ := timedGet(base+p, stateKey); code != 200 {
					t.Fatalf("%s with Redis up = %d %s", p, code, body)
				}
			}
			if code, body, _ := timedDo("POST", base+"/hooks/x", ""); code != 202 {
				t.Fatalf("async route with Redis up = %d %s", code, body)
			}
			if code, body := get(t, "http://"+s.AdminAddr()+"/readyz"); code != 200 {
				t.Fatalf("readyz with Redis up = %d %s", code, body)
			}
			if !strings.Contains(logs.String(), "redis: appendonly is") {
				t.Errorf("serve did not log the durability warning:\n%s", logs.String())
			}
			before := metricValue(t, s.AdminAddr(), "drawbridge_state_errors_total")

			rs.Kill()
			for _, c := range []struct {
				method, path string
				want         int
			}{{"GET", "/t", tc.throttle}, {"GET", "/q", 503}, {"POST", "/hooks/x", 503}} {
				code, body, took := timedDo(c.method, base+c.path, stateKey)
				if code != c.want {
					t.Errorf("%s with Redis down = %d %s, want %d", c.path, code, body, c.want)
				}
				if code == 503 && body != `{"message":"Service Unavailable"}` {
					t.Errorf("%s 503 body = %s", c.path, body)
				}
				// Three store calls at most, each bounded by the 100 ms
				// budget (a refused dial fails at once).
				if took > time.Second {
					t.Errorf("%s with Redis down took %v, want < 1s", c.path, took)
				}
			}
			if after := metricValue(t, s.AdminAddr(), "drawbridge_state_errors_total"); after <= before {
				t.Errorf("drawbridge_state_errors_total %v -> %v: store errors not counted", before, after)
			}
			if code, body := get(t, "http://"+s.AdminAddr()+"/readyz"); code != 503 || !strings.Contains(body, "state store") {
				t.Errorf("readyz with Redis down = %d %s", code, body)
			}
			if !strings.Contains(logs.String(), `"outcome":"unavailable"`) {
				t.Errorf("no unavailable outcome in the access log:\n%s", logs.String())
			}

			rs.Restart()
			deadline := time.Now().Add(10 * time.Second)
			for {
				ct, _, _ := timedGet(base+"/t", stateKey)
				cq, _, _ := timedGet(base+"/q", stateKey)
				if ct == 200 && cq == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after Redis restart /t = %d, /q = %d for 10s: no recovery", ct, cq)
				}
				time.Sleep(50 * time.Millisecond) // the pool redials about once a second
			}
			if code, body := get(t, "http://"+s.AdminAddr()+"/readyz"); code != 200 {
				t.Errorf("readyz after Redis restart = %d %s", code, body)
			}
		})
	}
}

// TestRedisDownAtStart: serve starts while Redis is unreachable (the
// driver connects lazily), answers 503 and reports not ready.
func TestRedisDownAtStart(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rs.Kill()
	cfg, err := config.Load(redisConfig(t, rs.URL(), okBackend(t), "closed"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := start(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("serve with Redis down at start: %v", err)
	}
	defer s.Shutdown()
	if code, body, _ := timedGet("http://"+s.Addr()+"/t", ""); code != 503 || body != `{"message":"Service Unavailable"}` {
		t.Errorf("/t = %d %s, want 503", code, body)
	}
	if code, _ := get(t, "http://"+s.AdminAddr()+"/readyz"); code != 503 {
		t.Errorf("readyz = %d, want 503", code)
	}
}

// TestCheckRedisDurability: check prints the driver's durability warnings
// when it reaches the server, a note (not an error) when it cannot, fails
// on a state.url serve would refuse, and never prints the URL's password.
func TestCheckRedisDurability(t *testing.T) {
	risky := redistest.Start(t, redistest.Options{})
	safe := redistest.Start(t, redistest.Options{})
	c := goredis.NewClient(&goredis.Options{Addr: safe.Addr})
	defer c.Close()
	// redistest starts with --appendonly no on the command line, which
	// outranks its config file: set the safe values at run time.
	for _, kv := range [][2]string{{"appendonly", "yes"}, {"appendfsync", "always"}, {"maxmemory-policy", "noeviction"}} {
		if err := c.ConfigSet(context.Background(), kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	down := redistest.Start(t, redistest.Options{})
	down.Kill()
	withPassword := strings.Replace(down.URL(), "redis://", "redis://u:hunter2@", 1)
	for _, tc := range []struct {
		name, url string
		exit      int
		want      []string
		not       []string
	}{
		{"malformed url", "redis://u:hunter2@[::1/0", 1, []string{"state.url: missing ']' in host"}, []string{"hunter2"}},
		{"risky", risky.URL(), 0, []string{"WARNING: redis: appendonly is \"no\"", "set appendonly yes and appendfsync always"}, []string{"note: redis"}},
		{"safe", safe.URL(), 0, nil, []string{"WARNING", "note: redis"}},
		{"unreachable", withPassword, 0, []string{"note: redis at " + down.Addr + " is not reachable", "durability not checked"}, []string{"hunter2", "WARNING"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := redisConfig(t, tc.url, "http://127.0.0.1:9", "closed")
			var out, errb bytes.Buffer
			code := Main(context.Background(), []string{"check", "-c", path}, &out, &errb)
			if code != tc.exit {
				t.Fatalf("check exit %d, want %d: %s%s", code, tc.exit, out.String(), errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("check stderr lacks %q:\n%s", w, errb.String())
				}
			}
			for _, w := range tc.not {
				if strings.Contains(errb.String(), w) {
					t.Errorf("check stderr has %q:\n%s", w, errb.String())
				}
			}
		})
	}
}

// TestGatewaysFollowRedisClock: gateways use the Redis server's clock
// (docs/redis.md#time-source), at gateway level:
// two serve instances whose clocks disagree by a day share one Redis whose
// clock the test moves. The quota period and the throttle refill follow
// the Redis clock: the replica already in tomorrow gets no fresh quota
// until Redis reaches midnight, and a bucket emptied through one replica
// does not refill because the other replica's clock is hours ahead.
func TestGatewaysFollowRedisClock(t *testing.T) {
	day := time.Date(2026, 12, 1, 23, 59, 50, 0, time.UTC)
	rs := redistest.Start(t, redistest.Options{Frozen: day})
	t.Setenv("STATE_TEST_KEY", stateKey)
	path := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, path, `listen: 127.0.0.1:0
admin: "off"
state: {driver: redis, url: "`+rs.URL()+`"}
usage_plans:
  p: {quota: {limit: 3, period: DAY}}
api_keys: [{name: k, plan: p, value_env: STATE_TEST_KEY}]
routes:
  - {path: /q, target: "`+okBackend(t)+`/q", api_key_required: true}
  - {path: /t, target: "`+okBackend(t)+`/t", throttle: {rate: 0.001, burst: 2}}
`)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(now time.Time) string {
		s, err := start(cfg, slog.New(slog.DiscardHandler), func() time.Time { return now })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown() })
		return "http://" + s.Addr()
	}
	behind := serve(day)                    // today, as Redis
	ahead := serve(day.Add(20 * time.Hour)) // tomorrow already
	want := func(url, key string, code int) {
		t.Helper()
		if got, body, _ := timedGet(url, key); got != code {
			t.Errorf("GET %s = %d %s, want %d", url, got, body, code)
		}
	}
	for range 3 {
		want(behind+"/q", stateKey, 200)
	}
	want(behind+"/q", stateKey, 429)
	want(ahead+"/q", stateKey, 429) // its day has begun, Redis's has not

	want(behind+"/t", "", 200)
	want(ahead+"/t", "", 200)
	want(ahead+"/t", "", 429) // 20 h ahead, yet no refill: Redis time

	rs.SetTime(day.Add(11 * time.Second)) // 00:00:01 tomorrow on Redis
	want(ahead+"/q", stateKey, 200)
	want(behind+"/q", stateKey, 200) // counts against the period Redis holds
}
