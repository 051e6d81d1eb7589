package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"
	bbolt "go.etcd.io/bbolt"
)

// cli runs drawbridge in-process and returns exit code, stdout, stderr.
func cli(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestDeliveriesOffline: with serve stopped, the command works on the
// state file: list, filters, show (secrets redacted), replay, purge.
func TestDeliveriesOffline(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	cfg := filepath.Join(dir, "drawbridge.yaml")
	var code atomic.Int32
	code.Store(400)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(code.Load())) }))
	defer b.Close()
	writeConfig(t, cfg, asyncConfig(b.URL, state))

	// Two deliveries: one dead (400), one delivered.
	db, err := bbolt.Open(state, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := delivery.Open(db, delivery.Options{})
	mk := func(key string) string {
		id, _, err := q.Enqueue(context.Background(), &delivery.Delivery{
			Route: "/hooks/*", Method: "POST", URL: b.URL + "/ci/push",
			Header: http.Header{"Authorization": {"Bearer s3cret"}, "X-Github-Event": {"push"}},
			Body:   []byte(`{"zen":"Keep it logically awesome."}`), Key: key,
		})
		if err != nil {
			t.Fatal(err)
		}
		delivery.NewWorker(q, delivery.WorkerOptions{}).RunOnce(context.Background())
		return id
	}
	deadID := mk("a")
	code.Store(200)
	okID := mk("b")
	db.Close()

	c, out, errOut := cli("deliveries", "-c", cfg, "list")
	if c != 0 || !strings.Contains(out, deadID) || !strings.Contains(out, okID) || !strings.HasPrefix(out, "ID ") {
		t.Fatalf("list: %d %q %q", c, out, errOut)
	}
	if _, out, _ = cli("deliveries", "list", "-c", cfg, "--state", "dead"); !strings.Contains(out, deadID) || strings.Contains(out, okID) {
		t.Errorf("list --state dead:\n%s", out)
	}
	c, out, _ = cli("deliveries", "-c", cfg, "show", deadID)
	for _, want := range []string{"state:     dead", "Authorization: [redacted]", "X-Github-Event: push", "Keep it logically awesome", "  1  ", "  400  "} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("show leaks a secret:\n%s", out)
	}
	if _, out, _ = cli("deliveries", "-c", cfg, "show", deadID, "--json"); strings.Contains(out, "s3cret") || !strings.Contains(out, `"state": "dead"`) {
		t.Errorf("show --json:\n%s", out)
	}
	if c, out, _ = cli("deliveries", "-c", cfg, "replay", deadID); c != 0 || !strings.Contains(out, "replayed "+deadID) || !strings.Contains(out, "sent when it starts") {
		t.Errorf("replay: %d %s", c, out)
	}
	if _, out, _ = cli("deliveries", "-c", cfg, "list", "--state", "pending"); !strings.Contains(out, deadID) {
		t.Errorf("replayed delivery not pending:\n%s", out)
	}
	if c, out, _ = cli("deliveries", "-c", cfg, "purge", "--delivered", "--older-than", "0s"); c != 0 || out != "purged 1 delivered deliveries\n" {
		t.Errorf("purge: %d %q", c, out)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "delivery not found"},
		{[]string{"show", "junk"}, "not a delivery id"},
		{[]string{"purge", "--dead"}, "--older-than is required"},
		{[]string{"purge", "--older-than", "7d"}, "want one of --delivered, --dead or --coalesced"},
		{[]string{"list", "--since", "soon"}, `bad age "soon"`},
		{[]string{"list", "--state", "lost"}, "state must be pending, delivered, dead or coalesced"},
		{[]string{"replay"}, "want one delivery id, or --dead"},
	} {
		c, _, errOut := cli(append([]string{"deliveries", "-c", cfg}, bad.args...)...)
		if c != 1 || !strings.Contains(errOut, bad.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", bad.args, c, errOut, bad.want)
		}
	}
	if c, _, errOut := cli("deliveries", "-c", cfg, "frobnicate"); c != 2 || !strings.Contains(errOut, "Usage") {
		t.Errorf("unknown subcommand: %d %q", c, errOut)
	}
}

// TestDeliveriesThroughServe (acceptance 4, end to end): a 400 from the
// target dead-letters the event at once; while serve runs (and holds the
// state file) `deliveries show` and `replay` go through the admin
// listener, and the replayed event is delivered. The drawbridge_deliveries
// gauge follows.
func TestDeliveriesThroughServe(t *testing.T) {
	b, code, hits := statusTarget(t, 400)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "drawbridge.yaml")
	// The CLI finds serve through the config's admin address, so it needs
	// a fixed port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := l.Addr().String()
	l.Close()
	writeConfig(t, cfg, strings.Replace(asyncConfig(b.URL, filepath.Join(dir, "state.db")), "admin: 127.0.0.1:0", "admin: "+adminAddr, 1))
	p := startServe(t, cfg)
	id := postEvent(t, p.addr, "guid-1")

	counts := func() delivery.Counts {
		_, body := get(t, "http://"+p.admin+"/deliveries/counts")
		var c delivery.Counts
		json.Unmarshal([]byte(body), &c)
		return c
	}
	waitCounts := func(want delivery.Counts) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for counts() != want {
			if time.Now().After(deadline) {
				t.Fatalf("counts = %+v, want %+v\n%s", counts(), want, p.logText())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCounts(delivery.Counts{Dead: 1})
	if n := hits.Load(); n != 1 {
		t.Errorf("a 400 was tried %d times, want 1", n)
	}
	c, out, errOut := cli("deliveries", "-c", cfg, "show", id)
	if c != 0 || !strings.Contains(out, "state:     dead") || !strings.Contains(out, "  400  ") {
		t.Fatalf("show through admin: %d %s %s", c, out, errOut)
	}
	code.Store(200)
	if c, out, errOut := cli("deliveries", "-c", cfg, "replay", id); c != 0 || strings.TrimSpace(out) != "replayed "+id {
		t.Fatalf("replay through admin: %d %q %q", c, out, errOut)
	}
	waitCounts(delivery.Counts{Delivered: 1})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, metrics := get(t, "http://"+p.admin+"/metrics")
		if strings.Contains(metrics, `drawbridge_deliveries{state="delivered"} 1`) && strings.Contains(metrics, `drawbridge_deliveries{state="dead"} 0`) {
			// The 400 dead-lettered after one attempt; the replay
			// delivered after one more: two attempts, one finished
			// each way, one delivery latency.
			for _, want := range []string{
				`drawbridge_delivery_attempt_duration_seconds_count{route="/hooks/*"} 2`,
				`drawbridge_delivery_attempts_count{route="/hooks/*",state="dead"} 1`,
				`drawbridge_delivery_attempts_count{route="/hooks/*",state="delivered"} 1`,
				`drawbridge_delivery_latency_seconds_count{route="/hooks/*"} 1`,
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gauge not updated:\n%s", metrics)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, out, _ := cli("deliveries", "-c", cfg, "list", "--json"); !strings.Contains(out, `"state": "delivered"`) {
		t.Errorf("list --json through admin:\n%s", out)
	}
}

// statusTarget is a webhook target answering code (changeable) and
// counting what it was sent.
func statusTarget(t *testing.T, status int32) (b *httptest.Server, code, hits *atomic.Int32) {
	code, hits = new(atomic.Int32), new(atomic.Int32)
	code.Store(status)
	b = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(b.Close)
	return b, code, hits
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "0d": 0, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute, "0s": 0} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "1.5d", "-1h", "7 d", "week"} {
		if _, err := parseAge(bad); err == nil {
			t.Errorf("parseAge(%q) accepted", bad)
		}
	}
}

func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"7d", "24h", "90m", "0s", "-1d", "d", "9999999999d", "1h30m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseAge(s); err == nil && d < 0 {
			t.Fatalf("parseAge(%q) = %v: negative age accepted", s, d)
		}
	})
}
