package gateway

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memory"
)

// earlyYAML has a rejection of every kind Early answers, and every kind
// it must leave to serving; {T} is the backend.
var earlyYAML = `
stage: prod
account_throttle: {rate: 1000, burst: 1000}
resource_policy:
  Version: "2012-10-17"
  Statement:
    - {Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*/*/*"}
    - {Effect: Deny, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*/*/denied"}
usage_plans:
  gold: {quota: {limit: 1, period: DAY}}
api_keys:
  - {name: alice, plan: gold, sha256: ` + digest(keyA) + `}
cors:
  allow_origins: ["https://app.example.com"]
routes:
  - {path: /key, methods: [GET, POST], target: "{T}/key", api_key_required: true}
  - {path: /denied, target: "{T}/denied"}
  - {path: /one, target: "{T}/one", throttle: {rate: 0.001, burst: 1}, cors: false}
  - {path: /open, target: "{T}/open", allow_ips: ["10.0.0.0/8"], cors: false}
  - {path: /hook, methods: [POST], target: "{T}/hook", verify: {provider: github, secret_env: GH}, cors: false}
`

// TestEarlyMatchesServe: a gateway that is offered every request through
// Early first (and serves what Early leaves) answers, counts and logs
// exactly as one that only serves, and Early answers just the
// rejections that take no state.
func TestEarlyMatchesServe(t *testing.T) {
	b := newBackend(t, nil)
	type side struct {
		g   *Gateway
		m   *metrics.Metrics
		log *bytes.Buffer
	}
	build := func(st store.Store) side {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: new(sync.Mutex)}, nil))
		clk := newClock("2026-12-01T12:00:00Z")
		g, m := buildFor(t, earlyYAML, b.URL, Deps{Log: log, Now: clk.Now, Store: st}, map[string]string{"GH": "s3cret"})
		return side{g, m, &buf}
	}
	early, served := build(memory.New()), build(memory.New())

	cases := []struct {
		name, method, path, ip string
		hdr                    map[string]string
		early                  bool // Early answers it (else serving does)
		status                 int
	}{
		{"no route", "GET", "/nope", "10.0.0.1", nil, true, 403},
		{"bad path", "GET", "/a/../b", "10.0.0.1", nil, true, 403},
		{"no key", "GET", "/key", "10.0.0.1", nil, true, 403},
		{"unknown key", "POST", "/key", "10.0.0.1", withKey(keyB), true, 403},
		{"no key, CORS origin", "GET", "/key", "10.0.0.1", map[string]string{"Origin": "https://app.example.com"}, true, 403},
		{"policy deny", "GET", "/denied", "10.0.0.1", nil, true, 403},
		{"allow_ips", "GET", "/open", "192.0.2.1", nil, true, 403},
		{"key, first in quota", "GET", "/key", "10.0.0.1", withKey(keyA), false, 200},
		{"key, over quota (takes a token first)", "GET", "/key", "10.0.0.1", withKey(keyA), false, 429},
		{"throttle, first token", "GET", "/one", "10.0.0.1", nil, false, 200},
		{"throttled", "GET", "/one", "10.0.0.1", nil, true, 429},
		{"throttled again", "DELETE", "/one", "10.0.0.1", nil, true, 429},
		{"allowed", "GET", "/open", "10.9.9.9", nil, false, 200},
		{"webhook without signature", "POST", "/hook", "10.0.0.1", nil, false, 401},
		{"preflight", "OPTIONS", "/key", "10.0.0.1", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}, false, 204},
	}
	for _, c := range cases {
		req := func() *http.Request {
			r := httptest.NewRequest(c.method, c.path, nil)
			r.RemoteAddr = c.ip + ":40000"
			for k, v := range c.hdr {
				r.Header.Set(k, v)
			}
			return r
		}
		we := httptest.NewRecorder()
		answered := early.g.Early(we, req())
		if answered != c.early {
			t.Errorf("%s: Early answered %v, want %v", c.name, answered, c.early)
		}
		if !answered {
			if we.Code != 200 || len(we.Header()) != 0 || we.Body.Len() != 0 {
				t.Errorf("%s: Early left it but wrote %d %v %q", c.name, we.Code, we.Header(), we.Body)
			}
			we = httptest.NewRecorder()
			early.g.ServeHTTP(we, req())
		}
		ws := httptest.NewRecorder()
		served.g.ServeHTTP(ws, req())
		if ws.Code != c.status {
			t.Errorf("%s: served %d, want %d", c.name, ws.Code, c.status)
		}
		if we.Code != ws.Code || we.Body.String() != ws.Body.String() {
			t.Errorf("%s: early path %d %q, served %d %q", c.name, we.Code, we.Body, ws.Code, ws.Body)
		}
		if a, b := headerText(we.Header()), headerText(ws.Header()); a != b {
			t.Errorf("%s: headers differ\nearly path:\n%s\nserved:\n%s", c.name, a, b)
		}
	}
	if a, b := requestCounts(t, early.m), requestCounts(t, served.m); a != b {
		t.Errorf("request counts differ\nearly path:\n%s\nserved:\n%s", a, b)
	}
	if a, b := logText(early.log), logText(served.log); a != b {
		t.Errorf("access logs differ\nearly path:\n%s\nserved:\n%s", a, b)
	}
	if n := strings.Count(logText(early.log), "\n"); n != len(cases) {
		t.Errorf("%d access lines for %d requests", n, len(cases))
	}
}

// TestEarlyLeavesRemoteStores: with a store outside the process, a
// throttle is never read early (it would add a round trip to every
// request it lets on): the 429 comes from serving.
func TestEarlyLeavesRemoteStores(t *testing.T) {
	b := newBackend(t, nil)
	remote := struct{ store.Store }{memory.New()} // hides store.Local
	g, _ := buildFor(t, earlyYAML, b.URL, Deps{Store: remote, Now: newClock("2026-12-01T12:00:00Z").Now}, map[string]string{"GH": "x"})
	for i, want := range []int{200, 429} {
		r := httptest.NewRequest("GET", "/one", nil)
		if g.Early(httptest.NewRecorder(), r) {
			t.Fatalf("request %d: Early answered with a remote store", i)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		wantEq(t, fmt.Sprintf("request %d", i), w.Code, want)
	}
	// Stateless rejections are still answered early.
	if !g.Early(httptest.NewRecorder(), httptest.NewRequest("GET", "/key", nil)) {
		t.Error("Early did not answer a missing key with a remote store")
	}
}

var volatile = regexp.MustCompile(`"(request_id|duration_ms|upstream_ms|time)":("[^"]*"|[0-9.e-]+),?`)

func logText(b *bytes.Buffer) string { return volatile.ReplaceAllString(b.String(), "") }

// headerText is the answer's headers but the per-request ids and Date.
func headerText(h http.Header) string {
	var lines []string
	for k, vs := range h {
		switch k {
		case "x-amzn-RequestId", "x-amz-apigw-id", "apigw-requestid", "Date":
			continue
		}
		lines = append(lines, k+": "+strings.Join(vs, ", "))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// requestCounts is the requests counter, one line per label set.
func requestCounts(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		if !strings.HasSuffix(mf.GetName(), "requests_total") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var l []string
			for _, lp := range mt.GetLabel() {
				l = append(l, lp.GetName()+"="+lp.GetValue())
			}
			if v := mt.GetCounter().GetValue(); v != 0 {
				lines = append(lines, fmt.Sprintf("%s{%s} %v", mf.GetName(), strings.Join(l, ","), v))
			}
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// FuzzEarlyMatchesServe: for any request, a gateway offered it through
// Early first answers, counts and logs as one that only serves it.
func FuzzEarlyMatchesServe(f *testing.F) {
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	f.Cleanup(b.Close)
	type side struct {
		g   *Gateway
		m   *metrics.Metrics
		log *bytes.Buffer
	}
	build := func() side {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: new(sync.Mutex)}, nil))
		// Every rejection's line in full: the sampler runs on the real
		// clock, which the two gateways read at different instants.
		yaml := earlyYAML + "log: {rejections: {rate: 1000000000, burst: 1000000000}}\n"
		g, m := buildFor(f, yaml, b.URL, Deps{Log: log, Now: newClock("2026-12-01T12:00:00Z").Now}, map[string]string{"GH": "s3cret"})
		return side{g, m, &buf}
	}
	early, served := build(), build()
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"}
	f.Add(uint8(0), "/key", "10.0.0.1", "", "", "")
	f.Add(uint8(0), "/key", "10.0.0.1", keyA, "", "https://app.example.com")
	f.Add(uint8(1), "/denied", "192.0.2.1", "", "203.0.113.9", "")
	f.Add(uint8(0), "/one", "10.0.0.1", "", "", "")
	f.Add(uint8(4), "/open/../key", "10.1.1.1", keyB, "10.0.0.1, 10.0.0.2", "")
	f.Add(uint8(5), "/key", "10.0.0.1", "", "", "https://app.example.com")
	f.Add(uint8(1), "/hook", "10.0.0.1", "", "", "")
	f.Add(uint8(0), "/%6Bey", "10.0.0.1", "", "", "")
	f.Fuzz(func(t *testing.T, mi uint8, path, ip, key, xff, origin string) {
		u, err := url.ParseRequestURI(path)
		a, aerr := netip.ParseAddr(ip)
		if err != nil || aerr != nil || !strings.HasPrefix(path, "/") {
			return
		}
		req := func() *http.Request {
			r := &http.Request{Method: methods[int(mi)%len(methods)], URL: u, RequestURI: path, Proto: "HTTP/1.1",
				ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Host: "gw.test", Body: http.NoBody,
				RemoteAddr: netip.AddrPortFrom(a, 40000).String()}
			for k, v := range map[string]string{"X-Api-Key": key, "X-Forwarded-For": xff, "Origin": origin} {
				if v != "" {
					r.Header[k] = []string{v}
				}
			}
			return r
		}
		fromE, fromS := early.log.Len(), served.log.Len()
		we := httptest.NewRecorder()
		if !early.g.Early(we, req()) {
			we = httptest.NewRecorder()
			early.g.ServeHTTP(we, req())
		}
		ws := httptest.NewRecorder()
		served.g.ServeHTTP(ws, req())
		if we.Code != ws.Code || we.Body.String() != ws.Body.String() || headerText(we.Header()) != headerText(ws.Header()) {
			t.Fatalf("early path %d %v %q, served %d %v %q", we.Code, we.Header(), we.Body, ws.Code, ws.Header(), ws.Body)
		}
		if a, b := requestCounts(t, early.m), requestCounts(t, served.m); a != b {
			t.Fatalf("request counts differ: %s", firstDiff(a, b))
		}
		// This request's lines only: the buffers grow with every input.
		if a, b := logText(bytes.NewBuffer(early.log.Bytes()[fromE:])), logText(bytes.NewBuffer(served.log.Bytes()[fromS:])); a != b {
			t.Fatalf("access lines differ: %s", firstDiff(a, b))
		}
	})
}

// firstDiff is the first line where a and b differ.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(la), len(lb)) {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d\nearly path: %s\nserved:     %s", i+1, x, y)
		}
	}
	return "none"
}
