package forward

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/egress"
)

// dnsServer answers A queries for any name with the next address of
// answers (the last one repeating) and AAAA queries with nothing. It
// speaks DNS over an in-memory stream (net.Pipe, TCP framing), so the
// resolver under test is Go's real one.
type dnsServer struct {
	answers []netip.Addr
	asked   atomic.Int32
}

func (d *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, s := net.Pipe()
		go d.serve(s)
		return c, nil
	}}
}

func (d *dnsServer) serve(c net.Conn) {
	defer c.Close()
	for {
		var n uint16
		if binary.Read(c, binary.BigEndian, &n) != nil {
			return
		}
		q := make([]byte, n)
		if _, err := io.ReadFull(c, q); err != nil || len(q) < 12 {
			return
		}
		end := 12
		for end < len(q) && q[end] != 0 {
			end += int(q[end]) + 1
		}
		end += 5 // root label, qtype, qclass
		if end > len(q) {
			return
		}
		qtype := binary.BigEndian.Uint16(q[end-4:])
		resp := append([]byte{}, q[:end]...)
		resp[2], resp[3] = 0x81, 0x80 // response, recursion desired and available, NOERROR
		binary.BigEndian.PutUint16(resp[6:], 0)
		binary.BigEndian.PutUint16(resp[8:], 0)
		binary.BigEndian.PutUint16(resp[10:], 0) // no additional records
		if qtype == 1 {
			i := int(d.asked.Add(1)) - 1
			a := d.answers[min(i, len(d.answers)-1)].As4()
			binary.BigEndian.PutUint16(resp[6:], 1)
			resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4)
			resp = append(resp, a[:]...)
		}
		binary.Write(c, binary.BigEndian, uint16(len(resp)))
		c.Write(resp)
	}
}

// acceptCounter listens on addr and counts connections.
func acceptCounter(t *testing.T, addr string) (net.Listener, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln, &n
}

func forwardOnce(f *Forwarder) (*httptest.ResponseRecorder, error) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://gateway.test/x", nil)
	err := f.Forward(w, r, &Request{RequestID: "id", Deadline: time.Now().Add(5 * time.Second)})
	return w, err
}

// TestRebindingDenied: a target name that resolves to an allowed address
// and then to a forbidden one is denied on the second dial, before any
// connection to the forbidden address: the check runs on each resolved
// address, not once on the name (docs/hardening.md).
func TestRebindingDenied(t *testing.T) { bothPaths(t, testRebindingDenied) }

func testRebindingDenied(t *testing.T, lean bool) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close") // the next forward must dial again
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	port := backend.Listener.Addr().(*net.TCPAddr).Port
	_, forbidden := acceptCounter(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(port)).String())

	rules, err := egress.Parse([]string{backend.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	dns := &dnsServer{answers: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}}
	var now atomic.Int64 // seconds; moved past the name cache's answer below
	names := egress.NewNames(dns.resolver(), func() time.Time { return time.Unix(now.Load(), 0) })
	guard := egress.New(rules, egress.Options{Names: names})
	f, err := New("http://rebind.test:"+strconv.Itoa(port)+"/", Options{Egress: guard, Lean: lean})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if w, err := forwardOnce(f); err != nil || w.Body.String() != "ok" {
		t.Fatalf("first forward (allowed address): %v %q", err, w.Body.String())
	}
	now.Add(int64(egress.NameTTL / time.Second))
	_, err = forwardOnce(f)
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != Denied || !errors.Is(err, egress.ErrDenied) {
		t.Fatalf("second forward (rebound to 127.0.0.2) = %v, want Denied", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.2:"+strconv.Itoa(port)) {
		t.Errorf("denial does not name the address: %v", err)
	}
	if dns.asked.Load() < 2 {
		t.Errorf("resolver asked %d times; the second dial did not resolve again", dns.asked.Load())
	}
	if n := forbidden.Load(); n != 0 {
		t.Errorf("forbidden address got %d connections", n)
	}
}

// TestFollowedNameNeverLoopback: without egress.allow a target name is
// followed wherever it resolves, but an answer on loopback (where the
// admin listener and sidecars live) is denied before any connection, and
// the denial comes from one cached lookup however many forwards ask.
func TestFollowedNameNeverLoopback(t *testing.T) { bothPaths(t, testFollowedNameNeverLoopback) }

func testFollowedNameNeverLoopback(t *testing.T, lean bool) {
	ln, hits := acceptCounter(t, "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	dns := &dnsServer{answers: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
	guard := egress.New(nil, egress.Options{
		Follow: []egress.Name{{Host: "moved.test", Port: uint16(port)}},
		Names:  egress.NewNames(dns.resolver(), func() time.Time { return time.Unix(0, 0) }),
	})
	f, err := New("http://moved.test:"+strconv.Itoa(port)+"/", Options{Egress: guard, Lean: lean})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 3 {
		_, err := forwardOnce(f)
		var de *egress.DeniedError
		if !errors.As(err, &de) || de.Reason != egress.LoopbackNotNamed {
			t.Fatalf("forward to a followed name on loopback = %v, want LoopbackNotNamed", err)
		}
	}
	if n := dns.asked.Load(); n != 1 {
		t.Errorf("%d lookups for 3 forwards within the cache time, want 1", n)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("loopback listener got %d connections", n)
	}
}

// rawBackend answers every connection with the bytes of reply (after
// reading the request head) and reports when the gateway closed it.
func rawBackend(t *testing.T, reply string) (addr string, closed chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	closed = make(chan struct{}, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				c.Write([]byte(reply))
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := br.ReadByte(); err != nil && !isTimeout(err) {
					closed <- struct{}{} // EOF: the forwarder dropped the connection
				}
			}()
		}
	}()
	return ln.Addr().String(), closed
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// frontend serves f behind a real http.Server, as the gateway does, so
// mid-body failures abort the client connection.
func frontend(t *testing.T, f *Forwarder) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := f.Forward(w, r, &Request{RequestID: "id", Deadline: time.Now().Add(2 * time.Second)})
		if err != nil {
			w.WriteHeader(502)
			io.WriteString(w, "forward error: "+err.Error())
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestResponseHygiene: what a target's answer may not carry to the client
// (hop-by-hop headers, ambiguous or unknown framing, an unasked 101),
// against a raw-socket backend (docs/hardening.md).
func TestResponseHygiene(t *testing.T) { bothPaths(t, testResponseHygiene) }

func testResponseHygiene(t *testing.T, lean bool) {
	tests := []struct {
		name, reply string
		status      int
		closed      bool // the upstream connection must be dropped
		check       func(t *testing.T, res *http.Response, body string)
	}{
		{name: "hop-by-hop stripped, Set-Cookie intact", status: 200,
			reply: "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n" +
				"Set-Cookie: a=1; Path=/; HttpOnly\r\nSet-Cookie: b=2, c=3; Expires=Wed, 21 Oct 2026 07:28:00 GMT\r\nContent-Length: 2\r\n\r\nok",
			check: func(t *testing.T, res *http.Response, body string) {
				for _, k := range []string{"X-Secret", "Keep-Alive", "Proxy-Authenticate"} {
					if v := res.Header.Get(k); v != "" {
						t.Errorf("client got %s: %q", k, v)
					}
				}
				want := []string{"a=1; Path=/; HttpOnly", "b=2, c=3; Expires=Wed, 21 Oct 2026 07:28:00 GMT"}
				if got := res.Header.Values("Set-Cookie"); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
					t.Errorf("Set-Cookie = %q, want %q", got, want)
				}
				if body != "ok" {
					t.Errorf("body %q", body)
				}
			}},
		{name: "two different Content-Length", reply: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", status: 502, closed: true},
		{name: "bad Content-Length", reply: "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nab", status: 502, closed: true},
		{name: "unsolicited 101", reply: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", status: 502, closed: true},
		{name: "unknown transfer coding", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 502, closed: true},
		{name: "CL and TE", reply: "HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", status: 502, closed: true},
		{name: "CL and TE after an interim 103", reply: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n0\r\n\r\n", status: 502, closed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, closed := rawBackend(t, tt.reply)
			f, err := New("http://"+addr+"/", Options{Lean: lean})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res, err := http.Get(frontend(t, f).URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, b)
			}
			if tt.check != nil {
				tt.check(t, res, string(b))
			}
			if tt.closed {
				select {
				case <-closed:
				case <-time.After(2 * time.Second):
					t.Error("upstream connection kept after invalid framing")
				}
			}
		})
	}
}

// TestBadChunkMidBody: a target that breaks its chunked framing after the
// headers went out aborts the client connection: the client never sees a
// clean, complete answer.
func TestBadChunkMidBody(t *testing.T) { bothPaths(t, testBadChunkMidBody) }

func testBadChunkMidBody(t *testing.T, lean bool) {
	addr, _ := rawBackend(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n")
	f, _ := New("http://"+addr+"/", Options{Lean: lean})
	defer f.Close()
	res, err := http.Get(frontend(t, f).URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil {
		t.Fatal("client read a complete body from a broken upstream answer")
	}
}

// FuzzProtected: Protected agrees with the plain definition (fold case,
// read '_' as '-', compare with the protected names) for every name, and
// a protected header's value never reaches the plan.
func FuzzProtected(f *testing.F) {
	for _, s := range []string{"X-Api-Key", "x_api_key", "X-Forwarded-For", "X_FORWARDED_PROTO", "x-forwarded-", "Forwarded",
		"X-Real-Ip", "x-request-id", "HTTP2-Settings", "X-Api-Kez", "Content-Type", "x-forwarded-\xff", "Ｘ-Api-Key",
		"X-Drawbridge-Delivery", "x_drawbridge_", "X_DRAWBRIDGE_X", "Transfer_Encoding", "content_length", "CONTENT-LENGTH", "Transfer-Encodings"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		// Header names are ASCII tokens: fold ASCII letters only.
		n := []byte(name)
		for i, c := range n {
			switch {
			case c == '_':
				n[i] = '-'
			case 'A' <= c && c <= 'Z':
				n[i] = c + 'a' - 'A'
			}
		}
		ln := string(n)
		want := ln == "x-api-key" || ln == "forwarded" || ln == "x-real-ip" || ln == "x-request-id" ||
			ln == "http2-settings" || (strings.HasPrefix(ln, "x-forwarded-") && len(ln) > 12) ||
			(strings.HasPrefix(ln, "x-drawbridge-") && len(ln) > 13) || ln == "content-length" || ln == "transfer-encoding"
		if got := Protected(name); got != want {
			t.Fatalf("Protected(%q) = %v, want %v", name, got, want)
		}
		r := &http.Request{Header: http.Header{name: {"client's"}, "Keep": {"k"}}, Host: "h", URL: &url.URL{}}
		out := http.Header{}
		outHeader(out, r, &Request{ForwardedFor: "192.0.2.1", RequestID: "id"}, new([3]string))
		kept := slices.Contains(out[name], "client's")
		if name != "Keep" && (Protected(name) && kept || !dropped(name) && !kept) {
			t.Fatalf("Protected(%q) = %v but the plan has %q", name, Protected(name), out[name])
		}
	})
}
