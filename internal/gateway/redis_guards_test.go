package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/bolt"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// admitYAML: key a's plan throttles (burst 3, next to no refill) and has
// a quota of 2/DAY; key b's plan has a quota of 5/DAY and /slow a
// max_concurrent of 1; /t is throttled and capped but has no quota.
var admitYAML = `
usage_plans:
  p1: {throttle: {rate: 0.000001, burst: 3}, quota: {limit: 2, period: DAY}}
  p2: {quota: {limit: 5, period: DAY}}
api_keys:
  - {name: a, plan: p1, sha256: ` + digest(keyA) + `}
  - {name: b, plan: p2, sha256: ` + digest(keyB) + `}
routes:
  - {path: /a, target: "{T}/a", api_key_required: true}
  - {path: /slow, target: "{T}/slow", api_key_required: true, throttle: {max_concurrent: 1}}
  - {path: /t, target: "{T}/t", throttle: {rate: 1000, burst: 1000, max_concurrent: 10}}
`

// TestAdmitKeepsStepOrder: steps 4-6 are one store.Admit on every driver
// (one script on redis, the separate calls in order on memory and bolt),
// and the gateway's semantics are those of the separate steps
// (docs/guards.md): a quota refusal has taken its token, a throttled
// request is not counted against the quota, a max_concurrent refusal has
// been counted; every lease is released; keys usage reads what Admit wrote.
func TestAdmitKeepsStepOrder(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	drivers := map[string]func(t *testing.T) store.Store{
		"memory": func(*testing.T) store.Store { return memory.New() },
		"bolt": func(t *testing.T) store.Store {
			s, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"redis": func(t *testing.T) store.Store {
			s, err := redis.New(redis.Options{URL: srv.URL(), Prefix: t.Name() + ":", Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, open := range drivers {
		t.Run(name, func(t *testing.T) {
			rs := open(t)
			defer rs.Close()
			testAdmitKeepsStepOrder(t, rs)
		})
	}
}

func testAdmitKeepsStepOrder(t *testing.T, rs store.Store) {
	entered, hold := make(chan struct{}, 1), make(chan struct{})
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-hold
		}
		io.WriteString(w, "ok")
	})
	g, m := buildFor(t, admitYAML, b.URL, Deps{Store: rs}, nil)
	used := func(key string) int64 {
		t.Helper()
		us, err := g.Usage(t.Context(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			if u.Key == key {
				return u.Used
			}
		}
		t.Fatalf("no key %s in usage", key)
		return 0
	}
	// 3 tokens: 2 admitted (the whole quota), 1 taken by the quota
	// refusal; the 4th is throttled and not counted.
	for i, want := range []string{"200 ok", "200 ok", `429 {"message":"Limit Exceeded"}`, `429 {"message":"Too Many Requests"}`} {
		w := send(g, "GET", "/a", "10.1.1.1", withKey(keyA), "")
		if got := strconv.Itoa(w.Code) + " " + w.Body.String(); got != want {
			t.Fatalf("request %d: %s, want %s", i, got, want)
		}
	}
	wantEq(t, "key a quota used", used("a"), int64(2))
	r := httptest.NewRequest("GET", "/a", nil)
	r.Header.Set("X-Api-Key", keyA)
	e := g.Explain(r, nil)
	wantEq(t, "explain reads the bucket Admit emptied", e.Result(), `result: 429 {"message":"Too Many Requests"}`)

	done := make(chan int)
	go func() { done <- send(g, "GET", "/slow", "10.1.1.1", withKey(keyB), "").Code }()
	<-entered
	w := send(g, "GET", "/slow", "10.1.1.1", withKey(keyB), "")
	wantEq(t, "second /slow while the first is held", w.Code, 429)
	wantEq(t, "body", w.Body.String(), `{"message":"Too Many Requests"}`)
	wantEq(t, "key b counted twice (the refused one too)", used("b"), int64(2))
	close(hold)
	wantEq(t, "held /slow", <-done, 200)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := rs.InUse(t.Context(), routeConcPfx+"/slow GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS", time.Now())
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease still held after the request ended: %d, %v", n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantEq(t, "store errors", testutil.ToFloat64(m.StoreErrors), 0.0)
}

// TestRedisAdmitFailurePolicy: Redis killed. The one Admit call fails for
// all three stages at once, and each answers by its own rule: with
// on_error: closed every guarded route is 503; with open a route with
// throttle and max_concurrent but no quota passes (holding no lease),
// and a route with a quota is still 503. One failed call counts one store
// error, whatever number of steps it decided.
func TestRedisAdmitFailurePolicy(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	b := newBackend(t, nil)
	for _, tc := range []struct {
		onError string
		t       int // /t: throttle + max_concurrent
	}{{"closed", 503}, {"open", 200}} {
		t.Run(tc.onError, func(t *testing.T) {
			rs, err := redis.New(redis.Options{URL: srv.URL(), Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			g, m := buildFor(t, "state: {on_error: "+tc.onError+"}\n"+admitYAML, b.URL, Deps{Store: rs}, nil)
			wantEq(t, "/t with Redis up", send(g, "GET", "/t", "10.1.1.1", nil, "").Code, 200)
			wantEq(t, "/slow with Redis up", send(g, "GET", "/slow", "10.1.1.1", withKey(keyB), "").Code, 200)
			srv.Kill()
			defer srv.Restart()
			w := send(g, "GET", "/t", "10.1.1.1", nil, "")
			wantEq(t, "/t with Redis down", w.Code, tc.t)
			wantEq(t, "store errors after /t", testutil.ToFloat64(m.StoreErrors), 1.0)
			w = send(g, "GET", "/slow", "10.1.1.1", withKey(keyB), "")
			wantEq(t, "/slow (quota) with Redis down", w.Code, 503)
			wantEq(t, "503 body", w.Body.String(), `{"message":"Service Unavailable"}`)
			wantEq(t, "store errors after /slow", testutil.ToFloat64(m.StoreErrors), 2.0)
		})
	}
}
