package tunnel

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/forward"
)

// Transport is the http.RoundTripper of the agents named name: each
// request goes to the connected tunnel with the fewest streams in flight.
// The request's URL is the private target; the agent dials it (under its
// own egress rules), never the edge.
func (e *Edge) Transport(name string) http.RoundTripper {
	return &via{e: e, name: name, stats: e.statsFor(name), streams: e.m.streams.WithLabelValues(name),
		sent: e.m.bytes.WithLabelValues(name, "sent"), received: e.m.bytes.WithLabelValues(name, "received")}
}

type via struct {
	e              *Edge
	name           string
	stats          *nameStats
	streams        prometheus.Gauge
	sent, received prometheus.Counter
}

// AgentError is an answer the agent made itself because it did not reach
// the target. It unwraps to egress.ErrDenied when the agent's egress
// rules refused the target.
type AgentError struct {
	Agent, Code string
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("agent %s: %s", e.Agent, strings.ReplaceAll(e.Code, "_", " "))
}

func (e *AgentError) Unwrap() error {
	if e.Code == ErrEgressDenied {
		return egress.ErrDenied
	}
	return nil
}

// RoundTrip sends req through a tunnel; an Upgrade request becomes one
// full-duplex stream (upgradeRequest). A tunnel that fails the request
// before any answer makes it go through another one when that is safe:
// the method is idempotent, or the stream never left (the connection was
// already unusable); a request body must then be re-readable (GetBody).
func (v *via) RoundTrip(req *http.Request) (*http.Response, error) {
	orig := req
	var proto string
	if up := req.Header["Upgrade"]; len(up) > 0 { // indexed: no canonicalising on every request
		proto = up[0]
	}
	switch {
	case proto != "":
		req = upgradeRequest(req, proto)
	case req.Header[UpgradeHeader] != nil:
		// Only the edge marks an upgrade: a client's copy of the header
		// would make the agent send an Upgrade the route never allowed.
		req = req.WithContext(req.Context())
		req.Header = req.Header.Clone()
		delete(req.Header, UpgradeHeader)
	}
	var tried []*tunnel
	var last error
	for {
		t := v.e.pick(v.name, tried)
		if t == nil {
			if last != nil {
				return nil, last
			}
			return nil, fmt.Errorf("agent %s: %w", v.name, forward.ErrAgentUnavailable)
		}
		var pw *io.PipeWriter
		if proto != "" {
			// The stream's request body is what the client sends after
			// the 101; nothing is written to it before, so each attempt
			// gets a fresh pipe.
			var pr *io.PipeReader
			pr, pw = io.Pipe()
			req = req.WithContext(req.Context())
			req.Body = pr
		}
		if req.Body != nil && req.Body != http.NoBody {
			req = req.WithContext(req.Context()) // RoundTrip may not change the caller's request
			req.Body = &countingBody{ReadCloser: req.Body, n: v.sent, total: &v.stats.sent}
		}
		t.inflight.Add(1)
		t.requests.Add(1)
		v.stats.requests.Add(1)
		v.streams.Inc()
		res, err := t.cc.RoundTrip(req)
		if err != nil {
			t.inflight.Add(-1)
			v.streams.Dec()
			if req.Context().Err() != nil || !(idempotent(req) || unsent(err)) {
				return nil, err
			}
			if proto == "" && req.Body != nil && req.Body != http.NoBody {
				if req.GetBody == nil {
					return nil, err
				}
				b, berr := req.GetBody()
				if berr != nil {
					return nil, err
				}
				req = req.WithContext(req.Context())
				req.Body = b
			}
			tried = append(tried, t)
			last = fmt.Errorf("agent %s: %w", v.name, err)
			v.e.log.Warn("agent tunnel failed a request; trying another", "agent", v.name, "tunnel", t.id, "error", err.Error())
			continue
		}
		if pw != nil && (res.StatusCode != http.StatusOK || res.Header[UpgradeHeader] == nil) {
			pw.Close() // not upgraded: the answer is an ordinary one
			pw = nil
		}
		if code := res.Header.Get(ErrorHeader); code != "" {
			io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
			res.Body.Close()
			t.inflight.Add(-1)
			v.streams.Dec()
			return nil, &AgentError{Agent: v.name, Code: code}
		}
		sb := &streamBody{ReadCloser: res.Body, t: t, v: v}
		res.Body = sb
		if pw != nil {
			upgraded(res, orig, sb, pw)
		}
		return res, nil
	}
}

// upgradeRequest is req (an Upgrade request: forward lets only a
// websocket route's through) as the stream carries it: HTTP/2 forbids
// Connection and Upgrade, so the protocol asked for travels in
// UpgradeHeader, and the body, if any, is not sent (a handshake has
// none; the stream's body is the client's bytes after the 101).
func upgradeRequest(req *http.Request, proto string) *http.Request {
	if req.Body != nil {
		req.Body.Close() // a RoundTripper closes the body it was given
	}
	out := req.WithContext(req.Context())
	out.Header = req.Header.Clone()
	delete(out.Header, "Connection")
	delete(out.Header, "Upgrade")
	out.Header[UpgradeHeader] = []string{proto}
	out.ContentLength = -1
	out.GetBody = nil
	return out
}

// upgraded turns the agent's answer to an upgrade (200 with
// UpgradeHeader: its target answered 101) back into the 101 for
// ReverseProxy, whose body reads the target's bytes from the stream and
// writes the client's into the stream's request body.
func upgraded(res *http.Response, req *http.Request, sb *streamBody, pw *io.PipeWriter) {
	res.StatusCode = http.StatusSwitchingProtocols
	res.Status = "101 Switching Protocols"
	res.Header["Upgrade"] = res.Header[UpgradeHeader]
	res.Header["Connection"] = []string{"Upgrade"}
	delete(res.Header, UpgradeHeader)
	res.ContentLength = -1
	// The request as asked, with its Upgrade: forward accepts a 101 only
	// for a request that asked for one.
	res.Request = req
	res.Body = &duplexBody{streamBody: sb, pw: pw}
}

// duplexBody is an upgraded stream as the io.ReadWriteCloser
// ReverseProxy copies both ways: closing it ends the stream at both
// ends (RST_STREAM), which closes the agent's connection to its target.
type duplexBody struct {
	*streamBody
	pw *io.PipeWriter
}

func (b *duplexBody) Write(p []byte) (int, error) { return b.pw.Write(p) }

// CloseWrite ends the stream's request body: the client is done sending.
func (b *duplexBody) CloseWrite() error { return b.pw.Close() }

func (b *duplexBody) Close() error {
	b.pw.Close()
	return b.streamBody.Close()
}

func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return r.Header["Idempotency-Key"] != nil || r.Header["X-Idempotency-Key"] != nil
}

// unsent reports an http2 error that means the stream was never opened:
// the connection was closed or going away before the request took it
// (x/net/http2 exports no value for these).
func unsent(err error) bool {
	s := err.Error()
	return strings.Contains(s, "client conn not usable") || strings.Contains(s, "client conn is closed") ||
		strings.Contains(s, "received Server's graceful shutdown GOAWAY")
}

// streamBody ends a stream's accounting when the answer is read or
// closed, whichever comes first.
type streamBody struct {
	io.ReadCloser
	t    *tunnel
	v    *via
	once sync.Once
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.v.received.Add(float64(n))
	b.v.stats.received.Add(uint64(n))
	if err != nil {
		b.done()
	}
	return n, err
}

func (b *streamBody) Close() error {
	err := b.ReadCloser.Close()
	b.done()
	return err
}

func (b *streamBody) done() {
	b.once.Do(func() {
		b.t.inflight.Add(-1)
		b.v.streams.Dec()
	})
}

type countingBody struct {
	io.ReadCloser
	n     prometheus.Counter
	total *atomic.Uint64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(float64(n))
	b.total.Add(uint64(n))
	return n, err
}
