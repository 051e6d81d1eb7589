package gateway

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/drawbridge/drawbridge/internal/accesslog"
)

// fields receives the access line's fields in order. accesslog.Line
// writes them straight into a buffer (serve's logger); slogFields
// collects them for any other slog handler (tests, embedding programs).
type fields interface {
	Str(k, v string)
	Safe(k, v string) // v needs no JSON escaping (accesslog.Line.Safe)
	Str2(k, a, b string)
	Int(k string, v int)
	Ms(k string, d time.Duration)
	Addr(k string, a netip.Addr)
}

// logRequest writes the access line, unless log.rejections leaves a
// refusal's out (rejectlog.go): the field list is written once, in
// logFields, whichever handler the logger has.
func (g *Gateway) logRequest(c *call, end time.Time, label string, d time.Duration) {
	ctx := c.r.Context()
	if g.access != nil {
		if !g.access.Enabled(ctx, slog.LevelInfo) || !g.fullLine(c, end) {
			return
		}
		l := g.access.Line(end, "request")
		c.logFields(l, label, d)
		l.Write()
		return
	}
	if !g.log.Enabled(ctx, slog.LevelInfo) || !g.fullLine(c, end) {
		return
	}
	f := make(slogFields, 0, 13)
	c.logFields(&f, label, d)
	g.log.LogAttrs(ctx, slog.LevelInfo, "request", f...)
}

// logFields names what happened to the request; never a secret (the key's
// name, not its value).
func (c *call) logFields(f fields, label string, d time.Duration) {
	// Safe: the id is ours (hex and '-'), an escaped path is printable
	// ASCII without '"' or '\\' (FuzzEscapedPathIsSafe), outcomes and
	// guards are names from fixed sets. The rest can hold anything.
	f.Safe("request_id", c.id)
	f.Str("method", c.r.Method)
	f.Safe("path", c.path)
	f.Str("route", label)
	f.Int("status", c.status)
	f.Safe("outcome", string(c.outcome))
	f.Addr("client_ip", c.client)
	f.Ms("duration_ms", d)
	if c.upstream > 0 {
		f.Ms("upstream_ms", c.upstream)
	}
	if c.guard != "" {
		f.Safe("guard", c.guard)
	}
	if c.hasDecision {
		f.Str2("rule", "resource_policy: ", c.decision.String())
	} else if c.rule != "" {
		f.Str("rule", c.rule)
	}
	if c.key != nil {
		f.Str("api_key", c.key.name) // the name, never the value
	}
	if c.cause != nil {
		f.Str("reason", c.cause.Error())
	}
	if c.trace != nil {
		if tid, sid := c.trace.IDs(); tid != "" {
			f.Safe("trace_id", tid) // hex
			f.Safe("span_id", sid)
		}
	}
}

// accessHandler is the logger's handler when it has the access-line fast
// path (serve's and lambda's logger), else nil.
func accessHandler(l *slog.Logger) *accesslog.Handler {
	h, _ := l.Handler().(*accesslog.Handler)
	return h
}

type slogFields []slog.Attr

func (s *slogFields) Str(k, v string)     { *s = append(*s, slog.String(k, v)) }
func (s *slogFields) Safe(k, v string)    { s.Str(k, v) }
func (s *slogFields) Str2(k, a, b string) { *s = append(*s, slog.String(k, a+b)) }
func (s *slogFields) Int(k string, v int) { *s = append(*s, slog.Int(k, v)) }
func (s *slogFields) Ms(k string, d time.Duration) {
	*s = append(*s, slog.Float64(k, float64(d.Microseconds())/1000))
}
func (s *slogFields) Addr(k string, a netip.Addr) {
	*s = append(*s, slog.String(k, addrString(a)))
}
