package gateway

import (
	"time"

	"github.com/drawbridge/drawbridge/internal/metrics"
)

// record hands the finished request to the console's recent view
// (metrics.Metrics.Recent), when there is one: the names it already
// logs, by value, so nothing is allocated on the request path.
func (g *Gateway) record(c *call, end time.Time, label string) {
	if g.recent == nil || c.dry {
		return
	}
	e := metrics.Event{At: end, Route: label, Method: c.r.Method, Outcome: c.outcome,
		Guard: c.guard, Client: c.client, Upstream: c.upstream}
	if c.key != nil {
		e.Key = c.key.name
	}
	g.recent.Record(e)
}
