package forward

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

// exchange is one request line the Transport writes and the response bytes
// that come back.
type exchange struct{ req, resp string }

// runExchanges feeds each response in pieces of size and returns the index
// of the first exchange flagged, or -1.
func runExchanges(xs []exchange, size int) int {
	c := newUpstreamConn(discardConn{})
	for i, x := range xs {
		c.Write([]byte(x.req))
		for j := 0; j < len(x.resp); j += size {
			if c.off {
				return -1
			}
			if c.scan([]byte(x.resp[j:min(j+size, len(x.resp))])) {
				return i
			}
		}
	}
	return -1
}

func TestUpstreamScan(t *testing.T) {
	const get, head = "GET / HTTP/1.1\r\n\r\n", "HEAD / HTTP/1.1\r\n\r\n"
	bad := exchange{get, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"}
	tests := []struct {
		name string
		xs   []exchange
		want int
	}{
		{"first response", []exchange{bad}, 0},
		{"after CL, chunked with extension and trailer, 204, HEAD, 304, 103", []exchange{
			{get, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
			{get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n"},
			{get, "HTTP/1.1 204 No Content\r\n\r\n"},
			{head, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"},
			{get, "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"},
			{get, "HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
			{get, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
			bad,
		}, 7},
		{"bodies that look like a bad response", []exchange{
			{get, "HTTP/1.1 200 OK\r\nContent-Length: 70\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"},
			{get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n46\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\r\n0\r\n\r\n"},
		}, -1},
		{"any case", []exchange{{get, "HTTP/1.1 200 OK\r\ntransfer-encoding: CHUNKED\r\nCONTENT-LENGTH: 1\r\n\r\n"}}, 0},
		{"close-delimited ends watching", []exchange{{get, "HTTP/1.0 200 OK\r\n\r\nanything"}, bad}, -1},
	}
	for _, tt := range tests {
		for _, size := range []int{1, 2, 5, 1 << 12} {
			if got := runExchanges(tt.xs, size); got != tt.want {
				t.Errorf("%s (pieces of %d): flagged %d, want %d", tt.name, size, got, tt.want)
			}
		}
	}
}

// FuzzUpstreamScan: any bytes, any split: no panic, and a stream without
// both header names is never flagged.
func FuzzUpstreamScan(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 3)
	f.Add("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1)
	f.Fuzz(func(t *testing.T, resp string, size int) {
		if size <= 0 || size > 64 {
			size = 7
		}
		got := runExchanges([]exchange{{"GET / HTTP/1.1\r\n\r\n", resp}}, size)
		l := strings.ToLower(resp)
		if got >= 0 && !(strings.Contains(l, "content-length") && strings.Contains(l, "transfer-encoding")) {
			t.Fatalf("flagged %q", resp)
		}
	})
}

// TestUpstreamKeepAlive: through the real Transport, responses on one
// kept-alive connection are followed, and a bad one later on it is a 502.
// (The Transport retries a GET once on a fresh connection when a reused
// one fails before the first response byte; the retry is refused too.)
func TestUpstreamKeepAlive(t *testing.T) { bothPaths(t, testUpstreamKeepAlive) }

func testUpstreamKeepAlive(t *testing.T, lean bool) {
	replies := []string{
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan int, 10)
	var served atomic.Int32
	go func() {
		n := 0
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n++
			conns <- n
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					c.Write([]byte(replies[min(int(served.Add(1))-1, len(replies)-1)]))
				}
			}()
		}
	}()
	f, _ := New("http://"+ln.Addr().String()+"/", Options{Lean: lean})
	defer f.Close()
	front := frontend(t, f)
	for i, want := range []int{200, 200, 502} {
		res, err := http.Get(front.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("response %d: %d, want %d", i, res.StatusCode, want)
		}
	}
	if len(conns) != 2 {
		t.Errorf("%d upstream connections, want 2 (kept alive, then the retry)", len(conns))
	}
}

// BenchmarkUpstreamScan: watching one keep-alive response.
func BenchmarkUpstreamScan(b *testing.B) {
	c := newUpstreamConn(discardConn{})
	req := []byte("GET / HTTP/1.1\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Tue, 01 Dec 2026 19:00:00 GMT\r\nContent-Length: 17\r\n\r\n{\"message\":\"ok\"}\n")
	b.SetBytes(int64(len(resp)))
	b.ReportAllocs()
	for b.Loop() {
		c.Write(req)
		if c.scan(resp) || c.off {
			b.Fatal("lost the framing")
		}
	}
}
