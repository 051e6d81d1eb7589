package gateway

import (
	"errors"
	"net/netip"
	"time"

	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/tracing"
)

// The request's spans (docs/tracing.md). Every function here runs only
// when Deps.Tracer is set: ServeHTTP tests c.trace (or g.tracer) first, so
// tracing off adds a nil check and nothing else.

// startTrace begins the request's server span. A client's traceparent is
// continued only from a trusted proxy (client_ip.trusted_proxies);
// anyone else's starts a new trace, and the target receives the
// gateway's traceparent instead of theirs.
func (g *Gateway) startTrace(c *call) {
	trusted := false
	if ap, err := netip.ParseAddrPort(c.r.RemoteAddr); err == nil {
		trusted = g.clientIP.Trusted(ap.Addr())
	} else if a, err := netip.ParseAddr(c.r.RemoteAddr); err == nil {
		trusted = g.clientIP.Trusted(a)
	}
	c.trace = g.tracer.Start(c.r, trusted, c.start)
}

// traceStep records a guard step that decided (a skipped step has no
// span): its rule and outcome, "allow" or the rejection's outcome.
func (g *Gateway) traceStep(c *call, name string, v verdict, t0 time.Time) {
	outcome, rule := "allow", ""
	if v.reason != pass {
		outcome = string(g.replies[v.reason].outcome)
		rule = c.rule
		if c.hasDecision {
			rule = "resource_policy: " + c.decision.String()
		}
	}
	c.trace.Step(name, rule, outcome, t0, time.Now())
}

// upstreamTrace is the span of the exchange with the target.
type upstreamTrace struct {
	span  *tracing.Child
	fwd   forward.Trace // what the forwarder sends and measures
	ended bool
}

// errAborted ends the upstream span of an answer the client stopped
// reading (Forward panicked with http.ErrAbortHandler).
var errAborted = errors.New("answer aborted: the client went away or the target's body failed")

// abandon ends the span if end did not: the exchange was cut short.
func (u *upstreamTrace) abandon(c *call) {
	if !u.ended {
		u.ended = true
		t := u.fwd.Timing
		u.span.EndUpstream(tracing.Timing{Reused: t.Reused, DialStart: t.DialStart, DialEnd: t.DialEnd, FirstByte: t.FirstByte}, c.w.status, "aborted", errAborted)
	}
}

// traceUpstream begins the exchange's span; the target receives its
// traceparent.
func (g *Gateway) traceUpstream(c *call, fr *forward.Request) *upstreamTrace {
	u := &upstreamTrace{span: c.trace.Upstream(c.r.Method, c.route.fwd.TargetURL(c.rest, c.r.URL))}
	u.fwd.Parent, u.fwd.State = u.span.TraceParent(), u.span.TraceState()
	fr.Trace = &u.fwd
	return u
}

func (u *upstreamTrace) end(c *call, err error) {
	u.ended = true
	errType := ""
	if err != nil {
		errType = string(metrics.UpstreamError)
		if fe, ok := err.(*forward.Error); ok {
			switch fe.Kind {
			case forward.Timeout:
				errType = string(metrics.UpstreamTimeout)
			case forward.Denied:
				errType = string(metrics.EgressDenied)
			}
		}
	}
	t := u.fwd.Timing
	u.span.EndUpstream(tracing.Timing{Reused: t.Reused, DialStart: t.DialStart, DialEnd: t.DialEnd, FirstByte: t.FirstByte}, c.w.status, errType, err)
}

// acceptTrace is the span of an async route's accept.
type acceptTrace struct {
	span *tracing.Child
	id   string
	dup  bool
}

// traceAccept begins the accept's span. Its traceparent is stored with
// the delivery: each attempt is a trace of its own, linked to it.
func (g *Gateway) traceAccept(c *call, fr *forward.Request) *acceptTrace {
	a := &acceptTrace{span: c.trace.Accept(c.route.label)}
	fr.Trace = &forward.Trace{Parent: a.span.TraceParent(), State: a.span.TraceState()}
	return a
}

func (a *acceptTrace) end(c *call) {
	var err error
	if c.status >= 500 || (c.status == 0 && c.w.status >= 500) {
		err = c.cause
	}
	a.span.EndAccept(a.id, a.dup, err)
}

// endTrace ends the request's span with its route template, status,
// client address and outcome.
func (g *Gateway) endTrace(c *call, end time.Time) {
	route := ""
	if c.route != nil {
		route = c.route.label
	}
	client := ""
	if c.client.IsValid() {
		client = c.client.String()
	}
	c.trace.End(c.r.Method, route, c.status, client, string(c.outcome), c.guard, end)
}
