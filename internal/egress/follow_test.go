package egress

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pipeDNS answers A queries with addr (NXDOMAIN when addr is invalid) over
// an in-memory stream, so Names is tested through Go's real resolver. Each
// answer waits for release to be closed.
type pipeDNS struct {
	addr    atomic.Pointer[netip.Addr]
	asked   atomic.Int32
	release chan struct{}
}

func (d *pipeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		c, s := net.Pipe()
		go d.serve(s)
		return c, nil
	}}
}

func (d *pipeDNS) serve(c net.Conn) {
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
		end += 5
		if end > len(q) {
			return
		}
		qtype := binary.BigEndian.Uint16(q[end-4:])
		<-d.release
		resp := append([]byte{}, q[:end]...)
		resp[2], resp[3] = 0x81, 0x80
		binary.BigEndian.PutUint16(resp[6:], 0)
		binary.BigEndian.PutUint16(resp[8:], 0)
		binary.BigEndian.PutUint16(resp[10:], 0)
		a := *d.addr.Load()
		switch {
		case !a.IsValid():
			resp[3] = 0x83 // NXDOMAIN
		case qtype == 1:
			d.asked.Add(1)
			four := a.As4()
			binary.BigEndian.PutUint16(resp[6:], 1)
			resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
			resp = append(resp, four[:]...)
		}
		binary.Write(c, binary.BigEndian, uint16(len(resp)))
		c.Write(resp)
	}
}

// TestNamesCache: concurrent lookups of one name share one query; the
// answer is kept NameTTL, a failure NameFailTTL, by the injected clock.
func TestNamesCache(t *testing.T) {
	d := &pipeDNS{release: make(chan struct{})}
	a := netip.MustParseAddr("10.1.1.1")
	d.addr.Store(&a)
	var sec atomic.Int64
	n := NewNames(d.resolver(), func() time.Time { return time.Unix(sec.Load(), 0) })
	ctx := context.Background()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got, err := n.Lookup(ctx, "Backend.Test."); err != nil || len(got) != 1 || got[0] != a {
				t.Errorf("Lookup = %v %v", got, err)
			}
		})
	}
	// Give the eight lookups time to queue behind the one query held by
	// release; one that comes later is served from the cache (the clock
	// stands still), so one query is the answer either way.
	time.Sleep(50 * time.Millisecond)
	close(d.release)
	wg.Wait()
	if q := d.asked.Load(); q != 1 {
		t.Errorf("8 concurrent lookups sent %d A queries, want 1", q)
	}

	b := netip.MustParseAddr("10.2.2.2")
	d.addr.Store(&b)
	sec.Add(int64(NameTTL/time.Second) - 1)
	if got, _ := n.Lookup(ctx, "backend.test"); got[0] != a {
		t.Errorf("fresh answer replaced early: %v", got)
	}
	sec.Add(1)
	if got, _ := n.Lookup(ctx, "backend.test"); got[0] != b {
		t.Errorf("stale answer kept: %v", got)
	}

	var none netip.Addr
	d.addr.Store(&none)
	sec.Add(int64(NameTTL / time.Second))
	if _, err := n.Lookup(ctx, "backend.test"); err == nil {
		t.Fatal("NXDOMAIN resolved")
	}
	d.addr.Store(&a)
	if _, err := n.Lookup(ctx, "backend.test"); err == nil {
		t.Error("failure not kept for NameFailTTL")
	}
	sec.Add(int64(NameFailTTL / time.Second))
	if got, err := n.Lookup(ctx, "backend.test"); err != nil || got[0] != a {
		t.Errorf("after NameFailTTL: %v %v", got, err)
	}
}

// BenchmarkControlContextFollowed is the dial-time decision for an
// address a followed target name resolved to (one per new connection,
// never per request on a kept-alive one).
func BenchmarkControlContextFollowed(b *testing.B) {
	g := New(nil, Options{Follow: []Name{{Host: "backend.internal", Port: 443}}})
	ctx := Follow(context.Background(), "backend.internal")
	b.ReportAllocs()
	for b.Loop() {
		if g.ControlContext(ctx, "tcp4", "10.1.2.3:443", nil) != nil {
			b.Fatal("denied")
		}
	}
}
