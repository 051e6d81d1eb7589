package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
// connection to the forbidden address (reliability §2.12 G4).
func TestRebindingDenied(t *testing.T) {
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
	guard := egress.New(rules, egress.Options{})
	dns := &dnsServer{answers: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}}
	f, err := New("http://rebind.test:"+strconv.Itoa(port)+"/", Options{Control: guard.Control, Resolver: dns.resolver()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if w, err := forwardOnce(f); err != nil || w.Body.String() != "ok" {
		t.Fatalf("first forward (allowed address): %v %q", err, w.Body.String())
	}
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
