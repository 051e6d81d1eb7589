package console

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/admin"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/delivery/streams"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

var streamIDs = regexp.MustCompile(`href="/console/deliveries/([0-9]+-[0-9]+\.d[0-9a-f]{16})"`)

// TestRedisDeliveries: the deliveries pages and actions over the redis
// driver's streams (a real redis-server): dead letters are listed and
// shown with their body, replayed one at a time and by route.
func TestRedisDeliveries(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	st, err := redis.New(redis.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer target.Close()
	pol := delivery.Policy{Timeout: time.Second, MaxAttempts: 1}.WithDefaults()
	pols := map[string]delivery.Policy{"/hooks/a": pol, "/hooks/b": pol}
	q := streams.New(st, pols, "w1")
	wk := delivery.NewWorker(q, delivery.WorkerOptions{})
	wk.SetPolicies(pols)
	ctx := context.Background()
	for _, route := range []string{"/hooks/a", "/hooks/a", "/hooks/b"} {
		if _, _, err := q.Enqueue(ctx, &delivery.Delivery{Route: route, Method: "POST", URL: target.URL + route,
			Header: http.Header{"Cookie": {"s=topsecret"}}, Body: []byte("<script>alert(1)</script>")}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := wk.RunOnce(ctx); n != 3 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	cfg, err := config.Parse("c.yaml", []byte(baseConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	f := &fixture{cfg: cfg, m: m, now: time.Now()}
	f.c = New(Deps{Admin: admin.Handler(m.Registry, func(context.Context) error { return nil }, q),
		Config: func() *config.Config { return cfg }, Metrics: m, Deliveries: q})

	page := text(t, f.do(t, "GET", "/console/deliveries?state=dead", nil))
	ids := streamIDs.FindAllStringSubmatch(page, -1)
	if len(ids) != 3 || !strings.Contains(page, `<dd id="count-dead">3</dd>`) {
		t.Fatalf("dead letters listed: %d\n%s", len(ids), page)
	}
	detail := text(t, f.do(t, "GET", "/console/deliveries/"+ids[0][1], nil))
	if !strings.Contains(detail, "&lt;script&gt;alert(1)&lt;/script&gt;") || strings.Contains(detail, "topsecret") || !strings.Contains(detail, "Replay this delivery") {
		t.Fatalf("dead letter page:\n%s", detail)
	}
	tok := f.csrf(t)
	resp := f.do(t, "POST", "/console/deliveries/"+ids[0][1]+"/replay", url.Values{"csrf": {tok}})
	if c, _ := q.Counts(); resp.StatusCode != http.StatusSeeOther || c.Dead != 2 || c.Pending != 1 {
		t.Fatalf("replay one: %d, %+v", resp.StatusCode, c)
	}
	resp = f.do(t, "POST", "/console/deliveries/replay-dead", url.Values{"csrf": {tok}, "route": {"/hooks/a"}})
	if c, _ := q.Counts(); resp.StatusCode != http.StatusSeeOther || c.Dead+c.Pending != 3 || c.Dead > 1 {
		t.Fatalf("replay dead of /hooks/a: %d, %+v", resp.StatusCode, c)
	}
	// Cross-site, through the JSON API: refused, nothing changes.
	before, _ := q.Counts()
	if resp := f.do(t, "POST", "/deliveries/replay?since=2000-01-01T00:00:00Z", nil, "Origin", "https://evil.example"); resp.StatusCode != 403 {
		t.Fatalf("cross-site replay on redis: %d", resp.StatusCode)
	}
	if after, _ := q.Counts(); after != before {
		t.Fatalf("a refused request changed the streams: %+v → %+v", before, after)
	}
}
