package forward

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// seen is what the recording backend received.
type seen struct {
	Method, RequestURI, Host, Proto string
	Header                          http.Header
	Body                            []byte
	ContentLength                   int64
	TransferEncoding                []string
}

// answer is what the client received.
type answer struct {
	Status  int
	Header  http.Header
	Body    []byte
	Trailer http.Header
	Err     string // the forward's error kind, for failures
}

// recorder is a backend that records each request and answers by path.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := r.Header.Clone()
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, seen{r.Method, r.RequestURI, r.Host, r.Proto, h, body, r.ContentLength, r.TransferEncoding})
	rec.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/redirect"):
		w.Header().Set("Location", "/elsewhere")
		w.WriteHeader(http.StatusFound)
	case strings.HasPrefix(r.URL.Path, "/chunked"):
		w.Header().Set("Trailer", "X-Sum")
		for i := range 3 {
			fmt.Fprintf(w, "part %d\n", i)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", "3")
	case strings.HasPrefix(r.URL.Path, "/hop"):
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "drop me")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Add("Set-Cookie", "a=1; Path=/; HttpOnly")
		w.Header().Add("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT")
		w.Header().Set("X-End-To-End", "keep")
		w.Write([]byte("hop"))
	case strings.HasPrefix(r.URL.Path, "/nocontent"):
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(r.URL.Path, "/notmodified"):
		w.Header().Set("ETag", `"x"`)
		w.WriteHeader(http.StatusNotModified)
	case strings.HasPrefix(r.URL.Path, "/big"):
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(bytes.Repeat([]byte{0, 1, 2, 0xff}, 256<<10))
	case strings.HasPrefix(r.URL.Path, "/echo"):
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte("hello from " + r.URL.Path))
	}
}

func (rec *recorder) take() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r := rec.reqs
	rec.reqs = nil
	return r
}

// front serves a Forwarder as the gateway would: body read first.
func front(t *testing.T, f *Forwarder, rest string, errs chan<- error) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("front: read body: %v", err)
		}
		fr := &Request{Rest: rest, Body: body, ForwardedFor: "192.0.2.1", RequestID: "req-1", Deadline: time.Now().Add(2 * time.Second)}
		err = f.Forward(w, r, fr)
		errs <- err
		if err != nil {
			w.WriteHeader(599)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

type diffCase struct {
	name   string
	method string
	path   string // with raw query
	header map[string][]string
	body   []byte
	rest   string
}

var diffCorpus = []diffCase{
	{name: "plain GET", method: "GET", path: "/x"},
	{name: "raw query with ; and duplicates", method: "GET", path: "/x?b=2;a=1&a=3&%zz&q=a+b%20c"},
	{name: "hop-by-hop and Connection-named headers dropped", method: "GET", path: "/x", header: map[string][]string{
		"Connection": {"X-Foo, X-Forwarded-For"}, "X-Foo": {"1"}, "Keep-Alive": {"timeout=5"}, "X-Keep": {"yes"}}},
	{name: "protected spellings dropped", method: "GET", path: "/x", header: map[string][]string{
		"X-Api-Key": {"k"}, "X_Api_Key": {"k2"}, "X-Forwarded-For": {"6.6.6.6"}, "X_Forwarded_Host": {"evil"},
		"Forwarded": {"for=1.2.3.4"}, "X-Real-Ip": {"1.1.1.1"}, "X-Request-Id": {"mine"}}},
	{name: "h2c upgrade stripped", method: "GET", path: "/x", header: map[string][]string{
		"Upgrade": {"h2c"}, "Http2-Settings": {"AAMAAABkAARAAAAAAAIAAAAA"}, "Connection": {"Upgrade, HTTP2-Settings"}}},
	{name: "TE trailers kept, other TE dropped", method: "GET", path: "/x", header: map[string][]string{"Te": {"gzip, trailers"}}},
	{name: "client User-Agent kept", method: "GET", path: "/x", header: map[string][]string{"User-Agent": {"curl/8"}}},
	{name: "POST binary body", method: "POST", path: "/echo", body: []byte{0, 1, 2, 0xfe, 0xff, '\r', '\n'}},
	{name: "PUT empty body", method: "PUT", path: "/x"},
	{name: "POST with Expect", method: "POST", path: "/echo", body: []byte("hi"), header: map[string][]string{"Expect": {"100-continue"}}},
	{name: "HEAD", method: "HEAD", path: "/x"},
	{name: "DELETE", method: "DELETE", path: "/x", header: map[string][]string{"Idempotency-Key": {"abc"}}},
	{name: "302 passed back", method: "GET", path: "/redirect"},
	{name: "chunked answer with trailer", method: "GET", path: "/chunked", header: map[string][]string{"Te": {"trailers"}}},
	{name: "hop headers in the answer, Set-Cookie intact", method: "GET", path: "/hop"},
	{name: "204", method: "GET", path: "/nocontent"},
	{name: "304", method: "GET", path: "/notmodified"},
	{name: "1 MiB binary answer", method: "GET", path: "/big"},
	{name: "prefix rest appended, escapes kept", method: "GET", path: "/hooks/a%20b/c?x=1", rest: "/a%20b/c"},
}

// run sends c through a front built on a Forwarder with the given lean
// setting and returns what the backend and the client saw.
func runCase(t *testing.T, lean bool, backend string, rec *recorder, c diffCase) ([]seen, answer) {
	t.Helper()
	return runCaseWith(t, Options{Lean: lean}, backend, rec, c)
}

func runCaseWith(t *testing.T, opts Options, backend string, rec *recorder, c diffCase) ([]seen, answer) {
	t.Helper()
	lean := opts.Lean
	target := backend + "/"
	if c.rest != "" {
		target = backend + "/base/"
	}
	f, err := New(target, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if c.rest == "" {
		// Exact routes go to the target path as written: give each
		// case its own path on the backend.
		f.target.Path = strings.SplitN(c.path, "?", 2)[0]
	}
	errs := make(chan error, 1)
	fe := front(t, f, c.rest, errs)
	req, err := http.NewRequest(c.method, fe.URL+c.path, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.body == nil {
		req.Body = nil
		req.ContentLength = 0
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	req.Host = "public.example" // the same X-Forwarded-Host through both fronts
	tr := &http.Transport{Proxy: nil, DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s: client: %v", c.name, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if ferr := <-errs; ferr != nil {
		t.Fatalf("%s (lean=%v): forward: %v", c.name, lean, ferr)
	}
	h := res.Header.Clone()
	h.Del("Date")
	return rec.take(), answer{Status: res.StatusCode, Header: h, Body: body, Trailer: res.Trailer}
}

// TestLeanMatchesReverseProxy is the lean path's differential test
// (docs/performance.md): the same corpus through the lean path and the ReverseProxy path
// gives the backend the same request and the client the same answer.
func TestLeanMatchesReverseProxy(t *testing.T) {
	rec := &recorder{}
	backend := httptest.NewServer(rec)
	defer backend.Close()
	for _, c := range diffCorpus {
		t.Run(c.name, func(t *testing.T) {
			rpSeen, rpAns := runCase(t, false, backend.URL, rec, c)
			leanSeen, leanAns := runCase(t, true, backend.URL, rec, c)
			if len(rpSeen) != 1 || len(leanSeen) != 1 {
				t.Fatalf("backend saw %d (reverseproxy) and %d (lean) requests, want 1 each", len(rpSeen), len(leanSeen))
			}
			if d := diff(rpSeen[0], leanSeen[0]); d != "" {
				t.Errorf("backend saw different requests:\n%s", d)
			}
			if d := diff(rpAns, leanAns); d != "" {
				t.Errorf("client saw different answers:\n%s", d)
			}
		})
	}
}

func diff(a, b any) string {
	if reflect.DeepEqual(a, b) {
		return ""
	}
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := 0; i < av.NumField(); i++ {
		x, y := av.Field(i).Interface(), bv.Field(i).Interface()
		if !reflect.DeepEqual(x, y) {
			if hx, ok := x.(http.Header); ok {
				x, y = headerLines(hx), headerLines(y.(http.Header))
			}
			out = append(out, fmt.Sprintf("  %s: reverseproxy %q\n  %s:         lean %q", av.Type().Field(i).Name, x, av.Type().Field(i).Name, y))
		}
	}
	return strings.Join(out, "\n")
}

func headerLines(h http.Header) []string {
	var l []string
	for k, vs := range h {
		l = append(l, k+": "+strings.Join(vs, " | "))
	}
	sort.Strings(l)
	return l
}

// TestLeanErrors: the lean path classifies failures as the reference
// path does (refused → Unreachable, slow → Timeout, bad framing →
// Unreachable) and reuses kept-alive connections.
func TestLeanErrors(t *testing.T) {
	call := func(t *testing.T, f *Forwarder, deadline time.Duration) (*httptest.ResponseRecorder, error) {
		r := httptest.NewRequest("GET", "/x", nil)
		w := httptest.NewRecorder()
		return w, f.Forward(w, r, &Request{RequestID: "r", Deadline: time.Now().Add(deadline)})
	}
	kind := func(err error) Kind {
		var fe *Error
		if errors.As(err, &fe) {
			return fe.Kind
		}
		return 0
	}
	for _, lean := range []bool{false, true} {
		t.Run(fmt.Sprintf("lean=%v", lean), func(t *testing.T) {
			t.Run("refused", func(t *testing.T) {
				l, _ := net.Listen("tcp", "127.0.0.1:0")
				addr := l.Addr().String()
				l.Close()
				f, _ := New("http://"+addr+"/", Options{Lean: lean})
				if _, err := call(t, f, time.Second); kind(err) != Unreachable {
					t.Fatalf("err = %v, want Unreachable", err)
				}
			})
			t.Run("slow", func(t *testing.T) {
				release := make(chan struct{})
				slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
				defer slow.Close()
				defer close(release)
				f, _ := New(slow.URL+"/", Options{Lean: lean})
				start := time.Now()
				if _, err := call(t, f, 200*time.Millisecond); kind(err) != Timeout {
					t.Fatalf("err = %v, want Timeout", err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("timeout took %v", d)
				}
			})
			for name, answer := range map[string]string{
				"duplicate Content-Length":   "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
				"Content-Length and chunked": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
				"unasked 101":                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
			} {
				t.Run("bad framing: "+name, func(t *testing.T) {
					l, _ := net.Listen("tcp", "127.0.0.1:0")
					defer l.Close()
					go func() {
						for {
							c, err := l.Accept()
							if err != nil {
								return
							}
							bufio.NewReader(c).ReadString('\n')
							c.Write([]byte(answer))
							c.Close()
						}
					}()
					f, _ := New("http://"+l.Addr().String()+"/", Options{Lean: lean})
					if w, err := call(t, f, time.Second); kind(err) != Unreachable {
						t.Fatalf("err = %v (answer %d %q), want Unreachable", err, w.Code, w.Body.String())
					}
				})
			}
			t.Run("keep-alive reuse and a target-closed idle connection", func(t *testing.T) {
				var conns sync.Map
				var n int
				var mu sync.Mutex
				srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
				srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
					if s == http.StateNew {
						mu.Lock()
						n++
						mu.Unlock()
						conns.Store(c, true)
					}
				}
				srv.Start()
				defer srv.Close()
				f, _ := New(srv.URL+"/", Options{Lean: lean})
				defer f.Close()
				for i := range 5 {
					w, err := call(t, f, time.Second)
					if err != nil || w.Body.String() != "ok" {
						t.Fatalf("request %d: %v %q", i, err, w.Body.String())
					}
				}
				mu.Lock()
				if n != 1 {
					t.Errorf("5 sequential requests used %d connections, want 1", n)
				}
				mu.Unlock()
				srv.CloseClientConnections()
				// A POST cannot be retried blindly: the idle connection the
				// target closed must be noticed before it is used.
				deadline := time.Now().Add(2 * time.Second)
				for {
					r := httptest.NewRequest("POST", "/x", nil)
					w := httptest.NewRecorder()
					err := f.Forward(w, r, &Request{RequestID: "r", Body: []byte("b"), Deadline: time.Now().Add(time.Second)})
					if err == nil && w.Body.String() == "ok" {
						break
					}
					// The close may not have reached our side yet: the
					// reference path has the same window. Bounded.
					if time.Now().After(deadline) {
						t.Fatalf("POST after the target closed the idle connection: %v", err)
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
		})
	}
}

func BenchmarkForward(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("s"), 100))
	}))
	defer backend.Close()
	for _, lean := range []bool{false, true} {
		name := "reverseproxy"
		if lean {
			name = "lean"
		}
		b.Run(name, func(b *testing.B) {
			f, _ := New(backend.URL+"/small", Options{Lean: lean})
			defer f.Close()
			r := httptest.NewRequest("GET", "/small?x=1", nil)
			fr := &Request{RequestID: "r", ForwardedFor: "127.0.0.1", Deadline: time.Now().Add(time.Hour)}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				if err := f.Forward(w, r, fr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLeanRetrySendsWholeBody: a reused connection that dies after taking
// a request marked idempotent (Idempotency-Key, Transport's rule) is retried on a fresh one, which gets the whole
// body again (the pooled body reader starts over on each attempt).
func TestLeanRetrySendsWholeBody(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	served := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		served++
		n := served
		bodies = append(bodies, string(b))
		mu.Unlock()
		if n == 2 { // the second request on the kept-alive connection: drop it unanswered
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	f, _ := New(srv.URL+"/", Options{Lean: true})
	defer f.Close()
	for i, want := range []string{"first", "second body"} {
		r := httptest.NewRequest("POST", "/x", nil)
		r.Header.Set("Idempotency-Key", "k")
		w := httptest.NewRecorder()
		err := f.Forward(w, r, &Request{RequestID: "r", Body: []byte(want), Deadline: time.Now().Add(2 * time.Second)})
		if err != nil || w.Body.String() != "ok" {
			t.Fatalf("request %d: %v %q", i, err, w.Body.String())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(bodies, "|"); got != "first|second body|second body" {
		t.Errorf("target got bodies %q, want the retried one whole", got)
	}
}

// TestLeanClientGone: when the client's request context ends, the
// exchange stops at once instead of waiting for the route's deadline.
func TestLeanClientGone(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer slow.Close()
	defer close(release)
	f, _ := New(slow.URL+"/", Options{Lean: true})
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/x", nil).WithContext(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := f.Forward(httptest.NewRecorder(), r, &Request{RequestID: "r", Deadline: time.Now().Add(time.Minute)})
	if err == nil {
		t.Fatal("Forward succeeded after the client went away")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Forward took %v after the client went away", d)
	}
}

// bothPaths runs a forwarding test on the ReverseProxy path and on the
// lean path: every rule holds on both.
func bothPaths(t *testing.T, test func(t *testing.T, lean bool)) {
	t.Run("reverseproxy", func(t *testing.T) { test(t, false) })
	t.Run("lean", func(t *testing.T) { test(t, true) })
}

// TestRemoveHopHeaders: the one hop-by-hop list (isHop) and the headers
// an answer's Connection names are dropped from an answer, whatever its
// size; end-to-end headers stay.
func TestRemoveHopHeaders(t *testing.T) {
	hops := []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
	for _, k := range hops {
		if !isHop(k) {
			t.Errorf("isHop(%q) = false", k)
		}
	}
	for _, k := range []string{"Content-Type", "Connection2", "Te2", "te", "X-Forwarded-For", "Expect", ""} {
		if isHop(k) {
			t.Errorf("isHop(%q) = true", k)
		}
	}
	for _, pad := range []int{0, 40} {
		h := http.Header{"Accept": {"*/*"}, "X-Named": {"n"}}
		for _, k := range hops {
			h[k] = []string{"v"}
		}
		h["Connection"] = []string{"x-named"}
		for i := range pad {
			h[fmt.Sprintf("X-Pad-%d", i)] = []string{"p"}
		}
		removeHopHeaders(h)
		for _, k := range append(hops, "X-Named") {
			if _, ok := h[k]; ok {
				t.Errorf("%d pad headers: %s kept", pad, k)
			}
		}
		if h.Get("Accept") != "*/*" || len(h) != 1+pad {
			t.Errorf("%d pad headers: end-to-end headers lost: %v", pad, h)
		}
	}
}
