package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/tunnel"
)

// relayBackend records what it receives and answers by path with what a
// relay must pass on: trailers, 1xx answers, streams, hop-by-hop headers.
type relayBackend struct {
	srv   *httptest.Server
	conns atomic.Int64 // connections accepted
	mu    sync.Mutex
	seen  []string
}

func newRelayBackend(t *testing.T) *relayBackend {
	b := &relayBackend{}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.seen = append(b.seen, fmt.Sprintf("%s %s %s %v", r.Method, r.RequestURI, r.Host, r.Header))
		b.mu.Unlock()
		h := w.Header()
		switch r.URL.Path {
		case "/trailers":
			h.Set("Trailer", "X-Sum")
			io.WriteString(w, "part 1\n")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part 2\n")
			h.Set("X-Sum", "2")
		case "/hints":
			h.Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			h.Del("Link")
			io.WriteString(w, "after hints")
		case "/events":
			h.Set("Content-Type", "Text/Event-Stream; charset=utf-8")
			h.Set("Content-Length", "12")
			io.WriteString(w, "data: one\n\n\n")
		case "/hop":
			h.Set("Connection", "X-Hop")
			h.Set("X-Hop", "gone")
			h.Set("Keep-Alive", "timeout=5")
			h.Set(tunnel.ErrorHeader, "egress_denied") // a target's own: never the agent's
			h.Add("Set-Cookie", "a=1")
			h.Add("Set-Cookie", "b=2")
			w.WriteHeader(202)
			io.WriteString(w, "hop")
		case "/close":
			h.Set("Connection", "close")
			io.WriteString(w, "closing")
		default:
			io.WriteString(w, "ok "+r.URL.RawQuery)
		}
	}))
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *relayBackend) take() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.seen
	b.seen = nil
	return s
}

func testAgent(t *testing.T, allow string) *Agent {
	a, err := New(&config.AgentConfig{Edge: "https://127.0.0.1:1", Name: "ci", Connections: 1,
		Egress: config.Egress{Allow: []string{allow}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.client.Close(); a.relay.Close() })
	return a
}

// front serves requests as the agent's HTTP/2 server would hand them to
// it: :authority is the target's host, the handler is lean or the
// ReverseProxy.
func front(t *testing.T, target string, lean bool, a *Agent) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Host = target
		if lean {
			a.relayOne(w, r)
		} else {
			a.proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestRelayMatchesReverseProxy: a request without a body relayed on the
// lean path reaches the target as through the ReverseProxy, and its answer
// (1xx answers, headers, body, trailers) comes back the same.
func TestRelayMatchesReverseProxy(t *testing.T) {
	b := newRelayBackend(t)
	host := strings.TrimPrefix(b.srv.URL, "http://")
	a := testAgent(t, "127.0.0.1/32:"+host[strings.LastIndex(host, ":")+1:])
	fronts := [2]*httptest.Server{front(t, host, false, a), front(t, host, true, a)}
	rows := []struct {
		method, path string
		header       http.Header
	}{
		{"GET", "/?a=1&b=%2F;c", nil},
		{"GET", "/e%20space/x", http.Header{"X-Multi": {"1", "2"}, "Forwarded": {"for=1.2.3.4"}, "X-Forwarded-For": {"10.0.0.1"}}},
		{"GET", "/trailers", http.Header{"Te": {"trailers"}}},
		{"GET", "/hints", nil},
		{"GET", "/events", nil},
		{"GET", "/hop", http.Header{"Connection": {"X-Conn"}, "X-Conn": {"gone"}, "Proxy-Authorization": {"x"}}},
		{"DELETE", "/close", http.Header{"User-Agent": {"probe/1"}}},
		{"HEAD", "/", nil},
		{"OPTIONS", "/o", nil},
	}
	for _, row := range rows {
		var got [2]string
		for i, f := range fronts {
			var hints []int
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
					hints = append(hints, code)
					return nil
				},
			})
			req, _ := http.NewRequestWithContext(ctx, row.method, f.URL+row.path, nil)
			req.Header["User-Agent"] = []string{""} // none, unless the row sets one
			for k, vs := range row.header {
				req.Header[k] = vs
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", row.method, row.path, err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			res.Header.Del("Date")
			got[i] = fmt.Sprintf("%d %v %v %q %v | backend saw %q", res.StatusCode, hints, res.Header, body, res.Trailer, b.take())
		}
		if got[0] != got[1] {
			t.Errorf("%s %s:\nReverseProxy %s\nlean         %s", row.method, row.path, got[0], got[1])
		}
	}
}

// TestRelayKeepsConnections: the lean path reuses its connections to the
// target, and never one the target closes.
func TestRelayKeepsConnections(t *testing.T) {
	b := newRelayBackend(t)
	host := strings.TrimPrefix(b.srv.URL, "http://")
	a := testAgent(t, "127.0.0.1/32:"+host[strings.LastIndex(host, ":")+1:])
	f := front(t, host, true, a)
	get := func(path string) {
		res, err := http.Get(f.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
	}
	for range 20 {
		get("/")
	}
	if n := b.conns.Load(); n != 1 {
		t.Fatalf("20 requests in a row took %d connections, want 1", n)
	}
	get("/close")
	get("/")
	if n := b.conns.Load(); n != 2 {
		t.Fatalf("after the target's Connection: close, %d connections, want 2", n)
	}
}

// TestRelayCancel: the edge going away (the stream's context) aborts the
// lean path's exchange, and the target sees its request cancelled.
func TestRelayCancel(t *testing.T) {
	entered, canceled := make(chan struct{}), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		close(canceled)
	}))
	defer slow.Close()
	host := strings.TrimPrefix(slow.URL, "http://")
	a := testAgent(t, "127.0.0.1/32:"+host[strings.LastIndex(host, ":")+1:])
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequestWithContext(ctx, "GET", "/slow", nil)
	r.Host = host
	done := make(chan struct{})
	w := httptest.NewRecorder()
	go func() { a.relayOne(w, r); close(done) }()
	<-entered
	cancel()
	for _, ch := range []chan struct{}{canceled, done} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("a cancelled stream did not end the target's request")
		}
	}
}
