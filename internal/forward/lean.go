package forward

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drawbridge/drawbridge/internal/egress"
)

// The lean path (Options.Lean) sends a request without http.Transport:
// the serving goroutine takes a kept-alive connection from the target's
// pool, writes the request with (*http.Request).Write, reads the answer
// with http.ReadResponse and copies it to the client, then puts the
// connection back. Transport's per-connection read and write goroutines,
// and the channel hand-offs between them and the caller, are most of the
// cost of a bare ReverseProxy on loopback (docs/performance.md); the lean
// path has none. Framing stays the standard library's
// own: no HTTP parsing here.
//
// The request body is always already buffered (the gateway's body step),
// which is what makes a retry on a stale kept-alive connection safe in the
// one case where it is done: the connection was reused and failed before a
// single byte of an answer arrived, and either nothing was written or the
// method is idempotent (Transport's rule).

// pool holds idle connections to one target.
type pool struct {
	addr   string  // host:port to dial
	key    poolKey // the Relay's name for it (relay.go); zero for a Forwarder's
	tls    *tls.Config
	dialer *upstreamDialer
	max    int

	mu   sync.Mutex
	idle []*pconn
}

// pconn is one upstream connection with its buffers, and what each
// request on it needs made once per connection instead of per request:
// the raw socket for the liveness peek and the function that aborts an
// exchange when the client goes away.
type pconn struct {
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	reused bool

	raw    syscall.RawConn // nil when c has no socket (tests' pipes)
	peek   func(fd uintptr) bool
	peeked bool // the last peek's answer: open
	abort  func()
	// unwatch stops the Relay's watch of the exchange's context (relay.go).
	unwatch func() bool
}

func newPconn(c net.Conn) *pconn {
	pc := &pconn{c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 16<<10)}
	pc.abort = func() { pc.c.SetDeadline(aLongTimeAgo) }
	pc.raw, pc.peek = rawConn(pc)
	return pc
}

func newPool(u *url.URL, dialer *upstreamDialer, max int) *pool {
	p := &pool{addr: u.Host, dialer: dialer, max: max}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		p.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "https" {
		p.tls = tlsConfig(u.Hostname())
	}
	return p
}

// get returns an idle connection (most recently used first: it is the
// least likely to have been closed by the target) or dials a new one,
// with deadline set on it: the one SetDeadline of an exchange (an idle
// connection keeps its last, harmless deadline: nothing reads it). A zero
// deadline is none: the Relay's exchanges end with their context.
func (p *pool) get(ctx context.Context, deadline time.Time) (*pconn, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			if !deadline.IsZero() {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, deadline)
				defer cancel()
			}
			pc, err := p.dial(ctx)
			if err != nil {
				return nil, err
			}
			pc.c.SetDeadline(deadline)
			return pc, nil
		}
		pc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		pc.c.SetDeadline(deadline)
		// One non-blocking peek per reuse (a fraction of a microsecond)
		// catches a connection the target closed while it sat idle, which
		// Transport learns from its always-reading goroutine; a POST on
		// such a connection could not be retried safely.
		if !alive(pc) {
			pc.c.Close()
			continue
		}
		pc.reused = true
		return pc, nil
	}
}

func (p *pool) dial(ctx context.Context) (*pconn, error) {
	c, err := dialUpstream(ctx, p.dialer, p.addr, p.tls)
	if err != nil {
		return nil, err
	}
	return newPconn(c), nil
}

// put returns a healthy connection to the pool, or closes it when the
// pool is full.
func (p *pool) put(pc *pconn) {
	p.mu.Lock()
	if len(p.idle) < p.max {
		p.idle = append(p.idle, pc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	pc.c.Close()
}

func (p *pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}

// forwardLean is Forward on the lean path.
//
// The deadline is the connection's (SetDeadline); the request's context
// only aborts the exchange when the client goes away (a context deadline
// would cost a timer and four allocations per request, for nothing the
// connection's deadline does not do).
func (f *Forwarder) forwardLean(w http.ResponseWriter, r *http.Request, fr *Request) error {
	o := outbounds.Get().(*outReq)
	defer o.release()
	f.outbound(o, r, fr)
	ctx := r.Context()

	res, pc, err := f.roundTrip(ctx, o, fr)
	if err != nil {
		kind := Unreachable
		switch {
		case errors.Is(err, egress.ErrDenied):
			kind = Denied
		case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || !time.Now().Before(fr.Deadline):
			kind = Timeout
		}
		return &Error{Kind: kind, Err: err}
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// WebSocket upgrades take the ReverseProxy path; on this one a
		// target may not switch protocols, and its connection is not
		// reusable (as the ReverseProxy path's modifyResponse).
		pc.c.Close()
		return &Error{Kind: Unreachable, Err: errors.New("target switched protocols unasked")}
	}
	// From here the answer is the target's; a failure while copying its
	// body aborts the client's response (as ReverseProxy does), so a
	// truncated body can never look complete.
	if f.opts.Response == Envelope {
		if err := f.envelope(res); err != nil {
			pc.c.Close()
			return &Error{Kind: Unreachable, Err: err}
		}
	}
	removeHopHeaders(res.Header)
	dst := writeHead(w, res)
	err = copyBody(w, res.Body, res.ContentLength == -1)
	res.Body.Close()
	if err != nil {
		pc.c.Close()
		panic(http.ErrAbortHandler)
	}
	for k, vs := range res.Trailer {
		dst[http.TrailerPrefix+k] = vs
	}
	if res.Close {
		pc.c.Close()
	} else {
		f.pool.put(pc)
	}
	return nil
}

// roundTrip writes out on a pooled connection and reads the answer's
// head. On a stale reused connection it retries once on a fresh one.
func (f *Forwarder) roundTrip(ctx context.Context, o *outReq, fr *Request) (*http.Response, *pconn, error) {
	for attempt := 0; ; attempt++ {
		var t0 time.Time
		if fr.Trace != nil {
			t0 = time.Now()
		}
		pc, err := f.pool.get(ctx, fr.Deadline)
		if err != nil {
			return nil, nil, err
		}
		if fr.Trace != nil {
			t := &fr.Trace.Timing
			*t = Timing{Reused: pc.reused}
			if !pc.reused {
				t.DialStart, t.DialEnd = t0, time.Now()
			}
		}
		res, wrote, err := sendOn(ctx, pc, o, fr)
		if err == nil {
			if fr.Trace != nil {
				fr.Trace.Timing.FirstByte = time.Now()
			}
			return res, pc, nil
		}
		pc.c.Close()
		if attempt == 0 && pc.reused && ctx.Err() == nil && time.Now().Before(fr.Deadline) && (!wrote || idempotent(&o.req)) {
			continue
		}
		return nil, nil, err
	}
}

// sendOn writes o's request and reads the answer's head on pc. wrote
// reports whether any of the request reached the connection.
func sendOn(ctx context.Context, pc *pconn, o *outReq, fr *Request) (res *http.Response, wrote bool, err error) {
	out := &o.req
	o.body.Reset(fr.Body)  // from the start, on a retry too
	if ctx.Done() != nil { // a context that can never end needs no watch
		stop := context.AfterFunc(ctx, pc.abort)
		defer stop()
	}
	return exchangeOn(pc, out, nil)
}

// writeHead writes res's status and header (hop-by-hop headers already
// removed) to w, its trailers announced; it returns w's header map, where
// the trailers go once the body is read.
func writeHead(w http.ResponseWriter, res *http.Response) http.Header {
	dst := w.Header()
	for k, vs := range res.Header {
		dst[k] = vs
	}
	if len(res.Trailer) > 0 {
		names := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			names = append(names, k)
		}
		dst["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(res.StatusCode)
	return dst
}

// exchangeOn writes out on pc and reads the answer's head. 1xx answers
// (100 Continue, 103 Early Hints) are informational and the final answer
// follows on the same connection (101 is final): with w they are written
// to w as they come (ReverseProxy's rule), without they are dropped.
// wrote reports whether any of the request reached the connection.
func exchangeOn(pc *pconn, out *http.Request, w http.ResponseWriter) (res *http.Response, wrote bool, err error) {
	if err := out.Write(pc.bw); err != nil {
		return nil, true, err
	}
	if err := pc.bw.Flush(); err != nil {
		return nil, true, err
	}
	for {
		res, err = http.ReadResponse(pc.br, out)
		if err != nil {
			return nil, true, err
		}
		if res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			return res, true, nil
		}
		if w == nil {
			continue
		}
		h := w.Header()
		for k, vs := range res.Header {
			h[k] = vs
		}
		w.WriteHeader(res.StatusCode)
		clear(h) // a 1xx's header is not the final answer's
	}
}

var aLongTimeAgo = time.Unix(1, 0)

func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return r.Header["Idempotency-Key"] != nil || r.Header["X-Idempotency-Key"] != nil
}

// outReq is the memory of one outbound request, pooled: the request, its
// URL, header map, the header values drawbridge sets and the body reader
// are one reused object instead of a dozen allocations per request.
// Nothing keeps any of it after forwardLean returns (the response that
// points at the request is dropped there too).
type outReq struct {
	req  http.Request
	url  url.URL
	h    http.Header
	vals [3]string // X-Forwarded-For, X-Forwarded-Host, X-Request-Id
	body body
}

var outbounds = sync.Pool{New: func() any { return &outReq{h: make(http.Header, 16)} }}

func (o *outReq) release() {
	clear(o.h)
	o.vals = [3]string{}
	o.body.Reset(nil)
	h := o.h
	*o = outReq{h: h}
	outbounds.Put(o)
}

// body is the buffered request body as an io.ReadCloser.
type body struct{ bytes.Reader }

func (*body) Close() error { return nil }

// outbound builds the request sent to the target in o, by the plan
// (plan.go) into o's pooled memory.
func (f *Forwarder) outbound(o *outReq, r *http.Request, fr *Request) *http.Request {
	h := o.h
	outHeader(h, r, fr, &o.vals)
	sendHeader(h)
	f.targetURL(&o.url, r.URL, fr.Rest)
	o.req = http.Request{
		Method:        r.Method,
		URL:           &o.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Host:          o.url.Host,
		ContentLength: int64(len(fr.Body)),
	}
	if len(fr.Body) > 0 {
		o.req.Body = &o.body // (re)filled by each exchange
	}
	return &o.req
}

// copyBody copies the target's body to the client with a pooled buffer,
// flushing after every write when the length is unknown (streams).
func copyBody(w http.ResponseWriter, body io.Reader, flush bool) error {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	var fl http.Flusher
	if flush {
		fl, _ = w.(http.Flusher)
		if fl == nil {
			rc := http.NewResponseController(w)
			fl = flusherFunc(func() { rc.Flush() })
		}
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return fmt.Errorf("write to client: %w", werr)
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read target body: %w", rerr)
		}
	}
}

type flusherFunc func()

func (f flusherFunc) Flush() { f() }
