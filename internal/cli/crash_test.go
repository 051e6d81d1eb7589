package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"
	bbolt "go.etcd.io/bbolt"
)

// hookBackend is the private CI server behind an async route. It counts
// the deliveries it answered 200, by X-Drawbridge-Delivery id, and checks
// that each body belongs to its event. In hold mode it answers nothing:
// the attempt stays in flight until the gateway dies.
type hookBackend struct {
	*httptest.Server
	hold     atomic.Bool
	entered  chan struct{}
	mu       sync.Mutex
	answered map[string]int
	bad      []string
}

func newHookBackend(t *testing.T) *hookBackend {
	b := &hookBackend{entered: make(chan struct{}, 1), answered: map[string]int{}}
	stop := make(chan struct{})
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if b.hold.Load() {
			select {
			case b.entered <- struct{}{}:
			default:
			}
			select {
			case <-r.Context().Done(): // the gateway died mid-attempt
			case <-stop:
			}
			return
		}
		id := r.Header.Get("X-Drawbridge-Delivery")
		b.mu.Lock()
		if want := "event " + r.Header.Get("X-Github-Delivery"); string(body) != want || r.URL.Path != "/ci/push" {
			b.bad = append(b.bad, fmt.Sprintf("%s %s %q", id, r.URL.Path, body))
		}
		b.answered[id]++
		b.mu.Unlock()
	}))
	t.Cleanup(func() { close(stop); b.Close() })
	return b
}

func (b *hookBackend) missing(ids []string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, id := range ids {
		if b.answered[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

func asyncConfig(backend, state string) string {
	return `listen: 127.0.0.1:0
admin: 127.0.0.1:0
state: {driver: embedded, path: ` + state + `}
routes:
  - path: /hooks/*
    target: ` + backend + `/ci/
    timeout: 10s
    delivery: {mode: async, retry: {base: 100ms, max: 1s}}
`
}

// postEvents sends n GitHub-style webhooks at once (guids guid-<run>-<j>)
// and returns their delivery ids in order.
func postEvents(t *testing.T, addr string, run, n int) []string {
	ids := make([]string, n)
	var wg sync.WaitGroup
	for j := range n {
		wg.Go(func() { ids[j] = postEvent(t, addr, fmt.Sprintf("guid-%d-%d", run, j)) })
	}
	wg.Wait()
	return ids
}

// postEvent sends one GitHub-style webhook and returns the delivery id of
// the 202.
func postEvent(t *testing.T, addr, guid string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+"/hooks/push", strings.NewReader("event "+guid))
	req.Header.Set("X-GitHub-Delivery", guid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s: %v", guid, err)
	}
	defer resp.Body.Close()
	var v struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 202 {
		t.Fatalf("post %s: %d %v", guid, resp.StatusCode, err)
	}
	return v.ID
}

// TestCrashLosesNothing (acceptance 3): a real drawbridge process gets
// SIGKILL right after answering 202, or while a delivery attempt is in
// flight, 20 times each on the same state file; after the last restart
// every accepted event has been delivered (answered 200 by the target) and
// is recorded as delivered. Duplicates are allowed (at-least-once) and
// counted.
func TestCrashLosesNothing(t *testing.T) {
	for _, mode := range []string{"after-202", "mid-attempt"} {
		t.Run(mode, func(t *testing.T) {
			b := newHookBackend(t)
			dir := t.TempDir()
			state := filepath.Join(dir, "state.db")
			cfg := filepath.Join(dir, "drawbridge.yaml")
			writeConfig(t, cfg, asyncConfig(b.URL, state))
			var accepted []string
			const iterations, perRun = 20, 3
			for i := range iterations {
				b.hold.Store(mode == "mid-attempt")
				select {
				case <-b.entered:
				default:
				}
				p := startServe(t, cfg)
				accepted = append(accepted, postEvents(t, p.addr, i, perRun)...)
				if mode == "mid-attempt" {
					select {
					case <-b.entered:
					case <-time.After(5 * time.Second):
						t.Fatalf("iteration %d: no delivery attempt started:\n%s", i, p.logText())
					}
				}
				p.cmd.Process.Signal(syscall.SIGKILL)
				p.cmd.Wait()
			}

			b.hold.Store(false)
			p := startServe(t, cfg)
			deadline := time.Now().Add(15 * time.Second)
			for len(b.missing(accepted)) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d accepted events never delivered: %v\n%s", len(b.missing(accepted)), len(accepted), b.missing(accepted), p.logText())
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Let the last attempt's outcome reach the file, then stop
			// cleanly and read the file ourselves.
			var c delivery.Counts
			for c.Delivered < len(accepted) && time.Now().Before(deadline) {
				_, body := get(t, "http://"+p.admin+"/deliveries/counts")
				json.Unmarshal([]byte(body), &c)
				time.Sleep(20 * time.Millisecond)
			}
			q := stopAndOpenQueue(t, p, state)
			for _, id := range accepted {
				if d, err := q.Get(id); err != nil || d.State != delivery.Delivered {
					t.Errorf("accepted %s: %v, state %v", id, err, d)
				}
			}
			if c, _ := q.Counts(); c != (delivery.Counts{Delivered: len(accepted)}) {
				t.Errorf("counts = %+v, want %d delivered", c, len(accepted))
			}
			b.mu.Lock()
			dups := 0
			for _, n := range b.answered {
				dups += n - 1
			}
			if len(b.bad) > 0 {
				t.Errorf("target got wrong requests: %v", b.bad)
			}
			b.mu.Unlock()
			t.Logf("%s: %d kills, %d events accepted, all delivered, %d duplicate deliveries", mode, iterations, len(accepted), dups)
		})
	}
}

// stopAndOpenQueue stops serve cleanly (SIGTERM, which must exit 0) and
// opens the queue in its state file, so a test reads what was recorded
// rather than what the admin API says. The file closes with the test.
func stopAndOpenQueue(t *testing.T, p *process, state string) *delivery.Queue {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, p.logText())
	}
	db, err := bbolt.Open(state, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q, err := delivery.Open(db, delivery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}
