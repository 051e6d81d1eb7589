// Package streams serves async routes from the redis driver's delivery
// queue, a Redis Stream per route that every replica shares: Queue is the
// gateway's Enqueuer and the delivery Worker's Source, so the worker's
// sending, egress check, retry policy and metrics are the same as on the
// embedded queue. What differs (docs/redis.md, "Async routes on Redis"):
//
//   - Any replica's worker may deliver what any replica accepted. An entry
//     is handed to one worker at a time (consumer group); one claimed by a
//     worker that died is taken over by another once it has been idle for
//     the route's attempt timeout plus TakeoverMargin, on the Redis clock.
//   - A failed attempt is retried when it has been idle that long again,
//     not on the policy's jittered backoff (a delayed set is not built);
//     max_attempts and max_age still end it in the dead-letter stream.
//   - The window (delivery.concurrency) is per replica, and a retried
//     entry does not hold back later ones: no in-order guarantee, except
//     on an ordered lane (order_by), whose stream holds only each key's
//     oldest entry (redis.Queue.EnqueueOrdered): one key's entries go one
//     at a time in order whichever replica delivers them.
//   - Delivered entries are deleted (Ack), so there is no history for
//     `drawbridge deliveries`; dead letters stay in the dead stream.
package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/store/redis"
)

// TakeoverMargin is added to a route's attempt timeout to make its
// MinIdle: an attempt can last the timeout, then its Ack needs one round
// trip (bounded by the driver's budget), so a live worker's entry is never
// taken over; a dead worker's entries wait at most this much longer.
const TakeoverMargin = 2 * time.Second

// Queue is the async routes' shared queue on one redis Store: the redis
// driver's delivery.Backend, beside delivery.Queue of the embedded one.
// It is safe for concurrent use.
type Queue struct {
	st       *redis.Store
	consumer string
	wake     chan struct{}

	mu     sync.Mutex
	routes map[string]*route // by route path
	byTag  map[string]string // route paths by routeTag
	order  []string          // route paths, sorted: Due's order
}

// route is one route's stream and what this process has claimed from it
// and not yet finished.
type route struct {
	q        *redis.Queue
	tag      string // routeTag of its path: its delivery ids' suffix
	inFlight int
}

// New makes the queue for the async routes of policies (delivery.Policies).
// It does not contact Redis. consumer names this process in the consumer
// group ("" = a random name).
func New(st *redis.Store, policies map[string]delivery.Policy, consumer string) *Queue {
	q := &Queue{st: st, consumer: consumer, wake: make(chan struct{}, 1), routes: map[string]*route{}}
	q.SetPolicies(policies)
	return q
}

// SetPolicies takes a reloaded config's routes and policies. A route no
// longer configured is no longer drained (its stream stays in Redis).
func (q *Queue) SetPolicies(p map[string]delivery.Policy) {
	q.mu.Lock()
	defer q.mu.Unlock()
	old := q.routes
	q.routes = make(map[string]*route, len(p))
	q.byTag = make(map[string]string, len(p))
	q.order = q.order[:0]
	for path, pol := range p {
		r := &route{tag: routeTag(path), q: q.st.Queue(path, redis.QueueOptions{
			Consumer:      q.consumer,
			MinIdle:       pol.Timeout + TakeoverMargin,
			MaxDeliveries: int64(pol.MaxAttempts),
			DedupeTTL:     pol.MaxAge,
		})}
		if o := old[path]; o != nil {
			r.inFlight = o.inFlight
		}
		q.routes[path] = r
		q.byTag[r.tag] = path
		q.order = append(q.order, path)
	}
	slices.Sort(q.order)
}

var _ delivery.Backend = (*Queue)(nil)

func (q *Queue) route(path string) (*route, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r := q.routes[path]; r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("%w: route %q is not an async route", delivery.ErrInvalid, path)
}

// record is what an entry's body holds: the delivery as accepted.
type record struct {
	Route      string              `json:"route"`
	Method     string              `json:"method"`
	URL        string              `json:"url"`
	Header     map[string][]string `json:"header"`
	Body       []byte              `json:"body"`
	AcceptedAt time.Time           `json:"accepted_at"`
	Via        string              `json:"via,omitempty"`
	Trace      string              `json:"trace,omitempty"` // the accepting span's traceparent; absent in older entries
}

// Enqueue implements gateway.Enqueuer: one round trip (XADD and the dedupe
// key in one script), durable as the server's appendfsync makes it. The
// id is the stream entry's, qualified (id.go); a duplicate key within the
// route returns the first entry's id.
func (q *Queue) Enqueue(ctx context.Context, d *delivery.Delivery) (id string, duplicate bool, err error) {
	r, err := q.route(d.Route)
	if err != nil {
		return "", false, fmt.Errorf("enqueue: %w", err)
	}
	now := time.Now()
	body, err := json.Marshal(record{d.Route, d.Method, d.URL, d.Header, d.Body, now, d.Via, d.Trace})
	if err != nil {
		return "", false, fmt.Errorf("enqueue: %w", err)
	}
	if d.Ordered {
		id, duplicate, err = r.q.EnqueueOrdered(ctx, d.Key, body, d.OrderKey, d.Coalesce)
	} else {
		id, duplicate, err = r.q.Enqueue(ctx, d.Key, body)
	}
	if err != nil {
		return "", false, err
	}
	id = publicID(id, false, r.tag)
	if !duplicate {
		d.ID, d.State, d.AcceptedAt, d.BodyBytes = id, delivery.Pending, now, len(d.Body)
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return id, duplicate, nil
}

// Due implements delivery.Source: for each route, up to window(route)
// minus what this process has in flight, claimed from the stream (entries
// a dead worker left first, then new ones). next is always zero: the
// worker polls, since other replicas' enqueues wake nobody here.
func (q *Queue) Due(ctx context.Context, _ time.Time, window func(string) int, busy func(string) bool) ([]*delivery.Delivery, time.Time, error) {
	q.mu.Lock()
	order := slices.Clone(q.order)
	q.mu.Unlock()
	var ready []*delivery.Delivery
	var errs []error
	for _, path := range order {
		r, err := q.route(path)
		if err != nil {
			continue // removed by a reload meanwhile
		}
		q.mu.Lock()
		n := window(path) - r.inFlight
		q.mu.Unlock()
		if n <= 0 {
			continue
		}
		ms, err := r.q.Claim(ctx, int64(n))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var bad []string
		for _, m := range ms {
			if busy(publicID(m.ID, false, r.tag)) {
				continue
			}
			d, err := decode(m, r.tag)
			if err != nil {
				errs = append(errs, fmt.Errorf("route %s: entry %s: %w (dead-lettered)", path, m.ID, err))
				bad = append(bad, m.ID)
				continue
			}
			ready = append(ready, d)
			q.mu.Lock()
			r.inFlight++
			q.mu.Unlock()
		}
		if err := r.q.Bury(ctx, bad...); err != nil {
			errs = append(errs, err)
		}
	}
	return ready, time.Time{}, errors.Join(errs...)
}

// decode rebuilds a claimed entry of route tag's stream as its delivery.
// Its earlier hand-outs count as attempts, so the policy's max_attempts
// and max_age apply.
func decode(m redis.Message, tag string) (*delivery.Delivery, error) {
	var rec record
	if err := json.Unmarshal(m.Body, &rec); err != nil {
		return nil, err
	}
	d := &delivery.Delivery{
		ID: publicID(m.ID, false, tag), Route: rec.Route, Method: rec.Method, URL: rec.URL, Header: rec.Header,
		Body: rec.Body, BodyBytes: len(rec.Body), Key: m.Key, Trace: rec.Trace,
		State: delivery.Pending, AcceptedAt: rec.AcceptedAt, Via: rec.Via,
		OrderKey: m.OrderKey, Ordered: m.Ordered,
	}
	if m.RequestID != "" {
		d.Request = publicID(m.RequestID, false, tag)
	}
	for range max(m.Deliveries-1, 0) {
		d.Attempts = append(d.Attempts, delivery.Attempt{At: rec.AcceptedAt})
	}
	return d, nil
}

// Finish implements delivery.Source: delivered entries are acknowledged
// and deleted, dead ones moved to the dead-letter stream; a pending one is
// left claimed, and is handed out again once idle for MinIdle.
func (q *Queue) Finish(ctx context.Context, d *delivery.Delivery, _ delivery.Attempt, state delivery.State, _ time.Time) error {
	r, err := q.route(d.Route)
	if err != nil {
		return err
	}
	q.mu.Lock()
	r.inFlight = max(r.inFlight-1, 0)
	q.mu.Unlock()
	entry, _, _, ok := parseID(d.ID)
	if !ok {
		return fmt.Errorf("finish %s: %w: not a delivery id", d.ID, delivery.ErrInvalid)
	}
	switch state {
	case delivery.Delivered:
		return r.q.Ack(ctx, entry)
	case delivery.Dead:
		return r.q.Bury(ctx, entry)
	}
	return nil
}

// Counts implements delivery.Source: Pending is what the streams hold
// (queued or claimed) and what ordered lanes hold back behind their keys'
// heads, Dead the dead-letter streams, Coalesced what coalescing dropped;
// Delivered entries are deleted, so it is always 0.
func (q *Queue) Counts() (delivery.Counts, error) {
	q.mu.Lock()
	rs := make([]*route, 0, len(q.routes))
	for _, r := range q.routes {
		rs = append(rs, r)
	}
	q.mu.Unlock()
	var c delivery.Counts
	for _, r := range rs {
		p, d, err := r.q.Lengths(context.Background())
		if err != nil {
			return c, err
		}
		h, co, err := r.q.Coalesced(context.Background())
		if err != nil {
			return c, err
		}
		c.Pending += int(p + h)
		c.Dead += int(d)
		c.Coalesced += int(co)
	}
	return c, nil
}

// Wake implements delivery.Source.
func (q *Queue) Wake() <-chan struct{} { return q.wake }
