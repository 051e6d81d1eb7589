package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	bbolt "go.etcd.io/bbolt"
)

// BenchmarkMatchHeader is a header match (X-GitHub-Event in a list of
// two) on a request with GitHub's usual headers: the budget is ≤ 100 ns
// and no allocation.
func BenchmarkMatchHeader(b *testing.B) {
	m := compileMatch(&config.Match{Header: map[string]config.Patterns{"X-GitHub-Event": {"pull_request", "push"}}})
	r, _ := http.NewRequest("POST", "http://gw/hooks/github", nil)
	for k, v := range map[string]string{"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/a1b2c3d",
		"X-GitHub-Event": "push", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "X-GitHub-Hook-ID": "511234567",
		"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"} {
		r.Header.Set(k, v)
	}
	c := &call{r: r}
	b.ReportAllocs()
	for b.Loop() {
		if !m.holds(c) {
			b.Fatal("no match")
		}
	}
}

// BenchmarkMatchJSON is the match of the routing docs (event header and
// ref glob) on a GitHub push payload of 24 KB (testdata/github/push.json),
// including the once-per-request check that the body is JSON.
func BenchmarkMatchJSON(b *testing.B) {
	body := fixtureB(b, "push.json")
	m := compileMatch(&config.Match{
		Header: map[string]config.Patterns{"X-GitHub-Event": {"push"}},
		JSON:   map[string]config.Patterns{"ref": {"refs/heads/main", "refs/heads/release/*"}, "repository.full_name": {"octo-org/*"}},
	})
	r, _ := http.NewRequest("POST", "http://gw/hooks/github", nil)
	r.Header.Set("X-GitHub-Event", "push")
	c := &call{r: r, body: body}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		c.match.json = 0 // a new request: the body is checked again
		if !m.holds(c) {
			b.Fatal("no match")
		}
	}
}

// BenchmarkMatchJSONLookup is the lookup alone, the body known to be
// JSON (a second rule on the same request).
func BenchmarkMatchJSONLookup(b *testing.B) {
	body := fixtureB(b, "push.json")
	m := compileMatch(&config.Match{JSON: map[string]config.Patterns{"repository.full_name": {"octo-org/*"}}})
	c := &call{r: &http.Request{}, body: body}
	b.ReportAllocs()
	for b.Loop() {
		if !m.holds(c) {
			b.Fatal("no match")
		}
	}
}

// BenchmarkAsyncAcceptTwoTargets is async accept of a matched GitHub
// push fanned out to two targets (two deliveries in one group commit,
// fsync on), 32 senders: the budget is ≥ 5,000 accepted/s.
func BenchmarkAsyncAcceptTwoTargets(b *testing.B) {
	cfg, err := config.Parse("b.yaml", []byte(`
routes:
  - path: /hooks/github
    methods: [POST]
    match: {header: {X-GitHub-Event: push}, json: {ref: "refs/heads/*"}}
    targets:
      - {name: ci, target: "http://127.0.0.1:1/ci"}
      - {name: chat, target: "http://127.0.0.1:1/chat"}
    delivery: {mode: async}
`), nil)
	if err != nil {
		b.Fatal(err)
	}
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "state.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	q, _ := delivery.Open(db, delivery.Options{})
	g, err := Build(cfg, Deps{Metrics: metrics.New(), Queue: q, Store: memory.New()})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	body := []byte(`{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000"}`)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/hooks/github", bytes.NewReader(body))
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-GitHub-Delivery", strconv.FormatInt(n.Add(1), 10))
			w := httptest.NewRecorder()
			g.ServeHTTP(w, req)
			if w.Code != 202 {
				b.Errorf("status %d", w.Code)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "accepted/s")
	if c, _ := q.Counts(); c.Pending != 2*b.N {
		b.Errorf("pending %d, want %d (two per request)", c.Pending, 2*b.N)
	}
}
