package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"

	"github.com/drawbridge/drawbridge/internal/metrics"
)

// events keeps what the gateway records, as the console's ring would.
type events struct {
	mu  sync.Mutex
	all []metrics.Event
}

func (e *events) Record(ev metrics.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

// TestRecentRecorder: every finished request reaches Metrics.Recent with
// its route label, outcome, guard, client and key name (never the key),
// and explain's dry runs do not.
func TestRecentRecorder(t *testing.T) {
	ev := &events{}
	m := metrics.New()
	m.Recent = ev
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	yaml := `
usage_plans: {p: {}}
api_keys:
  - {name: a, plan: p, sha256: ` + digest(keyA) + `}
routes:
  - {path: /forward, target: "{T}/x", api_key_required: true}
`
	g, _ := buildFor(t, yaml, backend.URL, Deps{Metrics: m}, nil)
	send := func(method, path, ip, key string) {
		r := httptest.NewRequest(method, "http://gw"+path, nil)
		r.RemoteAddr = ip + ":40000"
		if key != "" {
			r.Header.Set("X-Api-Key", key)
		}
		g.ServeHTTP(httptest.NewRecorder(), r)
	}
	send("GET", "/forward", "140.82.112.5", keyA)
	send("GET", "/forward", "140.82.112.5", "")
	send("GET", "/nope", "8.8.8.8", "")
	er, _ := http.NewRequest("GET", "http://gw/forward", nil)
	er.RemoteAddr = "140.82.112.5:1"
	g.Explain(er, nil)
	if len(ev.all) != 3 {
		t.Fatalf("%d events, want 3 (explain records none): %+v", len(ev.all), ev.all)
	}
	ok, key, none := ev.all[0], ev.all[1], ev.all[2]
	if ok.Route != "/forward" || ok.Key != "a" || ok.Outcome != metrics.Forwarded || ok.Guard != "" || ok.Upstream <= 0 || ok.Client != netip.MustParseAddr("140.82.112.5") {
		t.Errorf("allowed: %+v", ok)
	}
	if key.Outcome != metrics.KeyRejected || key.Guard == "" || key.Key != "" {
		t.Errorf("key rejected: %+v", key)
	}
	if none.Route != metrics.NoRouteLabel || none.Outcome != metrics.NoRoute || none.At.IsZero() {
		t.Errorf("no route: %+v", none)
	}
}
