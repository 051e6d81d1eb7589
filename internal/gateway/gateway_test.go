package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// seen is what a recording backend received.
type seen struct {
	Method, RequestURI, Host string
	Header                   http.Header
	Body                     []byte
	ContentLength            int64
	TransferEncoding         []string
}

// backend is a real loopback server that records every request and
// answers with handle (default: 200 "ok").
type backend struct {
	*httptest.Server
	mu     sync.Mutex
	got    []seen
	handle http.HandlerFunc
}

func newBackend(t *testing.T, handle http.HandlerFunc) *backend {
	b := &backend{handle: handle}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, seen{r.Method, r.RequestURI, r.Host, r.Header.Clone(), body, r.ContentLength, r.TransferEncoding})
		b.mu.Unlock()
		if b.handle != nil {
			b.handle(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) requests() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.got...)
}

func (b *backend) last(t *testing.T) seen {
	t.Helper()
	got := b.requests()
	if len(got) == 0 {
		t.Fatal("backend saw no request")
	}
	return got[len(got)-1]
}

// gatewayFor builds a gateway from YAML where {T} is replaced by the
// backend's URL, serves it on loopback, and returns its URL and metrics.
func gatewayFor(t *testing.T, yaml string, target string) (string, *metrics.Metrics) {
	t.Helper()
	g, m := buildFor(t, yaml, target, Deps{}, nil)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv.URL, m
}

// buildFor compiles YAML where {T} is replaced by target, with deps (a
// fresh memory store and metrics unless set) and env for secrets.
func buildFor(t testing.TB, yaml, target string, deps Deps, env map[string]string) (*Gateway, *metrics.Metrics) {
	t.Helper()
	yaml = strings.ReplaceAll(yaml, "{T}", target)
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if deps.Metrics == nil {
		deps.Metrics = metrics.New()
	}
	if deps.Store == nil {
		st := memory.New()
		t.Cleanup(func() { st.Close() })
		deps.Store = st
	}
	g, err := Build(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g, deps.Metrics
}

const routesYAML = `
routes:
  - path: /forward
    methods: [GET, HEAD, POST, PUT]
    target: {T}/internal/fwd
    timeout: 1s
  - path: /hooks/*
    target: {T}/base/
    timeout: 1s
  - path: /env
    target: {T}/e
    response: envelope
`

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

func TestForwardingRules(t *testing.T) {
	binary := make([]byte, 512)
	for i := range binary {
		binary[i] = byte(i)
	}
	type check func(t *testing.T, resp *http.Response, body []byte, got seen)
	cases := []struct {
		name    string
		handle  http.HandlerFunc
		request func(base string) *http.Request
		check   check
	}{
		{
			name:    "exact route goes to the target path, query byte-identical with ; and duplicates",
			request: func(base string) *http.Request { return mustReq("GET", base+"/forward?a=1;b=2&a=1&a=%2F&z", nil) },
			check: func(t *testing.T, resp *http.Response, body []byte, got seen) {
				wantEq(t, "request URI", got.RequestURI, "/internal/fwd?a=1;b=2&a=1&a=%2F&z")
				wantEq(t, "status", resp.StatusCode, 200)
			},
		},
		{
			name:    "prefix route appends the rest to the target path",
			request: func(base string) *http.Request { return mustReq("GET", base+"/hooks/a/b%20c?q=1", nil) },
			check: func(t *testing.T, _ *http.Response, _ []byte, got seen) {
				wantEq(t, "request URI", got.RequestURI, "/base/a/b%20c?q=1")
			},
		},
		{
			name:    "bare prefix matches with an empty rest",
			request: func(base string) *http.Request { return mustReq("GET", base+"/hooks", nil) },
			check: func(t *testing.T, _ *http.Response, _ []byte, got seen) {
				wantEq(t, "request URI", got.RequestURI, "/base/")
			},
		},
		{
			name: "Host is the target's; X-Forwarded-* and X-Request-Id set by us",
			request: func(base string) *http.Request {
				r := mustReq("GET", base+"/forward", nil)
				r.Host = "public.example"
				r.Header.Set("X-Forwarded-For", "6.6.6.6")
				r.Header.Set("X-Forwarded-Host", "evil")
				r.Header.Set("X-Request-Id", "client-chosen")
				r.Header.Set("Forwarded", "for=6.6.6.6")
				r.Header.Set("X-Real-Ip", "6.6.6.6")
				return r
			},
			check: func(t *testing.T, resp *http.Response, _ []byte, got seen) {
				if got.Host == "public.example" || !strings.HasPrefix(got.Host, "127.0.0.1:") {
					t.Errorf("Host = %q, want the target's", got.Host)
				}
				wantEq(t, "X-Forwarded-For", got.Header.Values("X-Forwarded-For"), []string{"127.0.0.1"})
				wantEq(t, "X-Forwarded-Host", got.Header.Get("X-Forwarded-Host"), "public.example")
				wantEq(t, "X-Forwarded-Proto", got.Header.Get("X-Forwarded-Proto"), "http")
				wantEq(t, "Forwarded", got.Header.Values("Forwarded"), []string(nil))
				wantEq(t, "X-Real-Ip", got.Header.Values("X-Real-Ip"), []string(nil))
				id := got.Header.Get("X-Request-Id")
				if len(id) != 36 || id == "client-chosen" {
					t.Errorf("X-Request-Id = %q, want a fresh UUID", id)
				}
				wantEq(t, "x-amzn-RequestId", resp.Header.Get("X-Amzn-Requestid"), id)
			},
		},
		{
			name: "Connection cannot remove proxy-added headers; named headers dropped",
			request: func(base string) *http.Request {
				r := mustReq("GET", base+"/forward", nil)
				r.Header.Set("Connection", "X-Forwarded-For, Foo, X-Request-Id")
				r.Header.Set("Foo", "bar")
				r.Header.Set("Keep-Alive", "timeout=5")
				r.Header.Set("Te", "gzip")
				r.Header.Set("Proxy-Authorization", "Basic eDp5")
				r.Header.Set("X-End-To-End", "kept")
				return r
			},
			check: func(t *testing.T, _ *http.Response, _ []byte, got seen) {
				wantEq(t, "X-Forwarded-For", got.Header.Get("X-Forwarded-For"), "127.0.0.1")
				if got.Header.Get("X-Request-Id") == "" {
					t.Error("X-Request-Id removed by the client's Connection header")
				}
				for _, h := range []string{"Foo", "Keep-Alive", "Te", "Proxy-Authorization"} {
					if v := got.Header.Values(h); v != nil {
						t.Errorf("hop-by-hop %s reached the backend: %q", h, v)
					}
				}
				wantEq(t, "X-End-To-End", got.Header.Get("X-End-To-End"), "kept")
			},
		},
		{
			name: "API keys never forwarded, under any spelling",
			request: func(base string) *http.Request {
				r := mustReq("GET", base+"/forward", nil)
				r.Header["x-api-key"] = []string{"k1"}
				r.Header["X_Api_Key"] = []string{"k2"}
				r.Header["X-API-KEY"] = []string{"k3"}
				r.Header["X_forwarded_for"] = []string{"6.6.6.6"}
				return r
			},
			check: func(t *testing.T, _ *http.Response, _ []byte, got seen) {
				for k, v := range got.Header {
					if forward.Protected(k) && k != "X-Forwarded-For" && k != "X-Forwarded-Host" && k != "X-Forwarded-Proto" && k != "X-Request-Id" {
						t.Errorf("protected header %s: %q reached the backend", k, v)
					}
					if strings.Contains(strings.Join(v, ","), "k1") || strings.Contains(strings.Join(v, ","), "k2") || strings.Contains(strings.Join(v, ","), "k3") {
						t.Errorf("key value reached the backend in %s", k)
					}
				}
			},
		},
		{
			name: "h2c upgrade stripped, request proceeds",
			request: func(base string) *http.Request {
				r := mustReq("GET", base+"/forward", nil)
				r.Header.Set("Connection", "Upgrade, HTTP2-Settings")
				r.Header.Set("Upgrade", "h2c")
				r.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
				return r
			},
			check: func(t *testing.T, resp *http.Response, _ []byte, got seen) {
				wantEq(t, "status", resp.StatusCode, 200)
				for _, h := range []string{"Upgrade", "Http2-Settings", "Connection"} {
					if v := got.Header.Values(h); v != nil {
						t.Errorf("%s reached the backend: %q", h, v)
					}
				}
			},
		},
		{
			name: "302 passed back unchanged, not followed",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "http://elsewhere.example/x?y=1")
				w.Header().Set("Set-Cookie", "a=b; Path=/; HttpOnly")
				w.Header().Add("Set-Cookie", "c=d")
				w.WriteHeader(302)
				io.WriteString(w, "moved")
			},
			request: func(base string) *http.Request { return mustReq("GET", base+"/forward", nil) },
			check: func(t *testing.T, resp *http.Response, body []byte, _ seen) {
				wantEq(t, "status", resp.StatusCode, 302)
				wantEq(t, "Location", resp.Header.Get("Location"), "http://elsewhere.example/x?y=1")
				wantEq(t, "Set-Cookie", resp.Header.Values("Set-Cookie"), []string{"a=b; Path=/; HttpOnly", "c=d"})
				wantEq(t, "body", string(body), "moved")
			},
		},
		{
			name: "hop-by-hop response headers dropped, end-to-end kept",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "X-Internal")
				w.Header().Set("X-Internal", "secret")
				w.Header().Set("Keep-Alive", "timeout=5")
				w.Header().Set("X-Backend", "yes")
				w.WriteHeader(201)
			},
			request: func(base string) *http.Request { return mustReq("POST", base+"/forward", strings.NewReader("x")) },
			check: func(t *testing.T, resp *http.Response, _ []byte, _ seen) {
				wantEq(t, "status", resp.StatusCode, 201)
				wantEq(t, "X-Internal", resp.Header.Values("X-Internal"), []string(nil))
				wantEq(t, "Keep-Alive", resp.Header.Values("Keep-Alive"), []string(nil))
				wantEq(t, "X-Backend", resp.Header.Get("X-Backend"), "yes")
			},
		},
		{
			name: "binary bodies intact both ways",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Write(binary)
			},
			request: func(base string) *http.Request {
				r := mustReq("PUT", base+"/forward", bytes.NewReader(binary))
				r.Header.Set("Content-Type", "application/octet-stream")
				return r
			},
			check: func(t *testing.T, resp *http.Response, body []byte, got seen) {
				if !bytes.Equal(got.Body, binary) {
					t.Error("backend got a different request body")
				}
				if !bytes.Equal(body, binary) {
					t.Error("client got a different response body")
				}
				wantEq(t, "Content-Type", got.Header.Get("Content-Type"), "application/octet-stream")
			},
		},
		{
			name: "chunked request body arrives whole, with a Content-Length",
			request: func(base string) *http.Request {
				r := mustReq("POST", base+"/forward", io.MultiReader(strings.NewReader("chunk1-"), strings.NewReader("chunk2")))
				r.ContentLength = -1
				return r
			},
			check: func(t *testing.T, resp *http.Response, _ []byte, got seen) {
				wantEq(t, "body", string(got.Body), "chunk1-chunk2")
				wantEq(t, "content length", got.ContentLength, int64(13))
				wantEq(t, "transfer encoding", len(got.TransferEncoding), 0)
				wantEq(t, "Connection after a chunked request", resp.Close, true)
			},
		},
		{
			name: "passthrough keeps status, headers and body",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(418)
				io.WriteString(w, "teapot \"body\"")
			},
			request: func(base string) *http.Request { return mustReq("GET", base+"/forward", nil) },
			check: func(t *testing.T, resp *http.Response, body []byte, _ seen) {
				wantEq(t, "status", resp.StatusCode, 418)
				wantEq(t, "Content-Type", resp.Header.Get("Content-Type"), "text/plain")
				wantEq(t, "body", string(body), `teapot "body"`)
			},
		},
		{
			name: "envelope wraps the body as text with the backend's status",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("X-Backend", "dropped")
				w.WriteHeader(418)
				io.WriteString(w, "teapot \"body\"\n")
			},
			request: func(base string) *http.Request { return mustReq("GET", base+"/env?x=1", nil) },
			check: func(t *testing.T, resp *http.Response, body []byte, got seen) {
				wantEq(t, "status", resp.StatusCode, 418)
				wantEq(t, "Content-Type", resp.Header.Get("Content-Type"), "application/json")
				wantEq(t, "X-Backend", resp.Header.Get("X-Backend"), "")
				wantEq(t, "body", string(body), `{"result": "teapot \"body\"\n"}`)
				wantEq(t, "request URI", got.RequestURI, "/e?x=1")
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBackend(t, c.handle)
			base, _ := gatewayFor(t, routesYAML, b.URL)
			resp, body := do(t, c.request(base))
			c.check(t, resp, body, b.last(t))
		})
	}
}

func mustReq(method, url string, body io.Reader) *http.Request {
	r, err := http.NewRequest(method, url, body)
	if err != nil {
		panic(err)
	}
	return r
}

func wantEq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// raw sends bytes on a fresh TCP connection and returns the parsed
// response (and whether the server closed the connection after it).
func raw(t *testing.T, base, request string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, request)
	br := bufio.NewReader(conn)
	var sent *http.Request // nil reads as GET; HEAD answers carry no body
	if strings.HasPrefix(request, "HEAD ") {
		sent = &http.Request{Method: "HEAD"}
	}
	resp, err := http.ReadResponse(br, sent)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestErrorsAndRejections(t *testing.T) {
	cases := []struct {
		name       string
		request    string
		status     int
		body       string
		errorType  string
		wantClosed bool
	}{
		{"no route", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 403, `{"message":"Missing Authentication Token"}`, "MissingAuthenticationTokenException", false},
		{"method not on route", "DELETE /forward HTTP/1.1\r\nHost: x\r\n\r\n", 403, `{"message":"Missing Authentication Token"}`, "MissingAuthenticationTokenException", false},
		{"case-sensitive path", "GET /Forward HTTP/1.1\r\nHost: x\r\n\r\n", 403, `{"message":"Missing Authentication Token"}`, "MissingAuthenticationTokenException", false},
		{"declared length over the limit, nothing read", "POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n", 413, `{"message":"Request Too Long"}`, "RequestEntityTooLargeException", true},
		{"chunked body past the limit", "POST /forward HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + strings.Repeat("a", 1024) + "\r\n400\r\n" + strings.Repeat("a", 1024) + "\r\n0\r\n\r\n", 413, `{"message":"Request Too Long"}`, "RequestEntityTooLargeException", true},
		{"malformed chunk", "POST /forward HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, `{"message":"Bad Request"}`, "BadRequestException", true},
		{"headers over the limit", "GET /forward HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 1500) + "\r\n\r\n", 431, `{"message":"Request Header Fields Too Large"}`, "BadRequestException", false},
	}
	yaml := "limits: {max_body_bytes: 1500, max_header_bytes: 1024}\n" + routesYAML
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBackend(t, nil)
			base, _ := gatewayFor(t, yaml, b.URL)
			resp, body := raw(t, base, c.request)
			wantEq(t, "status", resp.StatusCode, c.status)
			wantEq(t, "body", body, c.body)
			wantEq(t, "Content-Type", resp.Header.Get("Content-Type"), "application/json")
			wantEq(t, "x-amzn-ErrorType", resp.Header.Get("X-Amzn-Errortype"), c.errorType)
			if id := resp.Header.Get("X-Amzn-Requestid"); len(id) != 36 {
				t.Errorf("x-amzn-RequestId = %q", id)
			}
			wantEq(t, "connection closed", resp.Close, c.wantClosed)
			wantEq(t, "requests at the backend", len(b.requests()), 0)
			wantEq(t, "Content-Length", resp.Header.Get("Content-Length"), strconv.Itoa(len(c.body)))
			wantDate(t, resp)
		})
	}
	t.Run("HEAD", func(t *testing.T) {
		b := newBackend(t, nil)
		base, _ := gatewayFor(t, yaml, b.URL)
		resp, body := raw(t, base, "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n")
		wantEq(t, "status", resp.StatusCode, 403)
		wantEq(t, "body", body, "")
		wantEq(t, "Content-Length", resp.Header.Get("Content-Length"), "0") // as API Gateway: no body, length 0
		wantDate(t, resp)
	})
}

// wantDate checks an answer's Date header: one, in HTTP's format, now.
func wantDate(t *testing.T, resp *http.Response) {
	t.Helper()
	v := resp.Header.Values("Date")
	if len(v) != 1 {
		t.Fatalf("Date headers = %q, want one", v)
	}
	d, err := http.ParseTime(v[0])
	if err != nil || v[0] != d.Format(http.TimeFormat) {
		t.Fatalf("Date %q is not in HTTP's format (%v)", v[0], err)
	}
	if age := time.Since(d); age < -time.Second || age > 3*time.Second {
		t.Fatalf("Date %q is %v from now", v[0], age)
	}
}

func TestHTTPFlavourNoRoute(t *testing.T) {
	b := newBackend(t, nil)
	base, _ := gatewayFor(t, "api: http\n"+routesYAML, b.URL)
	resp, body := do(t, mustReq("GET", base+"/nope", nil))
	wantEq(t, "status", resp.StatusCode, 404)
	wantEq(t, "body", string(body), `{"message":"Not Found"}`)
}

// TestPathRules: paths the path rule refuses (docs/hardening.md#one-path-form)
// never reach a backend and get the no-route answer.
func TestPathRules(t *testing.T) {
	b := newBackend(t, nil)
	base, _ := gatewayFor(t, routesYAML, b.URL)
	bad := []string{
		"/hooks/../forward", "/hooks/./x", "/hooks/%2e%2e/forward", "/hooks/%2E./x", "/hooks/.%2e",
		"/hooks/..%2fforward", "/hooks/a%2Fb", "/hooks/a%5cb", "/hooks\\..\\forward", "/hooks/a\\b",
		"/hooks/a%00b", "//hooks/x", "/hooks//x", "/hooks/a//b", "/forward/..", "*",
	}
	for _, p := range bad {
		t.Run(p, func(t *testing.T) {
			resp, body := raw(t, base, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode == 400 {
				return // refused by net/http's own parser: also never forwarded
			}
			wantEq(t, "status", resp.StatusCode, 403)
			wantEq(t, "body", body, `{"message":"Missing Authentication Token"}`)
		})
	}
	if n := len(b.requests()); n != 0 {
		t.Errorf("backend saw %d requests for bad paths: %+v", n, b.requests())
	}
	good := []string{"/hooks/a/b", "/hooks/", "/hooks/a.b/..c/...", "/hooks/%41"}
	for _, p := range good {
		resp, _ := raw(t, base, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
		wantEq(t, p+" status", resp.StatusCode, 200)
	}
}

func TestUpstreamErrors(t *testing.T) {
	t.Run("refused is 502", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := "http://" + l.Addr().String()
		l.Close()
		base, m := gatewayFor(t, routesYAML, dead)
		resp, body := do(t, mustReq("GET", base+"/forward", nil))
		wantEq(t, "status", resp.StatusCode, 502)
		wantEq(t, "body", string(body), `{"message":"Bad Gateway"}`)
		wantEq(t, "outcome count", testutil.ToFloat64(m.Requests.WithLabelValues("/forward", "GET", "upstream_error")), 1.0)
	})
	t.Run("slow is 504 at the route timeout", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		base, m := gatewayFor(t, routesYAML, b.URL)
		start := time.Now()
		resp, body := do(t, mustReq("GET", base+"/forward", nil))
		elapsed := time.Since(start)
		wantEq(t, "status", resp.StatusCode, 504)
		wantEq(t, "body", string(body), `{"message":"Endpoint request timed out"}`)
		if elapsed < time.Second || elapsed > 1500*time.Millisecond {
			t.Errorf("504 after %v, want 1s..1.5s", elapsed)
		}
		wantEq(t, "outcome count", testutil.ToFloat64(m.Requests.WithLabelValues("/forward", "GET", "upstream_timeout")), 1.0)
	})
	t.Run("client still sending gets 504 within 1.5s and the backend nothing", func(t *testing.T) {
		b := newBackend(t, nil)
		base, _ := gatewayFor(t, routesYAML, b.URL)
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		io.WriteString(conn, "POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
		stop := make(chan struct{})
		defer close(stop)
		go func() { // keep trickling, as a slow client would
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		body, _ := io.ReadAll(resp.Body)
		wantEq(t, "status", resp.StatusCode, 504)
		wantEq(t, "body", string(body), `{"message":"Endpoint request timed out"}`)
		wantEq(t, "connection closed", resp.Close, true)
		if elapsed > 1500*time.Millisecond {
			t.Errorf("504 after %v, want ≤ 1.5s", elapsed)
		}
		wantEq(t, "requests at the backend", len(b.requests()), 0)
	})
	t.Run("truncated body is 400, backend sees nothing", func(t *testing.T) {
		b := newBackend(t, nil)
		base, _ := gatewayFor(t, routesYAML, b.URL)
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-this")
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		wantEq(t, "status", resp.StatusCode, 400)
		wantEq(t, "body", string(body), `{"message":"Bad Request"}`)
		wantEq(t, "requests at the backend", len(b.requests()), 0)
	})
}

// TestRejectionKeepsConnection: a rejected request without a body keeps
// its keep-alive connection (closing halves the rejection rate).
func TestRejectionKeepsConnection(t *testing.T) {
	b := newBackend(t, nil)
	base, _ := gatewayFor(t, routesYAML, b.URL)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for i, want := range []int{403, 200, 403} {
		path := "/nope"
		if want == 200 {
			path = "/forward"
		}
		io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the same connection: %v", i, err)
		}
		io.ReadAll(resp.Body)
		wantEq(t, "status", resp.StatusCode, want)
		wantEq(t, "closed", resp.Close, false)
	}
}

func TestMetricsOutcomes(t *testing.T) {
	b := newBackend(t, nil)
	base, m := gatewayFor(t, "limits: {max_body_bytes: 10}\n"+routesYAML, b.URL)
	do(t, mustReq("GET", base+"/forward", nil))
	do(t, mustReq("POST", base+"/forward", strings.NewReader("x")))
	do(t, mustReq("GET", base+"/nope", nil))
	do(t, mustReq("GET", base+"/nope", nil))
	do(t, mustReq("POST", base+"/forward", strings.NewReader(strings.Repeat("x", 11))))
	for _, c := range []struct {
		route, method, outcome string
		want                   float64
	}{
		{"/forward", "GET", "forwarded", 1},
		{"/forward", "POST", "forwarded", 1},
		{"_none", "GET", "no_route", 2},
		{"/forward", "POST", "too_large", 1},
		{"/forward", "GET", "upstream_error", 0},
	} {
		got := testutil.ToFloat64(m.Requests.WithLabelValues(c.route, c.method, c.outcome))
		wantEq(t, c.route+" "+c.method+" "+c.outcome, got, c.want)
	}
}

func TestPathOK(t *testing.T) {
	cases := map[string]bool{
		"/": true, "/a": true, "/a/": true, "/a/b": true, "/a.b": true, "/..a": true, "/a/...": true, "/%41": true,
		"": false, "a": false, "/.": false, "/..": false, "/a/./b": false, "/a/../b": false, "/%2e": false,
		"/%2E%2e/x": false, "/a%2fb": false, "/a%5Cb": false, "/a\\b": false, "/a%00": false, "//a": false,
		"/a//b": false, "/a%": false, "/a%zz": false, "/a%2": false,
	}
	for p, want := range cases {
		if got := pathOK(p); got != want {
			t.Errorf("pathOK(%q) = %v, want %v", p, got, want)
		}
	}
}

// FuzzPathOK: whatever pathOK accepts has no dot segment, NUL, backslash
// or encoded slash once decoded, and matching never panics.
func FuzzPathOK(f *testing.F) {
	for _, s := range []string{"/a/b", "/hooks/../x", "/%2e%2E/", "/a%2fb", "//", "/a\\b", "/%00", "/items/1/parts/a%20b/c", "/items/%61/parts/", "/%69tems/1/parts/x"} {
		f.Add(s)
	}
	tmpl := &route{methods: 1}
	tmpl.tmpl, tmpl.base = compileTemplate("/items/{id}/parts/{rest+}")
	rt := newRouter([]*route{{base: "/hooks", prefix: true, methods: 1}, {base: "/a", methods: 1}, tmpl})
	f.Fuzz(func(t *testing.T, p string) {
		if !pathOK(p) {
			return
		}
		dec, err := pathUnescape(p)
		if err != nil {
			t.Fatalf("pathOK accepted undecodable %q", p)
		}
		if strings.ContainsAny(dec, "\\\x00") {
			t.Fatalf("pathOK(%q) accepted, decodes to %q", p, dec)
		}
		for _, seg := range strings.Split(dec, "/")[1:] {
			if seg == "." || seg == ".." {
				t.Fatalf("pathOK(%q) accepted a dot segment", p)
			}
		}
		if strings.Count(dec, "/") != strings.Count(p, "/") {
			t.Fatalf("pathOK(%q) accepted an encoded slash", p)
		}
		if r, rest := rt.match("GET", dec, p); r == tmpl && !strings.HasPrefix(dec, "/items/") || r != nil && !strings.HasSuffix(p, rest) {
			t.Fatalf("%q matched %v with rest %q", p, r, rest)
		}
	})
}

func pathUnescape(s string) (string, error) { return url.PathUnescape(s) }

// FuzzEscapedPathIsSafe: the access line writes the escaped path without
// escaping it (logFields: Safe), which holds only while every path a
// request can carry escapes to printable ASCII without '"' or '\'. Both
// ways a path arrives: parsed from a request line, or set by the Lambda
// adapter on a URL.
func FuzzEscapedPathIsSafe(f *testing.F) {
	for _, s := range []string{"/a/b", "/a\"b", "/a\\b", "/%22%5c", "/é", "/\xff\x00\n", "/a b?c", "/%zz", "*", "/a%2Fb;c"} {
		f.Add(s)
	}
	check := func(t *testing.T, from, p string) {
		for i := 0; i < len(p); i++ {
			if b := p[i]; b < 0x20 || b > 0x7e || b == '"' || b == '\\' {
				t.Fatalf("%s: escaped path %q has byte %#x", from, p, b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		if u, err := url.ParseRequestURI(s); err == nil {
			check(t, "ParseRequestURI("+strconv.Quote(s)+")", u.EscapedPath())
		}
		u := url.URL{Path: s}
		check(t, "URL{Path: "+strconv.Quote(s)+"}", u.EscapedPath())
		u.RawPath = s // an invalid RawPath is ignored in favour of Path
		check(t, "URL{Path, RawPath: "+strconv.Quote(s)+"}", u.EscapedPath())
	})
}
