package gateway

import (
	"io"
	"net/http"
	"testing"
)

// benchYAML is the blog's guard chain (resource policy, API key, stage,
// account and plan throttles, quota, max_concurrent) with limits high
// enough that the allowed case stays allowed for any b.N, plus one route
// per rejection kind.
var benchYAML = `
account_throttle: {rate: 1000000000000, burst: 1000000000000}
throttle: {rate: 1000000000000, burst: 1000000000000, max_concurrent: 50}
resource_policy:
  Statement:
    - Effect: Deny
      Principal: "*"
      Action: execute-api:Invoke
      Resource: execute-api:/*/*/*
      Condition: {NotIpAddress: {"aws:SourceIp": [192.30.252.0/22, 185.199.108.0/22, 140.82.112.0/20]}}
    - {Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: execute-api:/*/*/*}
usage_plans:
  big: {quota: {limit: 1099511627776, period: DAY}, throttle: {rate: 1000000000000, burst: 1000000000000}}
  tiny: {quota: {limit: 1, period: DAY}}
api_keys:
  - {name: a, plan: big, sha256: ` + digest(keyA) + `}
  - {name: b, plan: tiny, sha256: ` + digest(keyB) + `}
routes:
  - {path: /forward, methods: [GET, POST], target: "http://127.0.0.1:1/", api_key_required: true}
  - {path: /slow, target: "http://127.0.0.1:1/", throttle: {rate: 0.000001, burst: 0}}
  - {path: /hook, methods: [POST], target: "http://127.0.0.1:1/", verify: {provider: github, secret_env: GH}}
`

// discard is a ResponseWriter that keeps nothing: the benchmark measures
// the gateway, not a recorder.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

// rewind is a request body that can be read again without allocating.
type rewind struct {
	b []byte
	i int
}

func (r *rewind) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.i:])
	r.i += n
	return n, nil
}
func (r *rewind) Close() error { return nil }

func noDispatch(*Gateway, *call) {}

// BenchmarkGuards: one allowed request through the whole guard chain
// (dispatch replaced by a no-op: forwarding is the forward package's
// benchmark), and each rejection kind end to end.
func BenchmarkGuards(b *testing.B) {
	g, _ := buildFor(b, benchYAML, "", Deps{}, map[string]string{"GH": "It's a Secret to Everybody"})
	w := &discard{h: http.Header{}}
	req := func(method, path, ip, key string) *http.Request {
		r, _ := http.NewRequest(method, "http://gw"+path, nil)
		r.RequestURI = path
		r.RemoteAddr = ip + ":40000"
		if key != "" {
			r.Header.Set("X-Api-Key", key)
		}
		r.Header.Set("User-Agent", "GitHub-Hookshot/abc")
		return r
	}
	g.ServeHTTP(w, req("GET", "/forward", "140.82.112.5", keyB)) // spend b's quota

	b.Run("allowed", func(b *testing.B) {
		r := req("GET", "/forward", "140.82.112.5", keyA)
		w.code = 0
		if g.serve(w, r, noDispatch); w.code != 0 {
			b.Fatalf("allowed request answered %d", w.code)
		}
		b.ReportAllocs()
		for b.Loop() {
			g.serve(w, r, noDispatch)
		}
	})
	rejections := []struct {
		name string
		r    *http.Request
		code int
	}{
		{"no_route", req("GET", "/nope", "140.82.112.5", ""), 403},
		{"policy_denied", req("GET", "/forward", "8.8.8.8", keyA), 403},
		{"key_rejected", req("GET", "/forward", "140.82.112.5", ""), 403},
		{"throttled", req("GET", "/slow", "140.82.112.5", ""), 429},
		{"quota_exceeded", req("GET", "/forward", "140.82.112.5", keyB), 429},
	}
	for _, rj := range rejections {
		b.Run(rj.name, func(b *testing.B) {
			if g.ServeHTTP(w, rj.r); w.code != rj.code {
				b.Fatalf("answered %d, want %d", w.code, rj.code)
			}
			b.ReportAllocs()
			for b.Loop() {
				g.ServeHTTP(w, rj.r)
			}
		})
	}
	// The same, answered below net/http (Gateway.Early): the rejections,
	// and what asking costs a request Early leaves to serving.
	for _, rj := range rejections[:4] {
		b.Run("early/"+rj.name, func(b *testing.B) {
			if !g.Early(w, rj.r) || w.code != rj.code {
				b.Fatalf("Early answered %d, want %d", w.code, rj.code)
			}
			b.ReportAllocs()
			for b.Loop() {
				g.Early(w, rj.r)
			}
		})
	}
	b.Run("early/undecided", func(b *testing.B) {
		r := req("GET", "/forward", "140.82.112.5", keyA)
		if g.Early(w, r) {
			b.Fatal("Early answered an allowed request")
		}
		b.ReportAllocs()
		for b.Loop() {
			g.Early(w, r)
		}
	})
	b.Run("signature_rejected", func(b *testing.B) {
		r := req("POST", "/hook", "140.82.112.5", "")
		body := &rewind{b: []byte(`{"zen":"Design for failure."}`)}
		r.Body, r.ContentLength = body, int64(len(body.b))
		r.Header.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
		if g.ServeHTTP(w, r); w.code != 401 {
			b.Fatalf("answered %d, want 401", w.code)
		}
		b.ReportAllocs()
		for b.Loop() {
			body.i = 0
			g.ServeHTTP(w, r)
		}
	})
}
