// Package edge hardens the public listener below the gateway: it sees
// what net/http hides or never bounds.
//
//   - Listener caps open connections, in total and per peer address, and
//     sheds the excess with a 503 before net/http spends anything on it;
//     it also marks requests whose framing net/http would silently
//     misread (both Content-Length and Transfer-Encoding, or
//     Transfer-Encoding on HTTP/1.0), on plain HTTP and, through
//     Listener.TLS, on HTTP/1.x over TLS.
//   - Handler refuses marked requests (400, connection closed), bounds the
//     header count and the X-Forwarded-For length, and caps requests in
//     flight (503).
//
// Answers are API Gateway-style JSON, as the gateway's own.
package edge

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ListenerOptions bound a Listener. Zero values mean no bound.
type ListenerOptions struct {
	// MaxConns caps open connections; MaxPerIP caps those from one peer
	// address. The per-address table holds only addresses with a
	// connection open, so it never has more than MaxConns entries, however
	// many distinct addresses connect.
	MaxConns, MaxPerIP int
	// Exempt peers (trusted proxies, which carry many clients) are not
	// held to MaxPerIP; they still count toward MaxConns.
	Exempt []netip.Prefix
	// ScanFraming turns on the framing scanner. With TLS set it runs
	// above TLS, on the connections Listener.TLS hands out (below TLS
	// the bytes are ciphertext). MaxHeaderBytes bounds the header block
	// it holds back.
	ScanFraming    bool
	MaxHeaderBytes int
	// TLS: the listener sits below a TLS layer, so a shed connection is
	// just closed (a plain-text 503 would be garbage to a TLS client).
	TLS bool
	// OnShed, if set, is called for every shed connection (metrics).
	OnShed func(reason string)
	// Early, with ScanFraming (on HTTP/1.x, over TLS too), may answer
	// requests below net/http (early.go); the server must then call
	// ConnState from its own ConnState hook, or Early is never asked.
	// IdleTimeout, WriteTimeout and HeaderTimeout are the server's:
	// answers are written, the next request awaited and its header block
	// read under the deadlines net/http would set. HeaderTimeout holds
	// with or without Early, given ConnState: the scanner holds a block
	// back until it is whole, so net/http, waiting between requests, sees
	// none of it and would wait under its idle timeout.
	Early                                    Early
	IdleTimeout, WriteTimeout, HeaderTimeout time.Duration
}

// Listener wraps a net.Listener with ListenerOptions.
type Listener struct {
	net.Listener
	opts ListenerOptions

	open  atomic.Int64
	mu    sync.Mutex
	perIP map[netip.Addr]int32

	skipAfter int // skipAfterServed; tests of the order of answers set 0
}

// NewListener wraps ln.
func NewListener(ln net.Listener, opts ListenerOptions) *Listener {
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = 1 << 20
	}
	return &Listener{Listener: ln, opts: opts, perIP: map[netip.Addr]int32{}, skipAfter: skipAfterServed}
}

// Open is the number of connections open now.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Peers is the number of entries in the per-address table now.
func (l *Listener) Peers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.perIP)
}

// Accept returns the next connection within the caps; the excess is shed
// in the background and Accept goes on waiting.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer := peerAddr(c)
		if reason := l.admit(peer); reason != "" {
			if l.opts.OnShed != nil {
				l.opts.OnShed(reason)
			}
			go l.shed(c)
			continue
		}
		ec := &conn{Conn: c, l: l, peer: peer}
		if l.opts.ScanFraming && !l.opts.TLS {
			ec.scan = l.newScan(c, nil)
		}
		return ec, nil
	}
}

// newScan makes the framing scanner of one connection (c is the TLS
// connection above TLS, with its state), asking Early when it is set.
func (l *Listener) newScan(c net.Conn, state *tls.ConnectionState) *scanConn {
	sc := &scanConn{Conn: c, limit: l.opts.MaxHeaderBytes + 4096, headerTime: l.opts.HeaderTimeout}
	if l.opts.Early != nil {
		sc.early = l.opts.Early
		sc.earlyState = &earlyState{maxHeader: l.opts.MaxHeaderBytes, tls: state,
			idleTime: l.opts.IdleTimeout, writeTime: l.opts.WriteTimeout, skipAfter: l.skipAfter}
	}
	return sc
}

// admit takes a place for peer, or says why there is none.
func (l *Listener) admit(peer netip.Addr) string {
	if n := l.open.Add(1); l.opts.MaxConns > 0 && n > int64(l.opts.MaxConns) {
		l.open.Add(-1)
		return "max_connections"
	}
	if l.opts.MaxPerIP <= 0 || !peer.IsValid() || l.exempt(peer) {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[peer] >= int32(l.opts.MaxPerIP) {
		l.open.Add(-1)
		return "max_conns_per_ip"
	}
	l.perIP[peer]++
	return ""
}

func (l *Listener) release(peer netip.Addr) {
	l.open.Add(-1)
	if l.opts.MaxPerIP <= 0 || !peer.IsValid() || l.exempt(peer) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[peer]--; l.perIP[peer] <= 0 {
		delete(l.perIP, peer)
	}
}

func (l *Listener) exempt(a netip.Addr) bool {
	for _, p := range l.opts.Exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// shedResponse is written raw: the connection never reaches net/http.
var shedResponse = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: application/json\r\n" +
	"Content-Length: 33\r\n" +
	"Connection: close\r\n" +
	"x-amzn-ErrorType: ServiceUnavailableException\r\n" +
	"\r\n" +
	`{"message":"Service Unavailable"}`)

// shed answers 503 and closes. The write end is closed first and what the
// client sent is drained briefly, so the 503 is not lost to a reset
// caused by unread request bytes.
func (l *Listener) shed(c net.Conn) {
	defer c.Close()
	if l.opts.TLS {
		return
	}
	c.SetDeadline(time.Now().Add(250 * time.Millisecond))
	if _, err := c.Write(shedResponse); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	var buf [512]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return
		}
	}
}

func peerAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// ConnState tells the listener's connections what net/http is doing
// with them; a server whose Listener has Early or HeaderTimeout must call
// it from its ConnState hook. Only between requests (StateNew,
// StateIdle) has net/http answered all it read, so only then may a
// request be answered below it.
func ConnState(c net.Conn, s http.ConnState) {
	var sc *scanConn
	switch c := c.(type) {
	case *conn:
		sc = c.scan
	case *tlsConn:
		sc = c.scan
	}
	if sc != nil {
		sc.state.Store(int32(s) + 1)
	}
}

// conn gives its place back on Close, once.
type conn struct {
	net.Conn
	l      *Listener
	peer   netip.Addr
	scan   *scanConn
	closed atomic.Bool
}

func (c *conn) Read(p []byte) (int, error) {
	if c.scan != nil {
		return c.scan.Read(p)
	}
	return c.Conn.Read(p)
}

func (c *conn) Close() error {
	if c.closed.Swap(true) {
		return errors.New("edge: connection already closed")
	}
	c.l.release(c.peer)
	return c.Conn.Close()
}

// CloseWrite lets net/http half-close before closing after an error, so
// its answer is not lost to a reset while the client is still sending.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the TCP connection's sendfile/splice path for response
// bodies (writes are not wrapped).
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
