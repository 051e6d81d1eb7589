package forward

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/drawbridge/drawbridge/internal/egress"
)

// Every connection to a target, whichever path sends on it, is made by
// dialUpstream with a dialer from newDialer: the egress check on each
// resolved address, bounded dial and TLS handshake times, and on plain
// HTTP the framing watch (upstream.go).

const (
	dialTimeout      = 10 * time.Second
	handshakeTimeout = 10 * time.Second
	// minAttempt is the least time one address of several gets, as Go's
	// own dialer gives (net.partialDeadline).
	minAttempt = 2 * time.Second
)

// upstreamDialer dials targets: IP literals directly, host names through
// the egress guard's name cache (egress.Names), each resolved address
// checked by the guard in ControlContext.
type upstreamDialer struct {
	nd    *net.Dialer
	guard *egress.Guard // nil: no check, names resolved by nd per dial
}

func newDialer(opts Options) *upstreamDialer {
	nd := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	if opts.Egress != nil {
		nd.ControlContext = opts.Egress.ControlContext
	}
	return &upstreamDialer{nd: nd, guard: opts.Egress}
}

// dialTCP connects to addr (host:port). A host name is resolved through
// the guard's cache, not per dial, and its addresses are tried in the
// resolver's order, each dial marked with egress.Follow so that the guard
// can follow the name (Options.Follow) or check the address on its rules.
// An IP literal costs nothing more than before names were followed.
func (d *upstreamDialer) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || d.guard == nil {
		return d.nd.DialContext(ctx, "tcp", addr)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return d.nd.DialContext(ctx, "tcp", addr)
	}
	addrs, err := d.guard.Lookup(ctx, host)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err // the route's deadline passed: a timeout
		}
		// A name that does not resolve, even after its own lookup bound,
		// is an unreachable target (502), not the route's timeout (504):
		// the error keeps its text but no longer unwraps to a context error.
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New(err.Error())}
	}
	ctx = egress.Follow(ctx, host)
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var first error
	for i, a := range addrs {
		actx := ctx
		if left := len(addrs) - i; left > 1 {
			// Split what is left between the addresses still to try,
			// as Go's dialer does, so one black hole cannot use it all.
			dl, _ := ctx.Deadline()
			per := max(time.Until(dl)/time.Duration(left), minAttempt)
			var c context.CancelFunc
			actx, c = context.WithTimeout(ctx, per)
			defer c()
		}
		c, err := d.nd.DialContext(actx, "tcp", net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// dialUpstream connects to addr (host:port). With conf nil the connection
// is plain HTTP and its responses are watched for Content-Length with
// Transfer-Encoding, which net/http would accept; otherwise it is TLS,
// HTTP/1.1 only (conf's NextProtos), handshaken before it is returned.
func dialUpstream(ctx context.Context, d *upstreamDialer, addr string, conf *tls.Config) (net.Conn, error) {
	c, err := d.dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	if conf == nil {
		return newUpstreamConn(c), nil
	}
	tc := tls.Client(c, conf)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// tlsConfig is the client TLS configuration for host: the system roots,
// and HTTP/1.1, the only protocol the framing rules here are written for.
func tlsConfig(host string) *tls.Config {
	return &tls.Config{ServerName: host, NextProtos: []string{"http/1.1"}}
}

// newTransport is an http.Transport whose connections come from
// dialUpstream. maxIdle bounds idle connections per host, maxTotal in all
// (zero: no bound).
func newTransport(d *upstreamDialer, maxIdle, maxTotal int) *http.Transport {
	return &http.Transport{
		Proxy: nil, // never an environment proxy: egress is decided here
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialUpstream(ctx, d, addr, nil)
		},
		// https is dialed here rather than by the Transport so that
		// DialContext is only ever asked for plain connections, the ones
		// the framing watch can read.
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return dialUpstream(ctx, d, addr, tlsConfig(host))
		},
		MaxIdleConns:          maxTotal,
		MaxIdleConnsPerHost:   maxIdle,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: 0,
		// The client's Accept-Encoding passes through and the body comes
		// back as the target encoded it: no transparent gunzip.
		DisableCompression: true,
	}
}

// Client sends planned requests (a stored Plan) to any http or https URL,
// over the same connections as the sync paths: egress check, dial and
// handshake bounds, framing watch. It is the delivery worker's way to a
// target: a delivery keeps the URL it was accepted for, whatever the
// routes are now. Redirects are never followed and no cookie is kept.
type Client struct {
	tr    http.RoundTripper
	close func()
}

// NewClient makes a Client. opts.Egress and MaxIdlePerHost
// (zero: 16 per target) apply, or opts.Transport (an agent tunnel)
// carries every request instead; the others are the Forwarder's.
func NewClient(opts Options) *Client {
	if opts.Transport != nil {
		return &Client{tr: opts.Transport, close: func() {}}
	}
	maxIdle := opts.MaxIdlePerHost
	if maxIdle == 0 {
		maxIdle = 16
	}
	tr := newTransport(newDialer(opts), maxIdle, 0)
	return &Client{tr: tr, close: tr.CloseIdleConnections}
}

// RoundTrip sends req as it is (no plan, no User-Agent rule) on the
// Client's connections: the agent relays requests the edge planned
// through it (internal/agent).
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) { return c.tr.RoundTrip(req) }

// Send sends method rawURL with header h (as planned; Send applies the
// User-Agent rule to it, and it must not be used after) and body, and
// returns the target's answer, whose body the caller must close.
func (c *Client) Send(ctx context.Context, method, rawURL string, h http.Header, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = http.Header{}
	}
	sendHeader(h)
	req.Header = h
	return c.tr.RoundTrip(req)
}

// Close drops idle connections.
func (c *Client) Close() { c.close() }
