package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/drawbridge/drawbridge/internal/lambda"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// TestLambdaRedisDrain: in Lambda mode with state.driver redis, async
// routes answer 202 into the shared queue (nothing is sent during the
// invocation), and a scheduled event on another instance runs one
// delivery pass that delivers every event, each once.
func TestLambdaRedisDrain(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	b := newHookBackend(t)
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, redisAsyncConfig(b.URL, rs.URL()))
	allowLoopback(t)
	instance := func() *lambda.Adapter {
		fn, err := newLambdaFunction(envMap(map[string]string{EnvConfig: cfg}), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fn.gateway.Close(); fn.state.close() })
		if fn.state.driver != "redis" || fn.state.queue == nil {
			t.Fatalf("Lambda mode opened state.driver redis as %q, queue %v", fn.state.driver, fn.state.queue)
		}
		return lambda.New(fn.gateway, fn.opts)
	}
	accepter, drainer := instance(), instance()

	var ids []string
	for i := range 5 {
		guid := fmt.Sprintf("lambda-%d", i)
		ev, _ := json.Marshal(map[string]any{
			"httpMethod": "POST", "path": "/hooks/push", "body": "event " + guid,
			"multiValueHeaders": map[string][]string{"X-GitHub-Delivery": {guid}},
			"requestContext":    map[string]any{"stage": "prod", "requestId": "r" + guid, "identity": map[string]any{"sourceIp": "203.0.113.9"}},
		})
		out, err := accepter.Invoke(context.Background(), ev)
		var r struct {
			StatusCode int    `json:"statusCode"`
			Body       string `json:"body"`
		}
		json.Unmarshal(out, &r)
		var acc struct{ ID string }
		if err != nil || r.StatusCode != 202 || json.Unmarshal([]byte(r.Body), &acc) != nil || acc.ID == "" {
			t.Fatalf("event %d: %v %s", i, err, out)
		}
		ids = append(ids, acc.ID)
	}
	if n := len(b.missing(ids)); n != len(ids) {
		t.Fatalf("%d events delivered before any scheduled event: Lambda mode must not deliver in the background", len(ids)-n)
	}
	out, err := drainer.Invoke(context.Background(), []byte(scheduledEvent))
	if err != nil || string(out) != `{"ok":true}` {
		t.Fatalf("scheduled event: %s %v", out, err)
	}
	if m := b.missing(ids); len(m) > 0 {
		t.Errorf("after one drain %d of %d events not delivered: %v", len(m), len(ids), m)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, n := range b.answered {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	if len(b.bad) > 0 {
		t.Errorf("wrong requests: %v", b.bad)
	}
}
