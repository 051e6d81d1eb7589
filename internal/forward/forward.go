// Package forward sends one already-admitted request to its target and
// relays the answer. It is the only package that calls backends.
//
// It never writes an error response itself: Forward returns an *Error
// telling the caller whether the target was unreachable (502) or too slow
// (504), and the gateway renders it, so every error body is written in one
// place.
package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drawbridge/drawbridge/internal/egress"
)

// Kind is what went wrong with a forward.
type Kind int

const (
	// Unreachable: the target refused, reset, could not be dialed, or sent
	// a malformed answer. The client gets 502.
	Unreachable Kind = iota + 1
	// Timeout: the route's deadline passed before the target answered.
	// The client gets 504.
	Timeout
	// Denied: the egress guard refused the dial; the target saw nothing.
	// The client gets 502.
	Denied
	// NoAgent: the route goes through an agent (Options.Transport) and
	// none of its name is connected. The client gets 502.
	NoAgent
)

// ErrAgentUnavailable is what an agent tunnel's RoundTripper returns (or
// wraps) when no agent is connected to carry the request.
var ErrAgentUnavailable = errors.New("no agent connected")

// Error is a failed forward. Err is the private cause, for the log only.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Response selects how the target's answer reaches the client.
type Response int

const (
	// Passthrough relays the target's status, headers and body unchanged.
	Passthrough Response = iota
	// Envelope answers {"result": "<body as text>"} with the target's
	// status, the shape of the original Python forwarder.
	Envelope
)

// Options tune a Forwarder. The zero value is usable.
type Options struct {
	Response Response
	// Egress checks every dial on the resolved address, before
	// connecting (its ControlContext; an error wrapping egress.ErrDenied
	// makes the forward a Denied), and resolves target host names at dial
	// time through its name cache (Lookup), so a name that moves is
	// followed without a reload. Nil: no check, names resolved per dial.
	Egress *egress.Guard
	// MaxIdlePerHost is the keep-alive pool size to the target. Zero: 256,
	// far above Go's default of 2, which would make every burst open (and
	// then throw away) new connections.
	MaxIdlePerHost int
	// MaxEnvelopeBytes caps the target body that Envelope buffers. Zero:
	// 10 MiB.
	MaxEnvelopeBytes int64
	// Lean sends requests on the lean path (lean.go) instead of
	// ReverseProxy and http.Transport; WebSocket upgrades still take the
	// ReverseProxy path. False: ReverseProxy, the reference path.
	Lean bool
	// Transport, when set, carries every request instead of a dial to
	// the target: an agent tunnel (internal/tunnel). Egress does not
	// apply; the request goes through ReverseProxy, or with Lean straight
	// to Transport (via.go), with a body that can be sent again (GetBody),
	// so the tunnel may fail it over. A websocket route's requests take
	// ReverseProxy: the tunnel answers an upgrade with a 101 whose body is
	// the upgraded stream (internal/tunnel).
	Transport http.RoundTripper
}

// Forwarder sends requests to one target URL over its own Transport.
type Forwarder struct {
	target    *url.URL
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	pool      *pool // the lean path's connections; nil unless Options.Lean
	opts      Options
}

// New prepares a Forwarder for target (an absolute http or https URL
// without query), parsed here once.
func New(target string, opts Options) (*Forwarder, error) {
	u, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if opts.MaxIdlePerHost == 0 {
		opts.MaxIdlePerHost = 256
	}
	if opts.MaxEnvelopeBytes == 0 {
		opts.MaxEnvelopeBytes = 10 << 20
	}
	dialer := newDialer(opts)
	f := &Forwarder{target: u, transport: newTransport(dialer, opts.MaxIdlePerHost, opts.MaxIdlePerHost), opts: opts}
	if opts.Lean && opts.Transport == nil {
		f.pool = newPool(u, dialer, opts.MaxIdlePerHost)
	}
	var tr http.RoundTripper = f.transport
	if opts.Transport != nil {
		tr = opts.Transport
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite:      f.rewrite,
		Transport:    tr,
		BufferPool:   bufferPool{},
		ErrorHandler: recordError,
		ErrorLog:     discardLog,
	}
	f.proxy.ModifyResponse = f.modifyResponse
	return f, nil
}

// Close drops idle keep-alive connections (after a reload replaced this
// forwarder).
func (f *Forwarder) Close() {
	f.transport.CloseIdleConnections()
	if f.pool != nil {
		f.pool.closeIdle()
	}
}

// Request is what the gateway decided about one request.
type Request struct {
	// Rest is the escaped path after a prefix route's base ("" for exact
	// routes); it is appended to the target path.
	Rest string
	// Body was read and bounded before dispatch; the target never sees a
	// partial body.
	Body []byte
	// ForwardedFor is the X-Forwarded-For value to send.
	ForwardedFor string
	RequestID    string
	Deadline     time.Time
	// WebSocket lets an Upgrade: websocket through; every other Upgrade
	// (h2c above all: a tunnel past every guard) is stripped.
	WebSocket bool
	// Trace is the exchange's span context and timing; nil with tracing
	// off (one pointer: the Request stays in its allocation size class).
	Trace *Trace
	// Sign, when set, adds drawbridge's signature to the header the target
	// receives, after every other header is set (delivery.sign).
	Sign func(h http.Header, body []byte)
}

// Trace is what tracing (docs/tracing.md) needs of one exchange.
type Trace struct {
	// Parent replaces the client's traceparent, and State its tracestate
	// ("" removes it): the target continues the gateway's trace, never
	// one a client made up.
	Parent, State string
	// Timing receives what the exchange cost.
	Timing Timing
}

// Timing is what one exchange with the target cost, for its span.
type Timing struct {
	Reused    bool      // a kept-alive connection carried it: no dial
	DialStart time.Time // zero when reused
	DialEnd   time.Time
	FirstByte time.Time // the answer's head arrived; zero: no answer
}

type ctxKey struct{}

// state carries a request's plan into Rewrite and its error out of
// ErrorHandler: ReverseProxy offers no other way through.
type state struct {
	req *Request
	err error
	// upgraded stops the route deadline once a WebSocket handshake has
	// succeeded: the timeout bounds the handshake, not the session.
	upgraded func() bool
	timedOut atomic.Bool // the handshake deadline fired
	vals     [3]string   // the header values drawbridge sets (outHeader)
}

// Forward sends r (whose body was already read into fr.Body) to the target
// and writes the answer to w. A non-nil error means nothing was written.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, fr *Request) error {
	if f.pool != nil && !(fr.WebSocket && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")) {
		return f.forwardLean(w, r, fr)
	}
	if f.opts.Transport != nil && f.opts.Lean && !fr.WebSocket {
		return f.forwardVia(w, r, fr) // via.go
	}
	st := &state{req: fr}
	base := context.WithValue(r.Context(), ctxKey{}, st)
	var ctx context.Context
	var cancel context.CancelFunc
	if fr.WebSocket {
		// The deadline bounds the handshake only: modifyResponse stops
		// this timer when the target switches protocols.
		ctx, cancel = context.WithCancel(base)
		t := time.AfterFunc(time.Until(fr.Deadline), func() { st.timedOut.Store(true); cancel() })
		defer t.Stop()
		st.upgraded = t.Stop
	} else {
		ctx, cancel = context.WithDeadline(base, fr.Deadline)
	}
	defer cancel()
	if fr.Trace != nil {
		ctx = httptrace.WithClientTrace(ctx, clientTrace(&fr.Trace.Timing))
	}
	in := r.WithContext(ctx)
	if len(fr.Body) > 0 {
		in.Body = io.NopCloser(bytes.NewReader(fr.Body))
		if f.opts.Transport != nil {
			in.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(fr.Body)), nil }
		}
	} else {
		in.Body = http.NoBody
	}
	in.ContentLength = int64(len(fr.Body))
	in.TransferEncoding = nil
	f.proxy.ServeHTTP(w, in)
	if st.err == nil {
		return nil
	}
	kind := Unreachable
	switch {
	case errors.Is(st.err, egress.ErrDenied):
		kind = Denied
	case errors.Is(st.err, ErrAgentUnavailable):
		kind = NoAgent
	case errors.Is(st.err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded || st.timedOut.Load():
		kind = Timeout
	}
	return &Error{Kind: kind, Err: st.err}
}

// clientTrace fills t from http.Transport's events (the ReverseProxy
// path; the lean path fills it itself).
func clientTrace(t *Timing) *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn:              func(ci httptrace.GotConnInfo) { t.Reused = ci.Reused },
		ConnectStart:         func(string, string) { t.DialStart = time.Now() },
		ConnectDone:          func(string, string, error) { t.DialEnd = time.Now() },
		GotFirstResponseByte: func() { t.FirstByte = time.Now() },
	}
}

func recordError(_ http.ResponseWriter, r *http.Request, err error) {
	if st, ok := r.Context().Value(ctxKey{}).(*state); ok {
		st.err = err
	}
}

func (f *Forwarder) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(ctxKey{}).(*state)
	fr := st.req
	out := pr.Out

	// ReverseProxy re-adds Connection and Upgrade for an upgrade the
	// client asked for; only a websocket one on a websocket route goes on
	// (golang/go#80416: ReverseProxy forwards Upgrade: h2c, a tunnel past
	// every guard).
	up := out.Header.Get("Upgrade")
	// The header is the plan's (plan.go), built from the client's header
	// into ReverseProxy's copy; the query goes byte for byte: ReverseProxy
	// re-encodes queries with ';' (cleanQueryParams) before Rewrite, which
	// would reorder and re-escape a signed query.
	clear(out.Header)
	outHeader(out.Header, pr.In, fr, &st.vals)
	if fr.WebSocket && strings.EqualFold(up, "websocket") {
		out.Header["Connection"] = []string{"Upgrade"}
		out.Header["Upgrade"] = []string{up}
	}
	out.URL = new(url.URL)
	f.targetURL(out.URL, pr.In.URL, fr.Rest)
	out.Host = ""
}

// modifyResponse runs on the target's answer before anything reaches the
// client (ReverseProxy has already dropped its hop-by-hop headers).
func (f *Forwarder) modifyResponse(res *http.Response) error {
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Only a websocket upgrade the request asked for (rewrite strips
		// every other) may switch protocols. ReverseProxy refuses other
		// 101s itself but leaves the target's connection open; an error
		// here makes it close the connection (the 101's body).
		if !strings.EqualFold(res.Request.Header.Get("Upgrade"), "websocket") {
			return errors.New("target switched protocols unasked")
		}
		if st, ok := res.Request.Context().Value(ctxKey{}).(*state); ok && st.upgraded != nil {
			st.upgraded()
		}
		return nil
	}
	if f.opts.Response == Envelope {
		return f.envelope(res)
	}
	return nil
}

// envelope rewrites the target's answer as {"result": "<body as text>"}
// with the target's status, as the original forwarder did (its headers are
// dropped, as there).
func (f *Forwarder) envelope(res *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(res.Body, f.opts.MaxEnvelopeBytes+1))
	res.Body.Close()
	if err != nil {
		return err
	}
	if int64(len(body)) > f.opts.MaxEnvelopeBytes {
		return fmt.Errorf("envelope: target body over %d bytes", f.opts.MaxEnvelopeBytes)
	}
	text, _ := json.Marshal(string(body)) // invalid UTF-8 becomes U+FFFD, as Python's r.text
	out := make([]byte, 0, len(text)+12)
	out = append(out, `{"result": `...)
	out = append(out, text...)
	out = append(out, '}')
	for k := range res.Header {
		delete(res.Header, k)
	}
	res.Header["Content-Type"] = []string{"application/json"}
	res.Header["Content-Length"] = []string{fmt.Sprint(len(out))}
	res.ContentLength = int64(len(out))
	res.TransferEncoding = nil
	res.Trailer = nil
	res.Body = io.NopCloser(bytes.NewReader(out))
	return nil
}

// discardLog silences ReverseProxy: the gateway logs each failure once,
// with the request id, from the returned *Error.
var discardLog = log.New(io.Discard, "", 0)

// bufferPool lends ReverseProxy its 32 KiB copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
