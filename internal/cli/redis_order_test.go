package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// TestRedisOrderAndCoalesce (routing acceptance 4 on the redis driver):
// two replicas share one redis-server; a route with order_by: json:ref
// and coalesce: latest gets 20 pushes to two branches, alternately through
// either replica, while a slow backend holds the first of each branch.
// Per branch the deliveries never overlap and arrive in order, and only
// the first and the newest are delivered; the 16 others are coalesced.
//
// It runs on one redis-server and on a 3-primary Redis Cluster (the
// scripts name the per-key lists under the route's hash tag).
func TestRedisOrderAndCoalesce(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		redisOrderAndCoalesce(t, redistest.Start(t, redistest.Options{}).URL())
	})
	t.Run("cluster", func(t *testing.T) {
		redisOrderAndCoalesce(t, redistest.StartCluster(t, 3, 0, redistest.Options{}).URL())
	})
}

func redisOrderAndCoalesce(t *testing.T, redisURL string) {
	release := make(chan struct{})
	var mu sync.Mutex
	inFlight := map[string]int{}
	var order, problems []string
	started := make(chan string, 100)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v struct {
			Ref string `json:"ref"`
		}
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &v)
		guid := r.Header.Get("X-Github-Delivery")
		mu.Lock()
		if inFlight[v.Ref]++; inFlight[v.Ref] > 1 {
			problems = append(problems, "two deliveries of "+v.Ref+" at once")
		}
		order = append(order, guid)
		mu.Unlock()
		started <- guid
		<-release
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		inFlight[v.Ref]--
		mu.Unlock()
	}))
	defer b.Close()
	defer close(release)
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, `listen: 127.0.0.1:0
admin: 127.0.0.1:0
state: {driver: redis, url: "`+redisURL+`", prefix: "d:"}
routes:
  - path: /hooks/*
    target: `+b.URL+`/ci/
    timeout: 5s
    delivery: {mode: async, order_by: "json:ref", coalesce: latest, concurrency: 2}
`)
	replicas := []*process{startServe(t, cfg), startServe(t, cfg)}
	post := func(i int, branch string, n int) {
		t.Helper()
		guid := fmt.Sprintf("%s-%d", branch, n)
		body := fmt.Sprintf(`{"ref":"refs/heads/%s","after":"%040d"}`, branch, n)
		for try := 0; ; try++ {
			req, _ := http.NewRequest("POST", "http://"+replicas[i%2].addr+"/hooks/push", strings.NewReader(body))
			req.Header.Set("X-GitHub-Delivery", guid)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 202 {
					return
				}
			}
			// A loaded machine can miss the store's budget: 503, which a
			// sender retries (the same GUID dedupes).
			if try == 20 {
				t.Fatalf("post %s: %v %v", guid, resp, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	post(0, "main", 1)
	post(1, "dev", 1)
	for range 2 {
		select {
		case <-started:
		case <-time.After(15 * time.Second):
			t.Fatalf("the first pushes were not delivered together:\n%s", replicas[0].logText())
		}
	}
	for n := 2; n <= 10; n++ {
		post(n, "main", n)
		post(n+1, "dev", n)
	}
	// The redis driver keeps no history: its counts are the gauge's.
	deadline := time.Now().Add(20 * time.Second)
	for gauge(t, replicas[0].admin, "coalesced") != 16 {
		if time.Now().After(deadline) {
			t.Fatalf("coalesced %v, want 16", gauge(t, replicas[0].admin, "coalesced"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 2 {
		release <- struct{}{}
	}
	for range 2 { // the newest of each branch
		select {
		case <-started:
			release <- struct{}{}
		case <-time.After(15 * time.Second):
			t.Fatalf("the newest pushes never came; order %v", order)
		}
	}
	deadline = time.Now().Add(15 * time.Second)
	for gauge(t, replicas[1].admin, "pending") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pending %v, want 0", gauge(t, replicas[1].admin, "pending"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var main, dev []string
	for _, g := range order {
		if strings.HasPrefix(g, "main") {
			main = append(main, g)
		} else {
			dev = append(dev, g)
		}
	}
	if strings.Join(main, ",") != "main-1,main-10" || strings.Join(dev, ",") != "dev-1,dev-10" || len(problems) > 0 {
		t.Errorf("delivered main %v, dev %v, want the first and the newest of each; %v", main, dev, problems)
	}
	if n := gauge(t, replicas[1].admin, "coalesced"); n != 16 {
		t.Errorf("coalesced %v, want 16", n)
	}
}

// gauge reads drawbridge_deliveries{state} from a replica's /metrics
// (refreshed after each scheduling pass of its worker).
func gauge(t *testing.T, admin, state string) float64 {
	t.Helper()
	_, body := get(t, "http://"+admin+"/metrics")
	m := regexp.MustCompile(`(?m)^drawbridge_deliveries\{state="` + state + `"\} (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestRedisFanOut: on the redis driver a route with two targets delivers
// each accepted event to both (a stream per target), through either of
// two replicas.
func TestRedisFanOut(t *testing.T) {
	redisURL := redistest.Start(t, redistest.Options{}).URL()
	ci, chat := newHookBackend(t), newHookBackend(t)
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, `listen: 127.0.0.1:0
admin: 127.0.0.1:0
state: {driver: redis, url: "`+redisURL+`", prefix: "d:"}
routes:
  - path: /hooks/*
    timeout: 2s
    targets:
      - {name: ci, target: `+ci.URL+`/ci/}
      - {name: chat, target: `+chat.URL+`/ci/}
    delivery: {mode: async}
`)
	replicas := []*process{startServe(t, cfg), startServe(t, cfg)}
	var ids []string
	for i := range 10 {
		for try := 0; ; try++ {
			code, id := postAsync(replicas[i%2].addr, fmt.Sprintf("fan-%d", i))
			if code == 202 {
				ids = append(ids, id)
				break
			}
			if try == 20 { // a loaded machine may miss the store's budget: 503, retried
				t.Fatalf("post %d: %d", i, code)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitDelivered(t, ci, ids, 15*time.Second, func() string { return replicas[0].logText() + replicas[1].logText() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		chat.mu.Lock()
		n, bad := len(chat.answered), len(chat.bad)
		chat.mu.Unlock()
		if n == len(ids) && bad == 0 {
			break
		}
		if time.Now().After(deadline) || bad > 0 {
			t.Fatalf("chat answered %d of %d (wrong: %d)", n, len(ids), bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
