package gateway

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// Explanation is what `drawbridge explain` prints: one line per step, in
// the order ServeHTTP runs them, and the answer the server would give.
type Explanation struct {
	// Lines are "STEP: allow|deny|skip — why".
	Lines []string
	// Status and Body are the error the gateway would answer with (204
	// and "" for a CORS preflight it answers), or 0 and "" when the
	// request would be forwarded.
	Status int
	Body   string
	// RetryAfter is the Retry-After header a 429 would carry ("" if none).
	RetryAfter string
	// Forward is "METHOD URL" of the request the target would receive,
	// when every step allows.
	Forward string
}

// Result is the explanation's last line: "result: STATUS BODY" or
// "result: forward METHOD URL".
func (e *Explanation) Result() string {
	if e.Status != 0 && e.Body == "" {
		return "result: " + strconv.Itoa(e.Status) // a CORS preflight's 204
	}
	if e.Status != 0 {
		return "result: " + strconv.Itoa(e.Status) + " " + e.Body
	}
	return "result: forward " + e.Forward
}

// Explain runs r through the same steps as ServeHTTP, in a dry call: state
// is read (tokens left, quota used, leases held), never consumed; nothing
// is written and the target is never called. body stands for the request
// body (for signatures); r.Body is not read.
func (g *Gateway) Explain(r *http.Request, body []byte) Explanation {
	var e Explanation
	line := func(name, word, why string) {
		e.Lines = append(e.Lines, name+": "+word+" — "+why)
	}
	c := &call{r: r, start: g.now(), dry: true, body: body}
	now := c.start
	if g.clock != nil {
		now = g.clock()
	}
	c.client = g.clientIP.ClientIP(r.RemoteAddr, r.Header["X-Forwarded-For"])

	escaped := r.URL.EscapedPath()
	preflight, routed := false, false
	if pathOK(escaped) {
		if g.cors && r.Method == http.MethodOptions {
			c.route, c.rest, routed = g.matchPreflight(r, escaped)
			preflight = c.route != nil
		}
		if !preflight {
			c.route, c.rest = g.router.match(r.Method, r.URL.Path, escaped)
		}
	}
	switch {
	case !pathOK(escaped):
		line("route", "deny", "path "+escaped+" is refused before routing (dot-segment, encoded / or \\, backslash, NUL or empty segment)")
	case c.route == nil:
		line("route", "deny", "no route serves "+r.Method+" "+r.URL.Path)
	default:
		line("route", "allow", r.Method+" "+r.URL.Path+" matches route "+c.route.cfg.Path+"; client "+addrString(c.client))
	}
	if c.route == nil {
		g.explainReject(&e, c, noRoute)
		return e
	}
	if preflight {
		// As ServeHTTP: a CORS preflight is answered before the guards.
		word := "allow"
		if _, ok := g.preflightAllowed(c, routed); !ok {
			word = "deny"
		}
		line("preflight", word, c.note)
		e.Status = http.StatusNoContent
		return e
	}
	for i := range g.steps {
		s := &g.steps[i]
		c.note = ""
		v := s.run(c, now)
		if s.note != nil {
			c.note = s.note(c, now)
		}
		switch {
		case v.reason != pass:
			line(s.name, "deny", c.note)
			g.explainReject(&e, c, v.reason)
			return e
		case v.skip:
			line(s.name, "skip", c.note)
		default:
			line(s.name, "allow", c.note)
		}
	}
	e.Forward = r.Method + " " + c.route.fwd.TargetURL(c.rest, r.URL)
	return e
}

func (g *Gateway) explainReject(e *Explanation, c *call, rs reason) {
	rp := &g.replies[rs]
	if c.reply != nil {
		rp = c.reply
	}
	e.Status, e.Body = rp.status, string(rp.body)
	if c.retryAfter > 0 {
		e.RetryAfter = strconv.Itoa(c.retryAfter)
	}
}

// KeyUsage is one API key's quota in the current period, as API
// Gateway's get-usage reports it.
type KeyUsage struct {
	Key, Plan   string
	Enabled     bool
	HasQuota    bool // false: the plan has no quota (Used etc. are zero)
	Period      string
	PeriodStart time.Time
	ResetAt     time.Time
	Used        int64
	Limit       int64 // effective limit this period (offset applied in the first)
	Remaining   int64
}

// Usage reads every configured key's quota counter at now, without
// counting, for `drawbridge keys usage`. Keys in no plan are listed with
// an empty Plan.
func (g *Gateway) Usage(ctx context.Context, now time.Time) ([]KeyUsage, error) {
	var out []KeyUsage
	for _, k := range g.keys {
		u := KeyUsage{Key: k.name, Enabled: k.enabled}
		if k.plan != nil {
			u.Plan = k.plan.name
			if q := k.plan.quota; q != nil {
				sq := q.At(now)
				res, err := g.store.Usage(ctx, k.quotaKey, sq)
				if err != nil {
					return nil, err
				}
				u.HasQuota, u.Period, u.PeriodStart, u.ResetAt = true, string(q.Unit), sq.Period, q.ResetAt(now)
				u.Used, u.Limit, u.Remaining = res.Used, res.Limit, res.Remaining()
			}
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
