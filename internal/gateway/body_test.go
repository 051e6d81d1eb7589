package gateway

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serveGateway serves g on loopback and returns its URL.
func serveGateway(t *testing.T, g *Gateway) string {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitFor polls cond until it holds, for state another goroutine (the
// server's) changes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdBody opens a connection that declares a body of n bytes and sends
// none of it.
func holdBody(t *testing.T, base string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(n)+"\r\n\r\n")
	return c
}

// TestBodyMemoryBudget: requests that declare a body and send nothing hold
// only what arrived plus a first buffer; once they have spent
// limits.max_body_memory, a new request with a body is answered 503 and
// its connection closed before its body is read, while requests without
// a body go on; memory given back is used again.
func TestBodyMemoryBudget(t *testing.T) {
	b := newBackend(t, nil)
	yaml := "limits: {max_body_bytes: 1000, max_body_memory: 3000}\n" + strings.ReplaceAll(routesYAML, "timeout: 1s", "timeout: 10s")
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	g, m := buildFor(t, yaml, b.URL, Deps{Log: log}, nil)
	base := serveGateway(t, g)

	held := []net.Conn{holdBody(t, base, 1000), holdBody(t, base, 1000), holdBody(t, base, 1000)}
	waitFor(t, "three first buffers", func() bool { return g.bodies.Used() == 3000 })

	start := time.Now()
	resp, body := raw(t, base, "POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	wantEq(t, "status", resp.StatusCode, 503)
	wantEq(t, "body", body, `{"message":"Service Unavailable"}`)
	wantEq(t, "x-amzn-ErrorType", resp.Header.Get("X-Amzn-Errortype"), "ServiceUnavailableException")
	wantEq(t, "connection closed", resp.Close, true)
	if d := time.Since(start); d > time.Second {
		t.Errorf("503 after %v: the wait for memory is brief", d)
	}
	wantEq(t, "unavailable count", testutil.ToFloat64(m.Requests.WithLabelValues("/forward", "POST", "unavailable")), 1.0)
	mu.Lock()
	line := buf.String()
	mu.Unlock()
	if want := `"guard":"body","rule":"limits.max_body_memory"`; !strings.Contains(line, want) {
		t.Errorf("log lacks %s:\n%s", want, line)
	}

	resp, _ = do(t, mustReq("GET", base+"/forward", nil))
	wantEq(t, "GET without a body while the budget is spent", resp.StatusCode, 200)

	held[0].Close() // its read fails: the first buffer is given back
	waitFor(t, "a first buffer released", func() bool { return g.bodies.Used() == 2000 })
	resp, _ = do(t, mustReq("POST", base+"/forward", strings.NewReader("hello")))
	wantEq(t, "status once memory is back", resp.StatusCode, 200)
	wantEq(t, "body at the backend", string(b.last(t).Body), "hello")
	wantEq(t, "requests at the backend", len(b.requests()), 2)
	for _, c := range held[1:] {
		c.Close()
	}
	waitFor(t, "every buffer released", func() bool { return g.bodies.Used() == 0 })
}

// TestBodyHeldUntilAnswered: a body counts against the budget until the
// target has answered, then not at all.
func TestBodyHeldUntilAnswered(t *testing.T) {
	inside := make(chan struct{})
	release := make(chan struct{})
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		close(inside)
		<-release
	})
	g, _ := buildFor(t, routesYAML, b.URL, Deps{}, nil)
	base := serveGateway(t, g)
	done := make(chan *http.Response)
	go func() {
		resp, err := http.Post(base+"/forward", "text/plain", strings.NewReader("0123456789"))
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	<-inside
	wantEq(t, "budget used while the target works", g.bodies.Used(), int64(10))
	close(release)
	if resp := <-done; resp != nil {
		resp.Body.Close()
		wantEq(t, "status", resp.StatusCode, 200)
	}
	waitFor(t, "the body released", func() bool { return g.bodies.Used() == 0 })
}

// TestLargeBodiesIntact: bodies read in several buffers reach the target
// byte for byte, with a declared length and chunked.
func TestLargeBodiesIntact(t *testing.T) {
	b := newBackend(t, nil)
	g, _ := buildFor(t, routesYAML, b.URL, Deps{}, nil)
	base := serveGateway(t, g)
	want := make([]byte, 300_001)
	for i := range want {
		want[i] = byte(i * 7)
	}
	for _, chunked := range []bool{false, true} {
		var src io.Reader = bytes.NewReader(want)
		if chunked {
			src = io.MultiReader(src) // hides the length: net/http sends it chunked
		}
		resp, _ := do(t, mustReq("POST", base+"/forward", src))
		wantEq(t, "status", resp.StatusCode, 200)
		got := b.last(t)
		if !bytes.Equal(got.Body, want) {
			t.Fatalf("chunked %v: the target got %d bytes, not the %d sent", chunked, len(got.Body), len(want))
		}
		wantEq(t, "Content-Length at the target", got.ContentLength, int64(len(want)))
	}
	wantEq(t, "budget used after", g.bodies.Used(), int64(0))
}

// TestReadBodyTimeout: server.read_body_timeout ends a slow body before a
// longer route timeout would: 504, connection closed, the target saw
// nothing.
func TestReadBodyTimeout(t *testing.T) {
	b := newBackend(t, nil)
	yaml := "server: {read_body_timeout: 300ms}\n" + strings.ReplaceAll(routesYAML, "timeout: 1s", "timeout: 10s")
	g, _ := buildFor(t, yaml, b.URL, Deps{}, nil)
	base := serveGateway(t, g)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	io.WriteString(conn, "POST /forward HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a slow client keeps sending
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
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
	if elapsed < 300*time.Millisecond || elapsed > 1500*time.Millisecond {
		t.Errorf("504 after %v, want 300ms..1.5s (read_body_timeout, not the route's 10s)", elapsed)
	}
	wantEq(t, "requests at the backend", len(b.requests()), 0)
	waitFor(t, "the body released", func() bool { return g.bodies.Used() == 0 })
}
