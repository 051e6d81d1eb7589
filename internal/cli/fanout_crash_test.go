package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"
	bbolt "go.etcd.io/bbolt"
)

// TestFanOutCrashLosesNothing (routing acceptance 2): an async route fans
// out to two targets; a real serve process gets SIGKILL 20 times between
// the two deliveries of each request (ci has answered 200, chat's attempt
// is in flight). After the last restart both targets have every accepted
// event, and the state file records every target's delivery delivered.
func TestFanOutCrashLosesNothing(t *testing.T) {
	ci, chat := newHookBackend(t), newHookBackend(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	cfg := filepath.Join(dir, "drawbridge.yaml")
	writeConfig(t, cfg, `listen: 127.0.0.1:0
admin: 127.0.0.1:0
state: {driver: embedded, path: `+state+`}
routes:
  - path: /hooks/*
    timeout: 10s
    targets:
      - {name: ci, target: `+ci.URL+`/ci/}
      - {name: chat, target: `+chat.URL+`/ci/}
    delivery: {mode: async, retry: {base: 100ms, max: 1s}}
`)
	var accepted []string
	const iterations, perRun = 20, 3
	for i := range iterations {
		chat.hold.Store(true)
		select {
		case <-chat.entered:
		default:
		}
		p := startServe(t, cfg)
		ids := postEvents(t, p.addr, i, perRun)
		accepted = append(accepted, ids...)
		// Between the two deliveries: ci answered (its delivery id is
		// the request's), chat's attempt hangs.
		deadline := time.Now().Add(10 * time.Second)
		for len(ci.missing(ids)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("iteration %d: ci never got %v:\n%s", i, ci.missing(ids), p.logText())
			}
			time.Sleep(5 * time.Millisecond)
		}
		select {
		case <-chat.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: no chat attempt started:\n%s", i, p.logText())
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}

	chat.hold.Store(false)
	p := startServe(t, cfg)
	want := delivery.Counts{Delivered: 2 * len(accepted)}
	var c delivery.Counts
	deadline := time.Now().Add(30 * time.Second)
	for c != want {
		if time.Now().After(deadline) {
			t.Fatalf("counts %+v, want %+v\n%s", c, want, p.logText())
		}
		_, body := get(t, "http://"+p.admin+"/deliveries/counts")
		json.Unmarshal([]byte(body), &c)
		time.Sleep(20 * time.Millisecond)
	}
	q := stopAndOpenQueue(t, p, state)
	for _, id := range accepted {
		d, err := q.Get(id)
		if err != nil || len(d.Targets) != 2 || d.Targets[0].State != delivery.Delivered || d.Targets[1].State != delivery.Delivered ||
			d.Targets[0].Route != "/hooks/*#ci" || d.Targets[1].Route != "/hooks/*#chat" {
			t.Errorf("request %s: %v, targets %+v", id, err, d)
		}
	}
	for name, b := range map[string]*hookBackend{"ci": ci, "chat": chat} {
		b.mu.Lock()
		if len(b.answered) != len(accepted) || len(b.bad) > 0 {
			t.Errorf("%s answered %d distinct deliveries, want %d; wrong requests: %v", name, len(b.answered), len(accepted), b.bad)
		}
		b.mu.Unlock()
	}
	t.Logf("%d kills between the two deliveries, %d requests accepted, every target's delivery delivered", iterations, len(accepted))
}

// TestDeliveriesShowTargets: `deliveries show` of a fanned-out request
// lists every target's delivery and state; list --route PATH takes in
// every target's lane, and --state coalesced is a state.
func TestDeliveriesShowTargets(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	cfg := filepath.Join(dir, "drawbridge.yaml")
	writeConfig(t, cfg, asyncConfig("http://127.0.0.1:1", state))
	db, err := bbolt.Open(state, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := delivery.Open(db, delivery.Options{})
	mk := func(route string) *delivery.Delivery {
		return &delivery.Delivery{Route: route, Method: "POST", URL: "http://127.0.0.1:1/ci/push", Body: []byte(`{}`), Key: "k"}
	}
	id, _, err := q.EnqueueGroup(context.Background(), []*delivery.Delivery{mk("/hooks/*#ci"), mk("/hooks/*#chat")})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out, errOut := cli("deliveries", "-c", cfg, "show", id)
	if code != 0 || !strings.Contains(out, "targets:   2 (request "+id+")") ||
		!strings.Contains(out, id+"  pending    /hooks/*#ci  0 attempts") || !strings.Contains(out, "/hooks/*#chat  0 attempts") {
		t.Errorf("show: %d %s %s", code, out, errOut)
	}
	code, out, _ = cli("deliveries", "-c", cfg, "list", "--route", "/hooks/*")
	if code != 0 || strings.Count(out, "/hooks/*#") != 2 {
		t.Errorf("list --route: %d\n%s", code, out)
	}
	if code, out, errOut = cli("deliveries", "-c", cfg, "list", "--state", "coalesced"); code != 0 || strings.Contains(out, "/hooks") {
		t.Errorf("list --state coalesced: %d %s %s", code, out, errOut)
	}
}
