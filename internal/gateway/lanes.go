package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// lane is one of a route's destinations (config.Lane): its target, or
// one entry of its targets.
type lane struct {
	name    string             // the deliveries' route: path, or path#target
	fwd     *forward.Forwarder // builds what the target receives
	match   *matcher           // nil: every request the route serves
	timeout time.Duration
	sign    *webhook.Signer // a sync route signs as it sends (an async one in the worker; built here to check it)
	// orderBy names the order key: a canonical header name, or a JSON path
	// when orderJSON.
	orderBy   string
	orderJSON bool
	orderSegs []string // orderBy split at '.', for a JSON path
	coalesce  bool
	accepted  prometheus.Counter // drawbridge_delivery_outcomes_total{route=name,state=accepted}
}

// buildLanes compiles rc's lanes; the first one's forwarder is the
// route's (a sync route has exactly one lane).
func buildLanes(cfg *config.Config, rc *config.Route, opts forward.Options, m *metrics.Metrics) ([]*lane, error) {
	cls := rc.Lanes()
	if len(cls) == 0 { // a config built in code, without Validate
		cls = []config.Lane{{Name: rc.Path, Timeout: rc.Timeout}}
	}
	var out []*lane
	for i := range cls {
		cl := &cls[i]
		target := rc.Target
		if cl.URL != nil {
			target = cl.URL.String()
		}
		fwd, err := forward.New(target, opts)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: route %s: %w", cfg.File, rc.Line, rc.Path, err)
		}
		l := &lane{name: cl.Name, fwd: fwd, timeout: time.Duration(cl.Timeout)}
		if cl.Target != nil {
			l.match = compileMatch(cl.Target.Match)
		}
		if s := cl.Sign; s != nil {
			l.sign, err = webhook.NewSigner(webhook.SignSpec{Scheme: s.Scheme, Secret: s.Secret,
				Header: s.Header, Algorithm: s.Algorithm, Encoding: s.Encoding, Prefix: s.Prefix})
			if err != nil {
				return nil, fmt.Errorf("%s:%d: route %s: %w", cfg.File, rc.Line, rc.Path, err)
			}
		}
		switch {
		case strings.HasPrefix(cl.OrderBy, config.OrderByHeader):
			l.orderBy = http.CanonicalHeaderKey(cl.OrderBy[len(config.OrderByHeader):])
		case strings.HasPrefix(cl.OrderBy, config.OrderByJSON):
			l.orderBy, l.orderJSON = cl.OrderBy[len(config.OrderByJSON):], true
			l.orderSegs = strings.Split(l.orderBy, ".")
		}
		l.coalesce = cl.Coalesce == config.CoalesceLatest
		if rc.Delivery != nil && rc.Delivery.Mode == config.DeliveryAsync {
			l.accepted = m.DeliveryOutcomes.WithLabelValues(l.name, "accepted")
		}
		out = append(out, l)
	}
	return out, nil
}

// orderKey is the delivery's order key on lane l ("" when the lane is not
// ordered). A request without the header or path gets the key "":
// such requests are ordered among themselves.
func (l *lane) orderKey(c *call) string {
	if l.orderBy == "" {
		return ""
	}
	if l.orderJSON {
		if !c.isJSON() {
			return ""
		}
		return jsonKey(c.body, l.orderSegs)
	}
	return firstValue(c.r.Header, l.orderBy)
}

// closeLanes releases the lanes' idle connections.
func (r *route) closeLanes() {
	for _, l := range r.routing.lanes[1:] {
		l.fwd.Close()
	}
}

// clockNow is the guards' clock: the injected one, else the real one.
func (g *Gateway) clockNow() time.Time {
	if g.clock != nil {
		return g.clock()
	}
	return time.Now()
}
