package forward

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Relay is the lean path for requests that are already planned: the
// agent's (internal/agent) relay of a bodiless request the edge sent
// through a tunnel. As on the gateway's lean path (lean.go), the serving
// goroutine writes the request on a kept-alive connection of the target's
// pool and copies the answer, with none of http.Transport's per-connection
// goroutines and hand-offs; the connections are dialed the same way
// (egress check on each resolved address, dial and handshake bounds,
// framing watch).
type Relay struct {
	d   *upstreamDialer
	max int

	mu    sync.Mutex
	pools map[poolKey]*pool // see pool
	// closed stops put from keeping connections after Close.
	closed bool
}

type poolKey struct{ scheme, host string }

// maxRelayPools bounds the pools a Relay keeps: one per target it
// reached. Targets past the bound are still relayed, on connections that
// are closed after each request.
const maxRelayPools = 256

// NewRelay makes a Relay; opts.Egress and MaxIdlePerHost (zero: 16 per
// target) apply.
func NewRelay(opts Options) *Relay {
	maxIdle := opts.MaxIdlePerHost
	if maxIdle == 0 {
		maxIdle = 16
	}
	return &Relay{d: newDialer(opts), max: maxIdle, pools: map[poolKey]*pool{}}
}

// Close drops idle connections; connections in use are closed when their
// request ends.
func (rl *Relay) Close() {
	rl.mu.Lock()
	pools := rl.pools
	rl.pools = map[poolKey]*pool{}
	rl.closed = true
	rl.mu.Unlock()
	for _, p := range pools {
		p.closeIdle()
	}
}

// pool returns the pool of u's scheme and host. A pool is remembered only
// once one of its connections is put back (keep), so that a target whose
// dial fails (an egress refusal above all) leaves nothing behind.
func (rl *Relay) pool(u *url.URL) *pool {
	key := poolKey{u.Scheme, u.Host}
	rl.mu.Lock()
	p := rl.pools[key]
	rl.mu.Unlock()
	if p == nil {
		p = newPool(u, rl.d, rl.max)
		p.key = key
	}
	return p
}

// keep puts pc back in p, remembering p.
func (rl *Relay) keep(p *pool, pc *pconn) {
	rl.mu.Lock()
	if rl.closed {
		rl.mu.Unlock()
		pc.c.Close()
		return
	}
	if q := rl.pools[p.key]; q != nil {
		p = q
	} else if len(rl.pools) < maxRelayPools {
		rl.pools[p.key] = p
	} else {
		rl.mu.Unlock()
		pc.c.Close()
		return
	}
	rl.mu.Unlock()
	p.put(pc)
}

// Forward sends out (absolute URL, Host, planned header; no body) and
// writes the answer to w: 1xx answers as they come, then the final one,
// with hop-by-hop headers and the header named strip removed. ctx ending
// (the peer went away) aborts the exchange; out's own context is not
// read, so that a pooled request needs no WithContext copy. A
// non-nil error means nothing was written to w; a failure while copying
// the body aborts w's response (panic(http.ErrAbortHandler)), as
// ReverseProxy does, so that a truncated body never looks complete.
func (rl *Relay) Forward(ctx context.Context, w http.ResponseWriter, out *http.Request, strip string) error {
	p := rl.pool(out.URL)
	res, pc, err := rl.roundTrip(ctx, p, out, w)
	if err != nil {
		return err
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Nobody asked to switch protocols (the request has no Upgrade).
		pc.stop()
		pc.c.Close()
		return errors.New("target switched protocols unasked")
	}
	removeHopHeaders(res.Header)
	delete(res.Header, strip)
	dst := writeHead(w, res)
	// Streams are flushed as they come, as ReverseProxy does: an answer of
	// unknown length, or server-sent events.
	err = copyBody(w, res.Body, res.ContentLength == -1 || eventStream(res.Header["Content-Type"]))
	res.Body.Close()
	// A connection whose exchange was aborted (its deadline is now in the
	// past) or did not end cleanly is not reusable.
	reusable := pc.stop() && err == nil && !res.Close
	if err != nil {
		pc.c.Close()
		panic(http.ErrAbortHandler)
	}
	for k, vs := range res.Trailer {
		dst[http.TrailerPrefix+k] = vs
	}
	if reusable {
		rl.keep(p, pc)
	} else {
		pc.c.Close()
	}
	return nil
}

// roundTrip writes out on a pooled connection of p and reads the final
// answer's head (1xx ones go to w). On a stale kept-alive connection it
// tries once more on a fresh one when that is safe, as the lean path.
// The connection it returns is watched (pc.stop) until the caller ends
// the exchange.
func (rl *Relay) roundTrip(ctx context.Context, p *pool, out *http.Request, w http.ResponseWriter) (*http.Response, *pconn, error) {
	for attempt := 0; ; attempt++ {
		pc, err := p.get(ctx, time.Time{})
		if err != nil {
			return nil, nil, err
		}
		pc.watch(ctx)
		res, wrote, err := exchangeOn(pc, out, w)
		if err == nil {
			return res, pc, nil
		}
		pc.stop()
		pc.c.Close()
		if attempt == 0 && pc.reused && ctx.Err() == nil && (!wrote || idempotent(out)) {
			continue
		}
		return nil, nil, err
	}
}

// eventStream reports whether a Content-Type is text/event-stream, as
// ReverseProxy tells (mime.ParseMediaType), without parsing the others.
func eventStream(ct []string) bool {
	if len(ct) == 0 || len(ct[0]) < len("text/event-stream") || !strings.EqualFold(ct[0][:len("text/event-stream")], "text/event-stream") {
		return false
	}
	mt, _, _ := mime.ParseMediaType(ct[0])
	return mt == "text/event-stream"
}

// watch aborts the exchange on pc when ctx ends, until stop.
func (pc *pconn) watch(ctx context.Context) {
	pc.unwatch = nil
	if ctx.Done() != nil {
		pc.unwatch = context.AfterFunc(ctx, pc.abort)
	}
}

// stop ends watch; false means the exchange was aborted (its connection
// is not reusable).
func (pc *pconn) stop() bool {
	if pc.unwatch == nil {
		return true
	}
	ok := pc.unwatch()
	pc.unwatch = nil
	return ok
}
