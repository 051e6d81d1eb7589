package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// floodResult counts how 2,000 slow connections ended.
type floodResult struct{ shed, held, other atomic.Int32 }

// flood opens n slow connections at once (source address from src(i)),
// each trickling a header byte every 400 ms, and classifies the end of
// each: a 503 (shed), closed without answer after the header timeout
// (held), or anything else.
func flood(t *testing.T, addr string, n int, src func(i int) string, res *floodResult) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src(i))}}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				res.other.Add(1)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(15 * time.Second))
			go func() {
				io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: gw.test\r\n")
				for ctx.Err() == nil {
					time.Sleep(400 * time.Millisecond)
					if _, err := io.WriteString(c, "X: 1\r\n"); err != nil {
						return
					}
				}
			}()
			line, err := bufio.NewReader(c).ReadString('\n')
			switch {
			case strings.HasPrefix(line, "HTTP/1.1 503 "):
				res.shed.Add(1)
			case line == "" && err != nil && !isTimeoutErr(err):
				res.held.Add(1) // closed by the header timeout, no answer (net/http)
			default:
				res.other.Add(1)
			}
		}()
	}
	return func() { wg.Wait(); cancel() }
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// goodClient asks /ok every 50 ms until stop and counts the answers.
func goodClient(url string, client *http.Client, stop chan struct{}, ok, bad *atomic.Int32) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := client.Get(url)
			if err != nil {
				bad.Add(1)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok.Add(1)
			} else {
				bad.Add(1)
			}
		}
	}()
	return &wg
}

// TestFlood is acceptance 4: 2,000 concurrent slow connections from
// loopback are shed with bounded memory while a well-behaved client still
// gets answers. Phase A floods from one address (the per-address cap
// sheds); phase B from 2,000 distinct loopback addresses (the connection
// cap sheds, the per-address table stays bounded). The gateway is a real
// child process; its RSS is reported.
func TestFlood(t *testing.T) {
	backend := newRecorder(t)
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, `listen: 127.0.0.1:0
admin: 127.0.0.1:0
state: {driver: memory}
limits: {max_connections: 400, max_conns_per_ip: 100}
server: {read_header_timeout: 3s}
routes:
  - path: /ok
    target: `+backend.srv.URL+`/
`)
	p := startServe(t, cfg)
	pid := p.cmd.Process.Pid
	base := rssKiB(t, pid)
	const n = 2000

	var peak atomic.Int32
	sample := make(chan struct{})
	go func() {
		for {
			select {
			case <-sample:
				return
			case <-time.After(100 * time.Millisecond):
				if r := int32(rssKiB(t, pid)); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	defer close(sample)

	// Phase A: one flooding address; the good client dials afresh each
	// time from another one.
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}
	var okA, badA atomic.Int32
	stop := make(chan struct{})
	good := goodClient("http://"+p.addr+"/ok", fresh, stop, &okA, &badA)
	var a floodResult
	flood(t, p.addr, n, func(int) string { return "127.0.0.1" }, &a)()
	close(stop)
	good.Wait()
	t.Logf("phase A (one address): shed %d, held %d, other %d; good client %d ok, %d failed",
		a.shed.Load(), a.held.Load(), a.other.Load(), okA.Load(), badA.Load())
	if a.shed.Load() < n-100 || a.held.Load() > 100 || a.other.Load() != 0 {
		t.Errorf("phase A: want ≥ %d shed with 503 and ≤ 100 held", n-100)
	}
	if okA.Load() < 5 || badA.Load() != 0 {
		t.Errorf("phase A: good client got %d answers, %d failures", okA.Load(), badA.Load())
	}

	// Phase B: 2,000 distinct addresses; the good client keeps the
	// keep-alive connection it opened before the flood.
	keep := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).DialContext,
	}}
	if resp, err := keep.Get("http://" + p.addr + "/ok"); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body) // a drained body keeps the connection for reuse
		resp.Body.Close()
	}
	var okB, badB atomic.Int32
	stop = make(chan struct{})
	good = goodClient("http://"+p.addr+"/ok", keep, stop, &okB, &badB)
	var b floodResult
	flood(t, p.addr, n, func(i int) string { return fmt.Sprintf("127.9.%d.%d", i/250, i%250+1) }, &b)()
	close(stop)
	good.Wait()
	t.Logf("phase B (%d addresses): shed %d, held %d, other %d; good client %d ok, %d failed",
		n, b.shed.Load(), b.held.Load(), b.other.Load(), okB.Load(), badB.Load())
	if b.shed.Load() < n-400 || b.held.Load() > 400 || b.other.Load() != 0 {
		t.Errorf("phase B: want ≥ %d shed with 503 and ≤ 400 held", n-400)
	}
	if okB.Load() < 5 || badB.Load() != 0 {
		t.Errorf("phase B: good client got %d answers, %d failures", okB.Load(), badB.Load())
	}

	_, page := get(t, "http://"+p.admin+"/metrics")
	for _, want := range []string{`drawbridge_connections_shed_total{reason="max_conns_per_ip"}`, `drawbridge_connections_shed_total{reason="max_connections"}`} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	end := rssKiB(t, pid)
	t.Logf("gateway RSS: %d KiB before, peak %d KiB (+%d), %d KiB after (noisy: shared 2-core machine)",
		base, peak.Load(), int(peak.Load())-base, end)
	if growth := int(peak.Load()) - base; growth > 64<<10 {
		t.Errorf("RSS grew by %d KiB under the flood, bound 64 MiB", growth)
	}
}

// TestHeaderTimeoutAfterFirstRequest: a keep-alive connection's next
// request must arrive within server.read_header_timeout of its first
// byte, as the first request must: the framing scanner holds a header
// block back until it is whole, and net/http's wait for it would
// otherwise run against idle_timeout. Both after a request answered
// below net/http (no route) and after one served (forwarded).
func TestHeaderTimeoutAfterFirstRequest(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	s, _ := startInProcess(t, fmt.Sprintf(`
listen: "127.0.0.1:0"
admin: "off"
state: {driver: memory}
server: {read_header_timeout: 300ms, idle_timeout: 30s}
routes: [{path: /ok, target: "%s/"}]
`, backend.URL))
	for _, first := range []string{"/nope", "/ok"} {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second)) // well under idle_timeout
		br := bufio.NewReader(c)
		io.WriteString(c, "GET "+first+" HTTP/1.1\r\nHost: gw.test\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %s: %v", first, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		io.WriteString(c, "GET /ok HTTP/1.1\r\nHo") // and nothing more
		start := time.Now()
		line, err := br.ReadString('\n')
		if line != "" || err == nil || isTimeoutErr(err) {
			t.Fatalf("after %s: a trickled header block got %q, %v after %v; want the connection closed by the header timeout", first, line, err, time.Since(start))
		}
	}
}
