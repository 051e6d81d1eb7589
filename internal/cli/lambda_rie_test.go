//go:build linux

package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/lambda/rie"
)

// These tests run the real drawbridge binary, built as a provided.al2023
// bootstrap, under the real Lambda Runtime Interface Emulator, with a real
// loopback backend behind it.

// hit is what the backend saw of one request.
type hit struct {
	Method, URI, Host, Body string
	Header                  http.Header
}

// backend records every request and answers 201 with two cookies, or
// blocks on ?slow until the caller gives up.
type backend struct {
	*httptest.Server
	hits chan hit
}

func newBackend(t *testing.T) *backend {
	b := &backend{hits: make(chan hit, 16)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.hits <- hit{r.Method, r.RequestURI, r.Host, string(body), r.Header.Clone()}
		if r.URL.Query().Has("slow") {
			<-r.Context().Done() // the gateway's deadline cancels the request
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Add("Set-Cookie", "a=1; Path=/")
		w.Header().Add("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT")
		w.Header().Set("X-Backend", "yes")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `from "backend"`)
	}))
	t.Cleanup(b.Close)
	return b
}

// next returns the request the backend saw, or fails if none arrived.
func (b *backend) next(t *testing.T) hit {
	t.Helper()
	select {
	case h := <-b.hits:
		return h
	default:
		t.Fatal("backend not reached")
		return hit{}
	}
}

func (b *backend) none(t *testing.T) {
	t.Helper()
	select {
	case h := <-b.hits:
		t.Errorf("backend reached: %s %s", h.Method, h.URI)
	default:
	}
}

// eventDir is aws-lambda-go's events/testdata in the module cache.
var eventDir = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-lambda-go").Output()
	if err != nil {
		return "", fmt.Errorf("go list aws-lambda-go: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "events", "testdata"), nil
})

// sample reads one of aws-lambda-go's own events and lets edit adjust it.
func sample(t *testing.T, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	dir, err := eventDir()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return raw
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sub(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

// setPath moves a sample event to path, in every field its kind reads.
func setPath(path string) func(m map[string]any) {
	return func(m map[string]any) {
		if _, ok := m["rawPath"]; ok {
			m["rawPath"] = path
			sub(sub(m, "requestContext"), "http")["path"] = path
			return
		}
		m["path"] = path
	}
}

// reply is the union of the Lambda response shapes; the key sets are
// checked separately, since each service refuses unknown keys.
type reply struct {
	StatusCode        int                 `json:"statusCode"`
	StatusDescription string              `json:"statusDescription"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Cookies           []string            `json:"cookies"`
	Body              string              `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
	ErrorMessage      string              `json:"errorMessage"`
	OK                bool                `json:"ok"`

	keys []string
}

// function is a drawbridge bootstrap running under one RIE.
type function struct {
	emu *rie.Emulator
	// init is the cold start's INIT REPORT duration; warm holds REPORT
	// durations of later invokes.
	init, cold time.Duration
	warm       []time.Duration
}

func startFunction(t *testing.T, env ...string) *function {
	t.Helper()
	bootstrap := rie.BuildBootstrap(t, "../../cmd/drawbridge", testLoopbackTag)
	return &function{emu: rie.Start(t, bootstrap, env...)}
}

func (f *function) invoke(t *testing.T, event []byte) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := f.emu.Invoke(ctx, event)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK {
		t.Fatalf("RIE answered HTTP %d: %.300s", res.Status, res.Body)
	}
	if res.Report.Init > 0 {
		f.init, f.cold = res.Report.Init, res.Report.Duration
	} else if f.init > 0 {
		f.warm = append(f.warm, res.Report.Duration)
	}
	var r reply
	var m map[string]json.RawMessage
	if err := json.Unmarshal(res.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %.300s", err, res.Body)
	}
	for k := range m {
		r.keys = append(r.keys, k)
	}
	json.Unmarshal(res.Body, &r)
	return r
}

// oneEnvironment asserts that every invoke was served by one init: no bad
// event crashed the function.
func (f *function) oneEnvironment(t *testing.T) {
	t.Helper()
	if n := len(f.emu.Lines("INIT START")); n != 1 {
		t.Errorf("%d INIT START lines, want 1: an invoke crashed the function", n)
	}
	t.Logf("cold start: INIT REPORT %v, first REPORT Duration %v; warm REPORT durations %v (2 shared cores, noisy)", f.init, f.cold, f.warm)
}

// tempConfig writes a config file for one function.
func tempConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, p, text)
	return p
}

func hasKeys(r reply, want ...string) bool {
	got := map[string]bool{}
	for _, k := range r.keys {
		got[k] = true
	}
	if len(got) != len(want) {
		return false
	}
	for _, k := range want {
		if !got[k] {
			return false
		}
	}
	return true
}

// TestLambdaSampleEvents is acceptance 2: aws-lambda-go's own captures of
// each event kind reach the backend as the client sent them, with the
// client address AWS saw, and the answer returns in the event's shape.
func TestLambdaSampleEvents(t *testing.T) {
	be := newBackend(t)
	cfg := tempConfig(t, `
client_ip:
  trusted_proxies: ["10.0.0.0/8"]
routes:
  - path: /app/*
    target: `+be.URL+`/backend
`)
	fn := startFunction(t, EnvConfig+"="+cfg, EnvALBPeer+"=10.1.2.3")
	backendHost := strings.TrimPrefix(be.URL, "http://")

	type want struct {
		method, uri, body, xff string
		header                 map[string]string // must be present with these values
	}
	tests := []struct {
		name  string
		event []byte
		want  want
		shape func(r reply) string
	}{
		{"REST v1", sample(t, "apigw-request.json", setPath("/app/hello/world")),
			want{"POST", "/backend/hello/world?name=me", "{\r\n\t\"a\": 1\r\n}", "192.168.196.186",
				map[string]string{"Content-Type": "application/json", "Headername": "headerValue", "Cache-Control": "no-cache",
					"X-Forwarded-Host": "gy415nuibc.execute-api.us-east-1.amazonaws.com"}},
			func(r reply) string {
				if !hasKeys(r, "statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded") ||
					len(r.MultiValueHeaders["Set-Cookie"]) != 2 || r.MultiValueHeaders["X-Backend"][0] != "yes" {
					return "want the v1 shape with both cookies in multiValueHeaders"
				}
				return ""
			}},
		{"HTTP API v2", sample(t, "apigw-v2-request-no-authorizer.json", setPath("/app/v2")),
			want{"GET", "/backend/v2", "", "1.2.3.4", map[string]string{"User-Agent": "curl/7.58.0", "Accept": "*/*"}},
			func(r reply) string {
				if !hasKeys(r, "statusCode", "headers", "cookies", "body", "isBase64Encoded") || len(r.Cookies) != 2 ||
					r.Headers["Set-Cookie"] != "" || r.Headers["X-Backend"] != "yes" {
					return "want the v2 shape with Set-Cookie in cookies"
				}
				return ""
			}},
		{"Function URL", sample(t, "lambda-urls-request.json", setPath("/app/my/path")),
			want{"POST", "/backend/my/path?parameter1=value1&parameter1=value2&parameter2=value", "Hello from client!", "123.123.123.123",
				map[string]string{"Cookie": "cookie1; cookie2", "Header1": "value1", "Header2": "value1,value2"}},
			func(r reply) string {
				if !hasKeys(r, "statusCode", "headers", "cookies", "body", "isBase64Encoded") || len(r.Cookies) != 2 {
					return "want the Function URL (2.0) shape with cookies"
				}
				return ""
			}},
		{"ALB headers", sample(t, "alb-lambda-target-request-headers-only.json", setPath("/app/alb")),
			want{"GET", "/backend/alb?key=hello", "", "25.12.198.67, 10.1.2.3", map[string]string{"X-Myheader": "123"}},
			func(r reply) string {
				if !hasKeys(r, "statusCode", "statusDescription", "headers", "body", "isBase64Encoded") ||
					r.StatusDescription != "201 Created" || r.Headers["X-Backend"] != "yes" {
					return "want the ALB shape with headers only and a statusDescription"
				}
				return ""
			}},
		{"ALB multi-value headers", sample(t, "alb-lambda-target-request-multivalue-headers.json", setPath("/app/alb")),
			want{"GET", "/backend/alb?key=hello", "", "72.21.198.67, 10.1.2.3", map[string]string{"X-Myheader": "123"}},
			func(r reply) string {
				if !hasKeys(r, "statusCode", "statusDescription", "multiValueHeaders", "body", "isBase64Encoded") ||
					len(r.MultiValueHeaders["Set-Cookie"]) != 2 {
					return "want the ALB shape with multiValueHeaders only"
				}
				return ""
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fn.invoke(t, tt.event)
			if r.StatusCode != http.StatusCreated || r.Body != `from "backend"` || r.IsBase64Encoded {
				t.Fatalf("response %+v", r)
			}
			if msg := tt.shape(r); msg != "" {
				t.Errorf("%s: %+v", msg, r)
			}
			h := be.next(t)
			if h.Method != tt.want.method || h.URI != tt.want.uri || h.Body != tt.want.body || h.Host != backendHost {
				t.Errorf("backend saw %s %s host %s body %q\nwant %s %s body %q", h.Method, h.URI, h.Host, h.Body,
					tt.want.method, tt.want.uri, tt.want.body)
			}
			if got := h.Header.Get("X-Forwarded-For"); got != tt.want.xff {
				t.Errorf("X-Forwarded-For = %q, want %q (the client AWS saw, never the event's own header)", got, tt.want.xff)
			}
			for k, v := range tt.want.header {
				if got := strings.Join(h.Header[k], ","); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if h.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
		})
	}
	fn.oneEnvironment(t)
}

// TestLambdaURLMode is acceptance 4: the drop-in for the original Python
// forwarder (only URL set), with its bugs fixed: the query and binary
// bodies reach the backend, and a slow backend is a 504, answered before
// Lambda's own timeout kills the function.
func TestLambdaURLMode(t *testing.T) {
	be := newBackend(t)
	fn := startFunction(t, EnvURL+"="+be.URL+"/hook", "AWS_LAMBDA_FUNCTION_TIMEOUT=1")
	binary := []byte("\x89PNG\r\n\x1a\n\x00\xff")

	t.Run("envelope with the backend's status", func(t *testing.T) {
		r := fn.invoke(t, sample(t, "apigw-request.json", setPath("/forward")))
		if r.StatusCode != http.StatusCreated || r.Body != `{"result": "from \"backend\""}` {
			t.Errorf("response %+v", r)
		}
		if r.MultiValueHeaders["X-Backend"] != nil || r.MultiValueHeaders["Content-Type"][0] != "application/json" {
			t.Errorf("headers %v: the envelope has its own", r.MultiValueHeaders)
		}
		h := be.next(t)
		if h.Method != "POST" || h.URI != "/hook?name=me" || h.Body != "{\r\n\t\"a\": 1\r\n}" {
			t.Errorf("backend saw %s %s %q", h.Method, h.URI, h.Body)
		}
	})
	t.Run("binary body arrives intact", func(t *testing.T) {
		r := fn.invoke(t, sample(t, "apigw-request.json", func(m map[string]any) {
			m["path"] = "/forward"
			m["body"] = base64.StdEncoding.EncodeToString(binary)
			m["isBase64Encoded"] = true
		}))
		if r.StatusCode != http.StatusCreated {
			t.Errorf("response %+v", r)
		}
		if h := be.next(t); h.Body != string(binary) {
			t.Errorf("backend got body %q", h.Body)
		}
	})
	t.Run("HTTP API v2 event", func(t *testing.T) {
		r := fn.invoke(t, sample(t, "apigw-v2-request-no-authorizer.json", setPath("/forward")))
		if r.StatusCode != http.StatusCreated || r.Body != `{"result": "from \"backend\""}` {
			t.Errorf("response %+v", r)
		}
		if h := be.next(t); h.URI != "/hook" {
			t.Errorf("backend saw %s", h.URI)
		}
	})
	for _, tt := range []struct{ method, body string }{
		{"GET", `{"result": "from \"backend\""}`},
		{"PUT", `{"result": "from \"backend\""}`},
		{"HEAD", ""},
	} {
		t.Run(tt.method, func(t *testing.T) {
			r := fn.invoke(t, sample(t, "apigw-request.json", func(m map[string]any) {
				m["path"], m["httpMethod"] = "/forward", tt.method
			}))
			if r.StatusCode != http.StatusCreated || r.Body != tt.body {
				t.Errorf("response %+v", r)
			}
			if h := be.next(t); h.Method != tt.method {
				t.Errorf("backend saw %s", h.Method)
			}
		})
	}
	for _, tt := range []struct{ name, method, path string }{
		{"other path", "POST", "/other"},
		{"DELETE is not a route method", "DELETE", "/forward"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := fn.invoke(t, sample(t, "apigw-request.json", func(m map[string]any) {
				m["path"], m["httpMethod"] = tt.path, tt.method
			}))
			if r.StatusCode != http.StatusForbidden || r.Body != `{"message":"Missing Authentication Token"}` {
				t.Errorf("response %+v", r)
			}
			be.none(t)
		})
	}
	t.Run("slow backend is 504 within the function timeout", func(t *testing.T) {
		start := time.Now()
		r := fn.invoke(t, sample(t, "apigw-request.json", func(m map[string]any) {
			m["path"] = "/forward"
			m["multiValueQueryStringParameters"] = map[string][]string{"slow": {"1"}}
		}))
		if r.StatusCode != http.StatusGatewayTimeout || r.Body != `{"message":"Endpoint request timed out"}` {
			t.Errorf("response %+v", r)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("answered after %v", d)
		}
		be.next(t)
	})
	fn.oneEnvironment(t)
}

// TestLambdaBadEvents: each malformed or unsupported event
// (docs/lambda.md#events) gets a clean answer and the same execution environment serves the
// next invoke.
func TestLambdaBadEvents(t *testing.T) {
	be := newBackend(t)
	cfg := tempConfig(t, `
limits: {max_body_bytes: 1048576}
routes:
  - path: /app/*
    target: `+be.URL+`/backend
`)
	fn := startFunction(t, EnvConfig+"="+cfg)
	v1 := func(edit func(m map[string]any)) []byte {
		return sample(t, "apigw-request.json", func(m map[string]any) { m["path"] = "/app/x"; edit(m) })
	}
	const badRequest = `{"message":"Bad Request"}`
	tests := []struct {
		name       string
		event      []byte
		status     int    // 0: a function error (no response shape to answer in)
		body       string // response body, or a substring of errorMessage
		reachesApp bool
	}{
		{"unknown shape", []byte(`{"foo":1}`), 0, "unknown event shape", false},
		{"not an object", []byte(`[1,2]`), 0, "unknown event shape", false},
		{"authorizer event", sample(t, "apigw-custom-auth-request-type-request.json", nil), 0, "unknown event shape", false},
		{"null maps and body", v1(func(m map[string]any) {
			for _, k := range []string{"headers", "multiValueHeaders", "queryStringParameters", "multiValueQueryStringParameters", "body", "requestContext"} {
				m[k] = nil
			}
		}), http.StatusCreated, `from "backend"`, true},
		{"invalid base64", v1(func(m map[string]any) { m["body"], m["isBase64Encoded"] = "not base64!", true }), 400, badRequest, false},
		{"URL-safe base64", v1(func(m map[string]any) { m["body"], m["isBase64Encoded"] = "_-8=", true }), 400, badRequest, false},
		{"unpadded base64", v1(func(m map[string]any) { m["body"], m["isBase64Encoded"] = "YWJjZA", true }), 400, badRequest, false},
		{"headers disagree with multiValueHeaders", v1(func(m map[string]any) {
			sub(m, "headers")["Content-Type"] = "text/html"
		}), 400, badRequest, false},
		{"two API keys", v1(func(m map[string]any) {
			sub(m, "multiValueHeaders")["x-api-key"] = []string{"k1", "k2"}
		}), 400, badRequest, false},
		{"ALB with both header forms", sample(t, "alb-lambda-target-request-headers-only.json", func(m map[string]any) {
			m["path"] = "/app/alb"
			m["multiValueHeaders"] = map[string][]string{"x-myheader": {"456"}}
		}), 400, badRequest, false},
		{"wrong field type", v1(func(m map[string]any) { m["headers"] = "a string" }), 400, badRequest, false},
		{"2 MB body over max_body_bytes", v1(func(m map[string]any) {
			m["body"], m["isBase64Encoded"] = base64.StdEncoding.EncodeToString(make([]byte, 2<<20)), true
		}), 413, `{"message":"Request Too Long"}`, false},
		// The RIE truncates payloads over 6 MiB (real Lambda refuses them
		// with 413 before the function runs): what arrives is not JSON.
		{"7 MB body", v1(func(m map[string]any) { m["body"] = strings.Repeat("b", 7<<20) }), 0, "unknown event shape", false},
		{"still serving", sample(t, "apigw-v2-request-no-authorizer.json", setPath("/app/ok")), http.StatusCreated, `from "backend"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fn.invoke(t, tt.event)
			switch {
			case tt.status == 0:
				if !strings.Contains(r.ErrorMessage, tt.body) {
					t.Errorf("want a function error %q, got %+v", tt.body, r)
				}
			case r.StatusCode != tt.status || r.Body != tt.body:
				t.Errorf("got %d %s, want %d %s", r.StatusCode, r.Body, tt.status, tt.body)
			case tt.status >= 400 && (r.MultiValueHeaders["Content-Type"] == nil || r.MultiValueHeaders["x-amzn-ErrorType"] == nil) &&
				(r.Headers["Content-Type"] == "" || r.Headers["x-amzn-ErrorType"] == ""):
				t.Errorf("error without JSON content type or x-amzn-ErrorType: %+v", r)
			}
			if tt.reachesApp {
				be.next(t)
			} else {
				be.none(t)
			}
		})
	}
	fn.oneEnvironment(t)
}

// TestLambdaSchedule: an EventBridge scheduled event is answered {"ok":true}
// with a log line, and never reaches a backend.
func TestLambdaSchedule(t *testing.T) {
	be := newBackend(t)
	cfg := tempConfig(t, "routes:\n  - path: /app/*\n    target: "+be.URL+"\n")
	fn := startFunction(t, EnvConfig+"="+cfg)
	r := fn.invoke(t, []byte(scheduledEvent))
	if !r.OK || !reflect.DeepEqual(r.keys, []string{"ok"}) {
		t.Errorf("response %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := fn.emu.WaitLine(ctx, "nothing to drain"); err != nil {
		t.Error(err)
	}
	be.none(t)
	r = fn.invoke(t, sample(t, "apigw-request.json", setPath("/app/after")))
	if r.StatusCode != http.StatusCreated {
		t.Errorf("after the schedule: %+v", r)
	}
	be.next(t)
	fn.oneEnvironment(t)
}

// TestLambdaInitError: a config that cannot load stops the function at
// init with the FILE:LINE message in the log, as Lambda reports it.
func TestLambdaInitError(t *testing.T) {
	cfg := tempConfig(t, "routes:\n  - path: /x\n    target: nowhere\n")
	fn := startFunction(t, EnvConfig+"="+cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := fn.emu.Invoke(ctx, []byte(scheduledEvent))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status == http.StatusOK {
		t.Errorf("RIE answered 200 %s for a function that cannot init", res.Body)
	}
	if _, err := fn.emu.WaitLine(ctx, cfg+":3: routes[0].target: scheme must be http or https"); err != nil {
		t.Errorf("no FILE:LINE message in the log: %v", err)
	}
}

// TestLambdaColdStart measures what acceptance 6 reports: the real init
// time (the RIE's INIT REPORT) of fresh execution environments and the
// REPORT durations of cold and warm invokes. It asserts only a generous
// bound, as a guard against init growing network calls or heavy work;
// the figures are logged (run with -v).
func TestLambdaColdStart(t *testing.T) {
	be := newBackend(t)
	cfg := tempConfig(t, "routes:\n  - path: /app/*\n    target: "+be.URL+"\n")
	bootstrap := rie.BuildBootstrap(t, "../../cmd/drawbridge", testLoopbackTag)
	event := sample(t, "apigw-v2-request-no-authorizer.json", setPath("/app/x"))
	const starts, warmInvokes = 5, 5
	var inits, colds, warms []time.Duration
	for range starts {
		fn := &function{emu: rie.Start(t, bootstrap, EnvConfig+"="+cfg)}
		for range 1 + warmInvokes {
			if r := fn.invoke(t, event); r.StatusCode != http.StatusCreated {
				t.Fatalf("response %+v", r)
			}
			be.next(t)
		}
		inits, colds, warms = append(inits, fn.init), append(colds, fn.cold), append(warms, fn.warm...)
	}
	median := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	t.Logf("%d cold starts: INIT REPORT median %v (min %v, max %v); first REPORT Duration median %v; %d warm REPORT Durations median %v (max %v); 2 shared cores, noisy",
		starts, median(inits), slices.Min(inits), slices.Max(inits), median(colds), len(warms), median(warms), slices.Max(warms))
	if m := median(inits); m <= 0 || m > 250*time.Millisecond {
		t.Errorf("median init %v: want (0, 250ms]; init must stay free of network and heavy work", m)
	}
}

// testLoopbackTag builds bootstraps whose Lambda-mode egress guard lets
// them reach these tests' loopback backends (lambda_testloopback.go).
const testLoopbackTag = "drawbridge_testloopback"

// TestLambdaEgressDeniesLoopback: a bootstrap built as releases are (no
// test tag) refuses a loopback target in Lambda mode, where the Runtime
// API listens (docs/lambda.md#egress): 502 Bad Gateway and the backend sees nothing,
// and the function keeps serving.
func TestLambdaEgressDeniesLoopback(t *testing.T) {
	be := newBackend(t)
	cfg := tempConfig(t, "routes:\n  - path: /app/*\n    target: "+be.URL+"\n")
	bootstrap := rie.BuildBootstrap(t, "../../cmd/drawbridge")
	fn := &function{emu: rie.Start(t, bootstrap, EnvConfig+"="+cfg)}
	event := sample(t, "apigw-v2-request-no-authorizer.json", setPath("/app/x"))
	for range 2 {
		r := fn.invoke(t, event)
		if r.StatusCode != http.StatusBadGateway || r.Body != `{"message":"Bad Gateway"}` {
			t.Fatalf("loopback target in Lambda: %d %s, want 502 Bad Gateway", r.StatusCode, r.Body)
		}
	}
	be.none(t)
	fn.oneEnvironment(t)
	if len(fn.emu.Lines("egress_denied")) == 0 {
		t.Errorf("no egress_denied outcome in the log")
	}
}
