package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// TLSOptions configure Listener.TLS.
type TLSOptions struct {
	// HandshakeTimeout bounds the handshake (net/http uses the shortest
	// of its read, write and header timeouts); zero means no bound.
	HandshakeTimeout time.Duration
	// OnHandshakeError, if set, is told of every failed handshake, as
	// net/http logs them.
	OnHandshakeError func(remote net.Addr, reason string)
}

// TLS returns a listener that completes each connection's TLS handshake
// before handing it out, so that HTTP/1.x over TLS goes through the same
// framing scanner as plain HTTP (the scanner must see plaintext, and
// net/http would otherwise decrypt below it). A connection that
// negotiated h2 by ALPN is handed out as the bare *tls.Conn: net/http
// serves it with its HTTP/2 server, whose framing is binary and has no
// Content-Length/Transfer-Encoding ambiguity. Any other connection is
// handed out wrapped, which net/http takes for plain HTTP: the server's
// ConnContext must be set to ConnContext and the handler must run with
// HandlerOptions.TLS, so requests still carry their TLS state.
//
// Handshakes run in their own goroutines: a slow one never holds up
// Accept. Each still holds its place in l's connection caps.
func (l *Listener) TLS(cfg *tls.Config, opts TLSOptions) net.Listener {
	t := &tlsListener{
		Listener: l,
		cfg:      cfg,
		opts:     opts,
		conns:    make(chan net.Conn),
		errs:     make(chan error),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	go t.accept()
	return t
}

type tlsListener struct {
	*Listener
	cfg   *tls.Config
	opts  TLSOptions
	conns chan net.Conn
	errs  chan error
	// ctx ends when the listener closes.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

// accept hands every raw connection to a handshake. An accept error is
// passed to Accept's caller, which backs off before asking again
// (net/http does); after net.ErrClosed nothing more is accepted.
func (t *tlsListener) accept() {
	for {
		c, err := t.Listener.Accept()
		if err != nil {
			select {
			case t.errs <- err:
			case <-t.ctx.Done():
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go t.handshake(c)
	}
}

func (t *tlsListener) handshake(c net.Conn) {
	tc := tls.Server(c, t.cfg)
	if d := t.opts.HandshakeTimeout; d > 0 {
		tc.SetDeadline(time.Now().Add(d))
	}
	// Closing the listener cancels ctx: handshakes in progress end.
	err := tc.HandshakeContext(t.ctx)
	if err != nil {
		// As net/http: a client speaking plain HTTP to the TLS port gets
		// a plain-text 400 rather than a silent close.
		reason := err.Error()
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			reason = "client sent an HTTP request to an HTTPS server"
		}
		c.Close()
		if t.opts.OnHandshakeError != nil {
			t.opts.OnHandshakeError(c.RemoteAddr(), reason)
		}
		return
	}
	tc.SetDeadline(time.Time{})
	var out net.Conn = tc
	if t.Listener.opts.ScanFraming && tc.ConnectionState().NegotiatedProtocol != "h2" {
		out = &tlsConn{Conn: tc, scan: &scanConn{Conn: tc, limit: t.Listener.opts.MaxHeaderBytes + 4096,
			headerTime: t.Listener.opts.HeaderTimeout}}
	}
	select {
	case t.conns <- out:
	case <-t.ctx.Done():
		out.Close()
	}
}

// Accept returns the next connection whose handshake completed.
func (t *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-t.conns:
		return c, nil
	case err := <-t.errs:
		return nil, err
	case <-t.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops accepting; handshakes in progress are abandoned.
func (t *tlsListener) Close() error {
	err := net.ErrClosed
	t.once.Do(func() {
		t.cancel()
		err = t.Listener.Close()
	})
	return err
}

func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// tlsConn is an HTTP/1.x connection over TLS whose plaintext passes
// through the framing scanner. It keeps *tls.Conn's methods
// (ConnectionState, CloseWrite) for ConnContext and net/http.
type tlsConn struct {
	*tls.Conn
	scan *scanConn
}

func (c *tlsConn) Read(p []byte) (int, error) { return c.scan.Read(p) }

type tlsStateKey struct{}

// ConnContext is the http.Server ConnContext for a TLS listener: it keeps
// the TLS state of a connection net/http takes for plain HTTP, for
// Handler to put back on each request.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tlsConn); ok {
		st := tc.ConnectionState()
		return context.WithValue(ctx, tlsStateKey{}, &st)
	}
	return ctx
}
