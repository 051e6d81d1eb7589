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
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
)

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
	// Control is called on every dial with the resolved address, before
	// connecting; the egress guard lives here (egress.Guard.Control; an
	// error wrapping egress.ErrDenied makes the forward a Denied). Nil: no
	// check.
	Control func(network, address string, c syscall.RawConn) error
	// Resolver looks up target host names. Nil: net.DefaultResolver.
	// Tests inject one whose answers change between dials (DNS rebinding).
	Resolver *net.Resolver
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
// without query).
func New(target string, opts Options) (*Forwarder, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	if opts.MaxIdlePerHost == 0 {
		opts.MaxIdlePerHost = 256
	}
	if opts.MaxEnvelopeBytes == 0 {
		opts.MaxEnvelopeBytes = 10 << 20
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: opts.Control, Resolver: opts.Resolver}
	dial := dialer.DialContext
	if u.Scheme == "http" {
		// Watch plain-HTTP responses for Content-Length with
		// Transfer-Encoding, which the Transport would accept (upstream.go).
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return newUpstreamConn(c), nil
		}
	}
	t := &http.Transport{
		Proxy:                 nil, // never an environment proxy: egress is decided here
		DialContext:           dial,
		MaxIdleConns:          opts.MaxIdlePerHost,
		MaxIdleConnsPerHost:   opts.MaxIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 0,
		// The client's Accept-Encoding passes through and the body comes
		// back as the target encoded it: no transparent gunzip.
		DisableCompression: true,
	}
	f := &Forwarder{target: u, transport: t, opts: opts}
	if opts.Lean {
		f.pool = newPool(u, dialer, opts.MaxIdlePerHost)
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite:      f.rewrite,
		Transport:    t,
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
}

// Forward sends r (whose body was already read into fr.Body) to the target
// and writes the answer to w. A non-nil error means nothing was written.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, fr *Request) error {
	if f.pool != nil && !(fr.WebSocket && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")) {
		return f.forwardLean(w, r, fr)
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
	in := r.WithContext(ctx)
	if len(fr.Body) > 0 {
		in.Body = io.NopCloser(bytes.NewReader(fr.Body))
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
	case errors.Is(st.err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded || st.timedOut.Load():
		kind = Timeout
	}
	return &Error{Kind: kind, Err: st.err}
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

	// ReverseProxy has already dropped hop-by-hop headers, those named in
	// Connection, and the inbound X-Forwarded-*, before this runs; headers
	// set below therefore cannot be removed by a client's Connection list.
	// The query goes byte-for-byte (targetURL): ReverseProxy re-encodes
	// queries with ';' (cleanQueryParams) before Rewrite, which would
	// reorder and re-escape a signed query.
	out.URL = new(url.URL)
	f.targetURL(out.URL, pr.In, fr)
	out.Host = ""

	h := out.Header
	stripProtected(h)
	if up := h.Get("Upgrade"); !fr.WebSocket || !strings.EqualFold(up, "websocket") {
		// golang/go#80416: ReverseProxy forwards Upgrade: h2c; strip it.
		h.Del("Upgrade")
		h.Del("Connection")
		h.Del("Http2-Settings")
	}
	if fr.ForwardedFor != "" {
		h["X-Forwarded-For"] = []string{fr.ForwardedFor}
	}
	h["X-Forwarded-Host"] = []string{pr.In.Host}
	if pr.In.TLS != nil {
		h["X-Forwarded-Proto"] = []string{"https"}
	} else {
		h["X-Forwarded-Proto"] = []string{"http"}
	}
	h["X-Request-Id"] = []string{fr.RequestID}
}

// stripProtected drops headers a client must not set or pass on: the API
// key and forwarding headers, also under '_' spellings (X_Api_Key) that a
// CGI-style backend would map back to the protected name.
func stripProtected(h http.Header) {
	for k := range h {
		if Protected(k) {
			delete(h, k)
		}
	}
}

// Protected reports whether a header name, with '_' read as '-' and case
// folded, is one drawbridge owns: x-api-key, x-forwarded-*, forwarded,
// x-real-ip, x-request-id, http2-settings.
func Protected(name string) bool {
	if len(name) > 12 && foldEq(name[:12], "x-forwarded-") {
		// First: a 14-byte X-Forwarded-Xy is a prefix match too (found by
		// FuzzProtected: X_FORWARDED_00 once slipped through the length
		// switch below).
		return true
	}
	switch len(name) {
	case 9: // forwarded, x-api-key, x-real-ip
		return foldEq(name, "forwarded") || foldEq(name, "x-api-key") || foldEq(name, "x-real-ip")
	case 12:
		return foldEq(name, "x-request-id")
	case 14:
		return foldEq(name, "http2-settings")
	}
	return false
}

// foldEq compares a header name to a lower-case protected name, reading
// '_' as '-', without allocating.
func foldEq(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			c = '-'
		} else if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
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
