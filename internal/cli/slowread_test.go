//go:build linux

package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/edge"
)

// countingBackend answers every request with body, as fast as the
// connection takes it, and keeps count of its open connections and of how
// long each one stayed open.
type countingBackend struct {
	srv      *httptest.Server
	mu       sync.Mutex
	opened   map[net.Conn]time.Time
	peak     int
	longest  time.Duration
	shortest time.Duration
	accepted int
	requests int
}

func newCountingBackend(t *testing.T, body []byte) *countingBackend {
	b := &countingBackend{opened: map[net.Conn]time.Time{}}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			io.WriteString(w, "ok")
			return
		}
		b.mu.Lock()
		b.requests++
		b.mu.Unlock()
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	}))
	b.srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch s {
		case http.StateNew:
			b.opened[c] = time.Now()
			b.accepted++
			b.peak = max(b.peak, len(b.opened))
		case http.StateClosed, http.StateHijacked:
			if t0, ok := b.opened[c]; ok {
				d := time.Since(t0)
				b.longest = max(b.longest, d)
				if b.shortest == 0 || d < b.shortest {
					b.shortest = d
				}
				delete(b.opened, c)
			}
		}
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *countingBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests
}

func (b *countingBackend) open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.opened)
}

// raiseNoFile makes room for n descriptors, or fails.
func raiseNoFile(t *testing.T, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Fatalf("RLIMIT_NOFILE hard limit %d: this test needs %d descriptors", lim.Max, n)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
}

// TestSlowReaders: 1,000 clients that read the answer at 64 bytes a second,
// with a small receive buffer so the kernel's buffers fill at once, each
// hold a backend connection only until server.write_timeout ends their
// request: every backend connection is released within the route timeout
// plus the write bound, and afterwards the backend holds no more than the
// forwarder's keep-alive pool. A well-behaved client is answered
// throughout. Both forwarders.
func TestSlowReaders(t *testing.T) {
	for _, fwd := range []string{"lean", "reverseproxy"} {
		t.Run(fwd, func(t *testing.T) { slowReaders(t, fwd) })
	}
}

func slowReaders(t *testing.T, forwarder string) {
	const (
		routeTimeout = 2 * time.Second
		writeTimeout = 3 * time.Second
		keepAlive    = 256 // the forwarder's idle pool per target (forward.Options.MaxIdlePerHost)
	)
	// Under the race detector (test.sh) a quarter of the clients: slowed
	// down that much, the gateway spends the route timeout just setting
	// up a thousand requests, and they are answered 504 before any write.
	clients := 1000
	if raceEnabled {
		clients = 250
	}
	raiseNoFile(t, uint64(6*clients))
	body := []byte(strings.Repeat("x", 256<<10))
	b := newCountingBackend(t, body)
	s, _ := startInProcess(t, fmt.Sprintf(`listen: 127.0.0.1:0
admin: 'off'
state: {driver: memory}
limits: {max_connections: 4000, max_conns_per_ip: 4000}
server: {write_timeout: %v, forwarder: %s}
routes:
  - path: /big
    target: %s/big
    timeout: %v
  - path: /small
    target: %s/small
    timeout: %v
`, writeTimeout, forwarder, b.srv.URL, routeTimeout, b.srv.URL, routeTimeout))

	dialer := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			// Before connect, so the advertised window is small too.
			// A small MSS too: the gateway sizes its send buffer in
			// segments, and loopback's 64 KiB segments would let it take
			// megabytes of each answer off the handler's hands.
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
			if serr == nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 536)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	type result struct {
		sent time.Time
		read int
		err  error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[i]
			c, err := dialer.Dial("tcp", s.Addr())
			if err != nil {
				res.err = err
				return
			}
			defer c.Close()
			res.sent = time.Now()
			if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: gw.test\r\n\r\n"); err != nil {
				res.err = err
				return
			}
			// At most 64 bytes a second; no goroutine per client beyond
			// this one (the race detector caps live goroutines at 8,128).
			buf := make([]byte, 64)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				c.SetReadDeadline(time.Now().Add(time.Second))
				n, err := c.Read(buf)
				res.read += n
				if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					return
				}
				select {
				case <-tick.C:
				case <-stop:
					return
				}
			}
		}()
	}
	halt := sync.OnceFunc(func() { close(stop) })
	defer func() { halt(); wg.Wait() }()

	// Wait for every slow request to reach the backend (on a 2-core
	// machine shared with other work this takes a few seconds).
	deadline := time.Now().Add(20 * time.Second)
	for b.count() < clients && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// On a loaded machine under the race detector a few may not get
	// there before the route timeout answers them instead (504); the
	// write bound is shown by those that did, which must be nearly all.
	if n := b.count(); n < clients*9/10 {
		t.Fatalf("%d of %d slow requests reached the backend", n, clients)
	}
	res, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + s.Addr() + "/small")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("well-behaved client during the slow reads: %v %v", res, err)
	}
	res.Body.Close()

	var lastSent time.Time
	for i := range results {
		if results[i].sent.After(lastSent) {
			lastSent = results[i].sent
		}
	}
	bound := routeTimeout + writeTimeout
	gatewayOpen := s.publicLn.(*edge.Listener).Open
	// One backend and one client connection stay: the well-behaved
	// client's, kept alive.
	for (b.open() > 1 || gatewayOpen() > 1) && time.Since(lastSent) < bound+time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	open := b.open()
	b.mu.Lock()
	peak, longest, shortest, accepted := b.peak, b.longest, b.shortest, b.accepted
	b.mu.Unlock()
	t.Logf("backend: %d connections accepted, peak %d open, %d open %v after the last request; held %v to %v (bound %v)",
		accepted, peak, open, time.Since(lastSent).Round(time.Millisecond), shortest.Round(time.Millisecond), longest.Round(time.Millisecond), bound)
	if open > keepAlive {
		t.Fatalf("%d backend connections still open %v after the last slow request (keep-alive pool %d)", open, bound+time.Second, keepAlive)
	}
	if longest > bound+time.Second {
		t.Errorf("a backend connection was held %v, over the route timeout plus the write bound (%v)", longest, bound)
	}
	// The answers were stuck in blocked writes, all at once, not written
	// off into the kernel's buffers (the backend connection would then
	// have gone back to the pool at once, to be reused): otherwise this
	// test would prove nothing about write deadlines.
	if peak < clients*9/10 {
		t.Errorf("peak %d backend connections open for %d slow readers: the answers were not stuck in writes", peak, clients)
	}
	// The gateway ended the slow requests themselves: their client
	// connections are closed (what the kernel still holds for them to
	// read is no longer the gateway's), all but the well-behaved
	// client's keep-alive one. The backend side above is the bound under
	// test; closing what is left of the client side may lag on a loaded
	// machine (race detector, 2 cores), so it gets a few seconds more.
	for end := time.Now().Add(5 * time.Second); gatewayOpen() > 1 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	if n := gatewayOpen(); n > 1 {
		t.Errorf("%d client connections still open on the gateway after the bound", n)
	}
	halt()
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("slow reader: %v", r.err)
		}
		if r.read >= len(body) {
			t.Fatalf("a slow reader got the whole answer (%d bytes)", r.read)
		}
	}
}
