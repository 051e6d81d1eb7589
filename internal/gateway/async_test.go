package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bbolt "go.etcd.io/bbolt"
)

type asyncFixture struct {
	url    string
	m      *metrics.Metrics
	db     *bbolt.DB
	q      *delivery.Queue
	w      *delivery.Worker
	clock  *clock
	target string // host:port of the (initially down) backend
}

// asyncGateway serves yaml (with {T} replaced by a backend address where
// nothing listens yet) with a real bbolt queue and a worker on a step
// clock.
func asyncGateway(t *testing.T, yaml string) *asyncFixture {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &asyncFixture{target: l.Addr().String(), clock: newClock("2026-05-01T00:00:00Z")}
	l.Close() // the backend is down
	yaml = strings.ReplaceAll(yaml, "{T}", "http://"+f.target)
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	f.db, err = bbolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	if f.q, err = delivery.Open(f.db, delivery.Options{Clock: f.clock}); err != nil {
		t.Fatal(err)
	}
	f.w = delivery.NewWorker(f.q, delivery.WorkerOptions{Clock: f.clock, Rand: func(int64) int64 { return 0 }})
	f.w.SetPolicies(delivery.Policies(cfg))
	t.Cleanup(f.w.Close)
	f.m = metrics.New()
	g, err := Build(cfg, Deps{Metrics: f.m, Queue: f.q, Store: memory.New()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	f.url = srv.URL
	return f
}

// backendUp starts a recording backend on the fixture's target address.
func (f *asyncFixture) backendUp(t *testing.T) *backend {
	t.Helper()
	l, err := net.Listen("tcp", f.target)
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, nil)
	b.Server.Close()
	b.Server = httptest.NewUnstartedServer(b.Server.Config.Handler)
	b.Server.Listener = l
	b.Server.Start()
	t.Cleanup(b.Server.Close)
	return b
}

const asyncYAML = `
routes:
  - path: /hooks/*
    target: {T}/ci/
    delivery: {mode: async, retry: {base: 1s, max: 1m}}
`

func acceptedID(t *testing.T, resp *http.Response, body []byte) string {
	t.Helper()
	var v struct{ Message, ID string }
	if resp.StatusCode != 202 || json.Unmarshal(body, &v) != nil || v.Message != "Accepted" || len(v.ID) != delivery.IDLen {
		t.Fatalf("answer %d %s, want 202 {\"message\":\"Accepted\",\"id\":...}", resp.StatusCode, body)
	}
	if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("x-amzn-RequestId") == "" {
		t.Errorf("202 headers: %v", resp.Header)
	}
	return v.ID
}

// TestAsyncBackendDown (acceptance 2): with the backend down the gateway
// answers 202 with an id; once the backend is up the request arrives
// exactly once, with the same method, path, query, headers and body bytes;
// a duplicate delivery id gets the same id and no second delivery.
func TestAsyncBackendDown(t *testing.T) {
	f := asyncGateway(t, asyncYAML)
	body := []byte("{\"ref\":\"refs/heads/main\"}\x00\xff")
	send := func() (*http.Response, []byte) {
		req := mustReq("POST", f.url+"/hooks/build/a%20b?x=1&y=%2F&x=2", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256=abc")
		req.Header.Set("X-Api-Key", "secret-key")
		req.Header.Set("Connection", "X-Hop")
		req.Header.Set("X-Hop", "dropped")
		req.Header["X-Multi"] = []string{"1", "2"}
		return do(t, req)
	}
	resp, b := send()
	id := acceptedID(t, resp, b)
	reqID := resp.Header.Get("x-amzn-RequestId")

	if n, _ := f.w.RunOnce(context.Background()); n != 1 {
		t.Fatalf("attempts while down = %d, want 1", n)
	}
	if d, _ := f.q.Get(id); d.State != delivery.Pending || d.Attempts[0].Error == "" {
		t.Fatalf("after a refused attempt: %+v", d)
	}
	// The sender retries the same event while we wait.
	resp, b = send()
	if again := acceptedID(t, resp, b); again != id {
		t.Errorf("duplicate got id %s, want %s", again, id)
	}

	be := f.backendUp(t)
	f.clock.Add(time.Minute)
	f.w.RunOnce(context.Background())
	f.clock.Add(time.Hour)
	f.w.RunOnce(context.Background())
	got := be.requests()
	if len(got) != 1 {
		t.Fatalf("backend saw %d requests, want exactly 1", len(got))
	}
	r := got[0]
	wantEq(t, "method", r.Method, "POST")
	wantEq(t, "request-target", r.RequestURI, "/ci/build/a%20b?x=1&y=%2F&x=2")
	wantEq(t, "host", r.Host, f.target)
	if !bytes.Equal(r.Body, body) {
		t.Errorf("body = %q, want %q", r.Body, body)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json", "X-Github-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		"X-Github-Event": "push", "X-Hub-Signature-256": "sha256=abc", "X-Multi": "1,2",
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Request-Id": reqID,
		"X-Drawbridge-Delivery": id, "X-Api-Key": "", "X-Hop": "", "Connection": "",
	} {
		wantEq(t, "header "+k, strings.Join(r.Header[k], ","), want)
	}
	if d, _ := f.q.Get(id); d.State != delivery.Delivered {
		t.Errorf("state = %s, want delivered", d.State)
	}
	if n := testutil.ToFloat64(f.m.Requests.WithLabelValues("/hooks/*", "POST", "accepted")); n != 2 {
		t.Errorf("accepted counter = %v, want 2", n)
	}
}

// TestAsyncStoreFailure: if the queue cannot persist, the sender gets 503
// (and keeps its event), never a 202.
func TestAsyncStoreFailure(t *testing.T) {
	f := asyncGateway(t, asyncYAML)
	f.db.Close()
	resp, b := do(t, mustReq("POST", f.url+"/hooks/x", strings.NewReader("{}")))
	wantEq(t, "status", resp.StatusCode, 503)
	wantEq(t, "body", string(b), `{"message":"Service Unavailable"}`)
}

func TestAsyncNoQueue(t *testing.T) {
	url, _ := gatewayFor(t, asyncYAML, "http://127.0.0.1:1")
	resp, b := do(t, mustReq("POST", url+"/hooks/x", strings.NewReader("{}")))
	wantEq(t, "status", resp.StatusCode, 503)
	wantEq(t, "body", string(b), `{"message":"Service Unavailable"}`)
}

// TestAsyncRedisBuilds: async routes build on state.driver redis (cli
// gives them the shared Redis Streams queue, internal/delivery/streams).
func TestAsyncRedisBuilds(t *testing.T) {
	cfg, err := config.Parse("r.yaml", []byte("state: {driver: redis, url: \"redis://127.0.0.1:6379/0\"}\n"+strings.ReplaceAll(asyncYAML, "{T}", "http://127.0.0.1:1")), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(cfg, Deps{Metrics: metrics.New(), Store: memory.New()})
	if err != nil {
		t.Fatalf("Build = %v", err)
	}
	g.Close()
}

func TestAsyncKey(t *testing.T) {
	long := strings.Repeat("k", delivery.MaxKeyBytes+1)
	cases := []struct {
		name, idHeader, provider string
		header                   http.Header
		body                     string
		want                     string
	}{
		{"github default", "", "", http.Header{"X-Github-Delivery": {"g1"}}, "", "g1"},
		{"gitlab idempotency first", "", "", http.Header{"X-Gitlab-Event-Uuid": {"u"}, "Idempotency-Key": {"i"}}, "", "i"},
		{"gitlab uuid", "", "", http.Header{"X-Gitlab-Event-Uuid": {"u"}}, "", "u"},
		{"standard", "", "", http.Header{"Webhook-Id": {"msg_1"}}, "", "msg_1"},
		{"none", "", "", http.Header{"X-Other": {"x"}}, "", ""},
		{"id_header wins", "X-Event", "", http.Header{"X-Event": {"e"}, "X-Github-Delivery": {"g"}}, "", "e"},
		{"id_header missing: no key", "X-Event", "", http.Header{"X-Github-Delivery": {"g"}}, "", ""},
		{"stripe body id", "", "stripe", http.Header{"Idempotency-Key": {"i"}}, `{"id":"evt_1","object":"event"}`, "evt_1"},
		{"stripe no id: defaults", "", "stripe", http.Header{"Idempotency-Key": {"i"}}, `{}`, "i"},
		{"long key hashed", "", "", http.Header{"X-Github-Delivery": {long}}, "", "sha256:"},
	}
	for _, c := range cases {
		a := &asyncRoute{idHeader: c.idHeader, provider: c.provider}
		got := a.key(c.header, []byte(c.body))
		if got != c.want && !(strings.HasSuffix(c.want, ":") && strings.HasPrefix(got, c.want) && len(got) == 71) {
			t.Errorf("%s: key = %q, want %q", c.name, got, c.want)
		}
	}
}

// BenchmarkAsyncAccept: accepted async requests per second through the
// gateway handler, each fsync'd before its 202 (bbolt, ext4), from 32
// concurrent senders, with group commit and with one commit per request;
// and from one sender (what group commit costs a lone webhook: nothing).
func BenchmarkAsyncAccept(b *testing.B) {
	for _, mode := range []struct {
		name    string
		solo    bool
		senders int // per GOMAXPROCS
	}{{"group", false, 16}, {"solo", true, 16}, {"group-1sender", false, 0}} {
		b.Run(mode.name, func(b *testing.B) {
			cfg, err := config.Parse("b.yaml", []byte(strings.ReplaceAll(asyncYAML, "{T}", "http://127.0.0.1:1")), nil)
			if err != nil {
				b.Fatal(err)
			}
			db, err := bbolt.Open(filepath.Join(b.TempDir(), "state.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			q, _ := delivery.Open(db, delivery.Options{NoGroupCommit: mode.solo})
			g, err := Build(cfg, Deps{Metrics: metrics.New(), Queue: q, Store: memory.New()})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			body := []byte(`{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000"}`)
			var n atomic.Int64
			accept := func() bool {
				req := httptest.NewRequest("POST", "/hooks/push", bytes.NewReader(body))
				req.Header.Set("X-GitHub-Delivery", strconv.FormatInt(n.Add(1), 10))
				w := httptest.NewRecorder()
				g.ServeHTTP(w, req)
				if w.Code != 202 {
					b.Errorf("status %d", w.Code)
					return false
				}
				return true
			}
			b.ReportAllocs()
			b.ResetTimer()
			if mode.senders == 0 {
				for range b.N {
					if !accept() {
						return
					}
				}
			} else {
				b.SetParallelism(mode.senders)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() && accept() {
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "accepted/s")
		})
	}
}
