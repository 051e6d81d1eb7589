package authorizer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/drawbridge/drawbridge/internal/egress"
)

// newClient is the HTTP client of one authorizer: every address it dials
// is checked by the egress guard after name resolution (as the forwarder's
// dials are, docs/hardening.md), each request bounded by timeout, no
// redirects followed (a redirect could lead a key fetch elsewhere than
// configured), no proxy from the environment.
func newClient(guard *egress.Guard, timeout time.Duration) *http.Client {
	nd := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if guard != nil {
		nd.ControlContext = guard.ControlContext
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer{nd: nd, guard: guard}.dial,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

type dialer struct {
	nd    *net.Dialer
	guard *egress.Guard
}

// dial resolves a host name through the guard's name cache and marks the
// dial with egress.Follow, so a name the guard follows (an authorizer URL
// under the default allow list) passes on its port and any other address
// is decided by the rules.
func (d dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || d.guard == nil {
		return d.nd.DialContext(ctx, network, addr)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return d.nd.DialContext(ctx, network, addr)
	}
	addrs, err := d.guard.Lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	ctx = egress.Follow(ctx, host)
	var first error
	for _, a := range addrs {
		c, err := d.nd.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
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
	if first == nil {
		first = errors.New("no address for " + host)
	}
	return nil, first
}

// errTooLarge is an answer over its size limit.
var errTooLarge = errors.New("answer too large")

// readLimited reads at most limit bytes of body, failing beyond.
func readLimited(body io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}
