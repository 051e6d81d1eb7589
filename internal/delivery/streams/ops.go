package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/store/redis"
)

// Queue's delivery.Ops: what the console's deliveries pages read and do on
// the redis driver (docs/console.md). The streams hold less than the
// embedded queue's history, and the differences show:
//
//   - Pending deliveries are the routes' streams, dead ones their
//     dead-letter streams; delivered entries are deleted, so none is ever
//     listed and purging them removes nothing.
//   - A delivery's id is its entry's ID qualified by the stream it is in
//     (id.go): a dead letter has the dead stream's ID, and a replayed one
//     a new ID.
//   - Attempts are not recorded: a dead letter has none to show, and its
//     DoneAt is when it was moved to the dead stream.
var _ delivery.Ops = (*Queue)(nil)

func (q *Queue) routesFor(only string) ([]*route, []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var rs []*route
	var names []string
	for _, path := range q.order {
		if only == "" || only == path {
			rs, names = append(rs, q.routes[path]), append(names, path)
		}
	}
	return rs, names
}

// List implements delivery.Ops: newest first across routes and both
// streams; Before is a delivery id.
func (q *Queue) List(f delivery.Filter) ([]*delivery.Delivery, error) {
	if f.State != "" {
		if _, err := delivery.ParseState(string(f.State)); err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
	}
	// Entries are read below the entry after Before's, so that another
	// stream's entry with Before's entry ID is not skipped, then the ids
	// at or above Before are dropped.
	below := ""
	if f.Before != "" {
		entry, _, _, ok := parseID(f.Before)
		if !ok {
			return nil, fmt.Errorf("list: %w: before %q is not a delivery id", delivery.ErrInvalid, f.Before)
		}
		below = nextEntry(entry)
	}
	limit := int64(f.Limit)
	switch {
	case limit <= 0:
		limit = delivery.DefaultListLimit
	case limit > delivery.MaxListLimit:
		limit = delivery.MaxListLimit
	}
	ctx := context.Background()
	rs, names := q.routesFor(f.Route)
	var out []*delivery.Delivery
	for i, r := range rs {
		for _, dead := range []bool{false, true} {
			st := delivery.Pending
			if dead {
				st = delivery.Dead
			}
			if f.State != "" && f.State != st {
				continue
			}
			es, err := r.q.Entries(ctx, dead, below, f.Since, limit+1)
			if err != nil {
				return nil, fmt.Errorf("list: %w", err)
			}
			for _, e := range es {
				d, err := fromEntry(names[i], r.tag, e, st)
				if err != nil {
					return nil, err
				}
				if f.Before != "" && compareIDs(d.ID, f.Before) >= 0 {
					continue
				}
				d.Body = nil
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, func(a, b *delivery.Delivery) int { return compareIDs(b.ID, a.ID) })
	if int64(len(out)) > limit {
		out = out[:limit]
	}
	return out, nil
}

// fromEntry rebuilds the delivery an entry of route's (tag's) stream or
// dead-letter stream holds.
func fromEntry(route, tag string, e redis.Entry, st delivery.State) (*delivery.Delivery, error) {
	var rec record
	if err := json.Unmarshal(e.Body, &rec); err != nil {
		return nil, fmt.Errorf("route %s: entry %s: %w", route, e.ID, err)
	}
	d := &delivery.Delivery{ID: publicID(e.ID, st == delivery.Dead, tag), Route: rec.Route, Method: rec.Method, URL: rec.URL, Header: rec.Header,
		Body: rec.Body, BodyBytes: len(rec.Body), Key: e.Key, State: st, AcceptedAt: rec.AcceptedAt}
	if d.Route == "" {
		d.Route = route
	}
	if st == delivery.Dead {
		d.DoneAt = e.Time()
	}
	return d, nil
}

// Get implements delivery.Ops.
func (q *Queue) Get(id string) (*delivery.Delivery, error) {
	entry, dead, tag, ok := parseID(id)
	if !ok {
		return nil, fmt.Errorf("get %q: %w: not a delivery id", id, delivery.ErrInvalid)
	}
	q.mu.Lock()
	path := q.byTag[tag]
	r := q.routes[path]
	q.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("get %s: %w", id, delivery.ErrNotFound)
	}
	e, found, err := r.q.Entry(context.Background(), dead, entry)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", id, err)
	}
	if !found {
		return nil, fmt.Errorf("get %s: %w", id, delivery.ErrNotFound)
	}
	st := delivery.Pending
	if dead {
		st = delivery.Dead
	}
	return fromEntry(path, tag, e, st)
}

// Replay implements delivery.Ops: a dead letter goes back to its route's
// stream, as a new entry; a pending one is left as it is.
func (q *Queue) Replay(id string) error {
	d, err := q.Get(id)
	if err != nil {
		return err
	}
	if d.State != delivery.Dead {
		return nil
	}
	r, err := q.route(d.Route)
	if err != nil {
		return err
	}
	entry, _, _, _ := parseID(id)
	ids, err := r.q.Revive(context.Background(), entry)
	if err != nil {
		return fmt.Errorf("replay %s: %w", id, err)
	}
	if len(ids) != 1 || ids[0] == "" {
		return fmt.Errorf("replay %s: %w", id, delivery.ErrNotFound)
	}
	q.poke()
	return nil
}

// ReplayDead implements delivery.Ops: every route's dead letters that
// died at or after since.
func (q *Queue) ReplayDead(since time.Time) (int, error) {
	ctx := context.Background()
	rs, _ := q.routesFor("")
	n := 0
	for _, r := range rs {
		for {
			es, err := r.q.Entries(ctx, true, "", since, delivery.MaxListLimit)
			if err != nil {
				return n, fmt.Errorf("replay dead: %w", err)
			}
			if len(es) == 0 {
				break
			}
			ids := make([]string, len(es))
			for i, e := range es {
				ids[i] = e.ID
			}
			if _, err := r.q.Revive(ctx, ids...); err != nil {
				return n, fmt.Errorf("replay dead: %w", err)
			}
			n += len(ids)
		}
	}
	if n > 0 {
		q.poke()
	}
	return n, nil
}

// Purge implements delivery.Ops: dead letters older than olderThan are
// trimmed; delivered entries are already gone (0).
func (q *Queue) Purge(state delivery.State, olderThan time.Time) (int, error) {
	switch state {
	case delivery.Delivered:
		return 0, nil
	case delivery.Dead:
	default:
		return 0, fmt.Errorf("purge: %w: only delivered or dead deliveries are purged", delivery.ErrInvalid)
	}
	rs, _ := q.routesFor("")
	n := 0
	for _, r := range rs {
		m, err := r.q.TrimDead(context.Background(), olderThan)
		if err != nil {
			return n, fmt.Errorf("purge: %w", err)
		}
		n += int(m)
	}
	return n, nil
}

// poke wakes this process's worker: a replayed delivery is due now.
func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
