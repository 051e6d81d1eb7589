package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/lambda"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestInLambda(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want bool
	}{
		{"runtime sets the API, no args", map[string]string{EnvRuntimeAPI: "127.0.0.1:9001"}, nil, true},
		{"commands still run inside Lambda", map[string]string{EnvRuntimeAPI: "127.0.0.1:9001"}, []string{"check"}, false},
		{"outside Lambda", map[string]string{}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InLambda(func(k string) string { return tt.env[k] }, tt.args); got != tt.want {
				t.Errorf("InLambda = %v", got)
			}
		})
	}
}

// TestLambdaConfig covers how Lambda mode finds its config.
func TestLambdaConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("routes:\n  - path: /hooks/*\n    target: http://10.0.0.1/\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("routes:\n  - path: /x\n    target: http://10.0.0.1/\n    bogus: 1\n"), 0o644)
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // substring; "" means success
		check   func(t *testing.T, fn *lambdaFunction)
	}{
		{"URL alone: the original forwarder", map[string]string{EnvURL: "http://10.0.0.1:8080/hook"}, "", func(t *testing.T, fn *lambdaFunction) {
			r := fn.cfg.Routes
			if len(r) != 1 || r[0].Path != "/forward" || r[0].Target != "http://10.0.0.1:8080/hook" || r[0].Response != "envelope" ||
				!slices.Equal(r[0].Methods, []string{"GET", "HEAD", "POST", "PUT"}) {
				t.Errorf("routes = %+v", r)
			}
			if fn.state.driver != "memory" {
				t.Errorf("state = %q", fn.state.driver)
			}
		}},
		{"config file wins over URL", map[string]string{EnvConfig: good, EnvURL: "http://10.0.0.2/"}, "", func(t *testing.T, fn *lambdaFunction) {
			if len(fn.cfg.Routes) != 1 || fn.cfg.Routes[0].Path != "/hooks/*" {
				t.Errorf("routes = %+v", fn.cfg.Routes)
			}
			if fn.state.driver != "memory" || fn.state.queue != nil {
				t.Errorf("embedded state in Lambda: driver %q, queue %v; want memory (per instance), none", fn.state.driver, fn.state.queue)
			}
		}},
		{"ALB peer", map[string]string{EnvConfig: good, EnvALBPeer: "::ffff:10.1.2.3"}, "", func(t *testing.T, fn *lambdaFunction) {
			if fn.opts.ALBPeer != "10.1.2.3" {
				t.Errorf("ALBPeer = %q", fn.opts.ALBPeer)
			}
		}},
		{"nothing set", map[string]string{}, "set DRAWBRIDGE_CONFIG", nil},
		{"bad config names file and line", map[string]string{EnvConfig: bad}, bad + ":4: ", nil},
		{"missing config file", map[string]string{EnvConfig: filepath.Join(dir, "none.yaml")}, "cannot read config", nil},
		{"URL with a query", map[string]string{EnvURL: "http://10.0.0.1/?a=1"}, "URL: routes[0].target: must not have a query", nil},
		{"URL not http", map[string]string{EnvURL: "ftp://10.0.0.1/"}, "URL: routes[0].target: scheme must be http or https", nil},
		{"URL with YAML in it stays a string", map[string]string{EnvURL: "http://10.0.0.1/\"\n  - path: /evil"}, "URL: routes[0].target", nil},
		{"bad ALB peer", map[string]string{EnvConfig: good, EnvALBPeer: "10.0.0.0/8"}, "DRAWBRIDGE_ALB_PEER", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn, err := newLambdaFunction(envMap(tt.env), slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer fn.gateway.Close()
			tt.check(t, fn)
		})
	}
}

// TestLambdaInProcess runs the wiring without the runtime: the URL-only
// function answers the envelope, forwards the query, and a scheduled event
// is answered without touching the backend.
func TestLambdaInProcess(t *testing.T) {
	hits := 0
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.RequestURI != "/hook?name=me" {
			t.Errorf("backend got %s", r.RequestURI)
		}
		w.Header().Set("X-Dropped", "1")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `plain "text"`)
	}))
	defer backend.Close()
	allowLoopback(t)
	var logs bytes.Buffer
	fn, err := newLambdaFunction(envMap(map[string]string{EnvURL: backend.URL + "/hook"}), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer fn.gateway.Close()
	a := lambda.New(fn.gateway, fn.opts)

	ev := v1Event(t, "POST", "/forward", map[string][]string{"name": {"me"}}, "x")
	out, err := a.Invoke(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		StatusCode int               `json:"statusCode"`
		Headers    map[string]string `json:"headers"`
		Body       string            `json:"body"`
	}
	json.Unmarshal(out, &r)
	if r.StatusCode != 202 || r.Body != `{"result": "plain \"text\""}` || r.Headers["X-Dropped"] != "" {
		t.Errorf("response %s", out)
	}

	out, err = a.Invoke(context.Background(), []byte(scheduledEvent))
	if err != nil || string(out) != `{"ok":true}` || hits != 1 {
		t.Errorf("scheduled: %s %v, backend hits %d", out, err, hits)
	}
	if !strings.Contains(logs.String(), "nothing to drain") {
		t.Errorf("no drain log line in %s", logs.String())
	}
}

// scheduledEvent is an EventBridge schedule rule's event, as documented by
// AWS (aws-lambda-go ships no file for it).
const scheduledEvent = `{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event",` +
	`"source":"aws.events","account":"123456789012","time":"2026-12-01T18:43:48Z","region":"us-east-1",` +
	`"resources":["arn:aws:events:us-east-1:123456789012:rule/drawbridge-drain"],"detail":{}}`

// v1Event is a minimal REST proxy event.
func v1Event(t testing.TB, method, path string, query map[string][]string, body string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"httpMethod": method, "path": path, "multiValueQueryStringParameters": query, "body": body,
		"multiValueHeaders": map[string][]string{"Content-Type": {"text/plain"}},
		"requestContext":    map[string]any{"stage": "prod", "requestId": "r1", "identity": map[string]any{"sourceIp": "203.0.113.9"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// allowLoopback lets an in-process Lambda function reach this test's
// loopback backend, as the drawbridge_testloopback tag does for the
// bootstraps under the RIE.
func allowLoopback(t *testing.T) {
	prev := lambdaLoopbackAllowed
	lambdaLoopbackAllowed = true
	t.Cleanup(func() { lambdaLoopbackAllowed = prev })
}

// TestLambdaUsesRefreshedIPSet: Lambda mode builds its gateway with the
// local copy of github-hooks that `drawbridge ipsets update` writes next
// to the config (deployed with it in the package), as serve does: an
// address only in the refreshed copy is admitted, one only in the
// built-in list is refused.
func TestLambdaUsesRefreshedIPSet(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drawbridge.yaml")
	writeConfig(t, path, `state: {driver: memory}
routes: [{path: /h, target: "`+okBackend(t)+`/h", allow_ips: [github-hooks]}]
`)
	allowLoopback(t)
	from := func(ip string) int {
		t.Helper()
		fn, err := newLambdaFunction(envMap(map[string]string{EnvConfig: path}), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer fn.state.close()
		defer fn.gateway.Close()
		ev, err := json.Marshal(map[string]any{
			"httpMethod": "GET", "path": "/h",
			"requestContext": map[string]any{"stage": "prod", "requestId": "r1", "identity": map[string]any{"sourceIp": ip}},
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := lambda.New(fn.gateway, fn.opts).Invoke(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			StatusCode int `json:"statusCode"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("response %s: %v", out, err)
		}
		return r.StatusCode
	}
	wantEq := func(what string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %d, want %d", what, got, want)
		}
	}
	wantEq("built-in list, GitHub address", from("140.82.112.5"), 200)
	wantEq("built-in list, other address", from("203.0.113.7"), 403)

	meta := filepath.Join(dir, "meta.json")
	writeConfig(t, meta, `{"hooks": ["203.0.113.0/24"]}`)
	var errb bytes.Buffer
	if code := Main(context.Background(), []string{"ipsets", "update", "github-hooks", "--from", meta, "-c", path}, io.Discard, &errb); code != 0 {
		t.Fatalf("ipsets update exit %d: %s", code, errb.String())
	}
	wantEq("refreshed copy, new address", from("203.0.113.7"), 200)
	wantEq("refreshed copy, old address", from("140.82.112.5"), 403)
}
