package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// Enqueuer persists an accepted async request durably before returning
// (delivery.Queue in the state file; streams.Queue on Redis). A duplicate
// key returns the first delivery's id.
type Enqueuer interface {
	Enqueue(ctx context.Context, d *delivery.Delivery) (id string, duplicate bool, err error)
}

// StateHealth is implemented by a store whose file can be lost under the
// running process (the embedded driver, bolt.Store): a file removed or
// replaced, so a commit no longer reaches what the next start reads
// (docs/hardening.md). Deps.Store is asked for it.
type StateHealth interface {
	// Healthy is nil while commits land in the file a restart reads.
	Healthy() error
	// Committed records a commit's outcome (for /readyz; a failure also
	// checks the file at once).
	Committed(err error)
}

// asyncRoute is what an async route (delivery.mode: async) needs at
// dispatch, compiled once.
type asyncRoute struct {
	queue    Enqueuer    // nil: answer 503 (check builds without one)
	idHeader string      // delivery.id_header, canonical; "" = provider's or defaults
	provider string      // verify.provider; its EventID names the event
	health   StateHealth // nil: the store cannot lose its file
	accepted [numMethods]prometheus.Counter
}

// defaultIDHeaders are tried in order when a route names no id_header and
// its provider yields no event id: GitHub's delivery GUID, GitLab's and
// the IETF draft's Idempotency-Key (same on retries), GitLab's event UUID,
// Standard Webhooks' webhook-id.
var defaultIDHeaders = []string{"X-Github-Delivery", "Idempotency-Key", "X-Gitlab-Event-Uuid", "Webhook-Id"}

var errNoQueue = errors.New("async route but no delivery queue is open")

// buildAsync compiles the async routes. Their targets were parsed with
// their forwarders, whose plan they store.
func buildAsync(routes []*route, deps Deps) map[*route]*asyncRoute {
	m := map[*route]*asyncRoute{}
	for _, r := range routes {
		if r.cfg.Delivery == nil || r.cfg.Delivery.Mode != config.DeliveryAsync {
			continue
		}
		a := &asyncRoute{queue: deps.Queue}
		a.health, _ = deps.Store.(StateHealth)
		if h := r.cfg.Delivery.IDHeader; h != "" {
			a.idHeader = textproto.CanonicalMIMEHeaderKey(h)
		}
		if r.cfg.Verify != nil {
			a.provider = r.cfg.Verify.Provider
		}
		for mi := range numMethods {
			if r.methods&(1<<mi) != 0 {
				a.accepted[mi] = deps.Metrics.Requests.WithLabelValues(r.label, methodNames[mi], string(metrics.Accepted))
			}
		}
		m[r] = a
	}
	return m
}

// accept is dispatch for an async route: persist the request as the
// target will receive it (the route forwarder's plan, the same as a sync
// route's), fsync, answer 202 with the delivery id (docs/delivery.md). A duplicate event gets the first delivery's id and is not
// stored again. A store failure is 503: the sender keeps the event and
// retries, which is better than a 202 for an event we may lose.
func (g *Gateway) accept(c *call, a *asyncRoute, fr *forward.Request) {
	g.idHeaders(c.w.Header(), c)
	var at *acceptTrace
	if c.trace != nil {
		at = g.traceAccept(c, fr)
		defer at.end(c)
	}
	if a.queue == nil {
		c.cause = errNoQueue
		g.reject(c, unavailable)
		return
	}
	if a.health != nil {
		if err := a.health.Healthy(); err != nil {
			c.cause = err
			g.reject(c, unavailable)
			return
		}
	}
	id, dup, err := g.enqueue(c, a, fr)
	if a.health != nil && !errors.Is(err, delivery.ErrInvalid) {
		a.health.Committed(err)
		if err == nil {
			// The file may have been lost since the check above: then
			// this commit may have missed the copy a restart reads.
			err = a.health.Healthy()
		}
	}
	if at != nil && err == nil {
		at.id, at.dup = id, dup
	}
	if err != nil {
		// Never fails open, whatever state.on_error says: a 202 promises
		// the event is stored.
		g.storeErrors.Inc()
		c.cause = err
		g.reject(c, unavailable)
		return
	}
	body := `{"message":"Accepted","id":"` + id + `"}`
	h := c.w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	c.w.WriteHeader(http.StatusAccepted)
	if c.r.Method != http.MethodHead {
		c.w.Write([]byte(body))
	}
	c.status, c.outcome = http.StatusAccepted, metrics.Accepted
	if ctr := a.accepted[methodIndex(c.r.Method)]; ctr != nil {
		ctr.Inc()
	}
	if dup {
		c.cause = fmt.Errorf("duplicate of delivery %s", id)
	}
}

// GroupEnqueuer stores the deliveries of one request to several targets
// in one commit (delivery.Queue). A queue without it (streams.Queue) gets
// them one by one, each deduplicated on its own lane, so a sender's retry
// after a partial failure completes the set.
type GroupEnqueuer interface {
	EnqueueGroup(ctx context.Context, ds []*delivery.Delivery) (id string, duplicate bool, err error)
}

// enqueue stores one delivery per lane the request goes to (match.go
// chose them), as each lane's target receives it (its forwarder's plan,
// the same as a sync route's). The id is the first delivery's: the one
// the 202 names.
func (g *Gateway) enqueue(c *call, a *asyncRoute, fr *forward.Request) (string, bool, error) {
	lanes := c.route.routing.lanes
	picked := c.match.targets
	if picked == 0 {
		picked = allLanes(len(lanes))
	}
	key := a.key(c.r.Header, c.body)
	var trace string
	if fr.Trace != nil {
		trace = fr.Trace.Parent // the accept span's, for the attempts' links
	}
	ds := make([]*delivery.Delivery, 0, len(lanes))
	for i, l := range lanes {
		if picked&(1<<i) == 0 {
			continue
		}
		p := l.fwd.Plan(c.r, fr)
		ds = append(ds, &delivery.Delivery{
			Route:    l.name,
			Method:   p.Method,
			URL:      p.URL.String(),
			Header:   p.Header, // shares the client's values: Enqueue serialises before the request ends
			Body:     c.body,
			Key:      key,
			OrderKey: l.orderKey(c),
			Ordered:  l.orderBy != "",
			Coalesce: l.coalesce,
			Via:      c.route.cfg.Via,
			Trace:    trace,
		})
	}
	ctx := c.r.Context()
	var id string
	var dup bool
	var err error
	switch gq, ok := a.queue.(GroupEnqueuer); {
	case len(ds) == 1:
		id, dup, err = a.queue.Enqueue(ctx, ds[0])
	case ok:
		id, dup, err = gq.EnqueueGroup(ctx, ds)
	default:
		for i, d := range ds {
			did, ddup, derr := a.queue.Enqueue(ctx, d)
			if derr != nil {
				return "", false, derr
			}
			if i == 0 {
				id, dup = did, ddup
			}
		}
	}
	if err == nil && !dup {
		for i, l := range lanes {
			if picked&(1<<i) != 0 && l.accepted != nil {
				l.accepted.Inc()
			}
		}
	}
	return id, dup, err
}

// key is the idempotency key: the route's id_header; else the verified
// provider's event id (for Stripe and Slack taken from the body, which the
// signature covers); else the first default id header present. An
// over-long key is replaced by its SHA-256, so it still dedupes.
func (a *asyncRoute) key(h http.Header, body []byte) string {
	var k string
	switch {
	case a.idHeader != "":
		k = firstValue(h, a.idHeader)
	case a.provider != "":
		k = webhook.EventID(a.provider, h, body)
	}
	if k == "" && a.idHeader == "" {
		for _, name := range defaultIDHeaders {
			if k = firstValue(h, name); k != "" {
				break
			}
		}
	}
	if len(k) > delivery.MaxKeyBytes {
		sum := sha256.Sum256([]byte(k))
		k = "sha256:" + hex.EncodeToString(sum[:])
	}
	return k
}

func firstValue(h http.Header, canonical string) string {
	if vs := h[canonical]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}
