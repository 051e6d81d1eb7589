package delivery

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// Backend is a durable delivery queue as a state driver keeps it: Queue
// (this file) in the embedded driver's bbolt file, streams.Queue in Redis
// Streams shared by replicas. The gateway enqueues into it (its Enqueuer)
// and the Worker delivers from it (Source); SetPolicies hands it a
// reloaded config's async routes. The two differ in what else they keep
// (docs/delivery.md, "Where the queue lives"): only Queue has a history
// for the operator (Ops).
type Backend interface {
	Enqueue(ctx context.Context, d *Delivery) (id string, duplicate bool, err error)
	Source
	SetPolicies(map[string]Policy)
}

var _ Backend = (*Queue)(nil)

// Buckets of the queue in the shared state file. Records hold everything
// but the body, so List and the worker's scan never read bodies they do
// not need.
var (
	recordBucket  = []byte("delivery.record")  // id → JSON Delivery without Body
	bodyBucket    = []byte("delivery.body")    // id → raw body
	pendingBucket = []byte("delivery.pending") // route NUL id → "" (scan order = delivery order)
	keyBucket     = []byte("delivery.key")     // route NUL key → id
	metaBucket    = []byte("delivery.meta")    // "counts" → 3 × uint64
	countsKey     = []byte("counts")
)

// Options tune a Queue. The zero value is ready to use.
type Options struct {
	Clock Clock // nil: SystemClock; stamps ids, AcceptedAt and replays
	// NoGroupCommit gives every Enqueue its own transaction and fsync.
	// Only for comparison (BenchmarkEnqueue): group commit is strictly
	// better under concurrency and costs a lone caller nothing.
	NoGroupCommit bool
}

// Queue is the durable delivery queue on a bbolt file. It is safe for
// concurrent use. Create it with Open.
type Queue struct {
	db     *bbolt.DB
	clock  Clock
	ids    idGen
	group  group
	notify chan struct{} // a delivery became due: wake the worker
}

// Open creates the queue's buckets in db if needed. The caller keeps
// ownership of db and closes it after the last use of the Queue.
func Open(db *bbolt.DB, opts Options) (*Queue, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{recordBucket, bodyBucket, pendingBucket, keyBucket, metaBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open delivery queue: %w", err)
	}
	q := &Queue{db: db, clock: opts.Clock, notify: make(chan struct{}, 1)}
	if q.clock == nil {
		q.clock = SystemClock
	}
	q.group = group{db: db, solo: opts.NoGroupCommit}
	return q, nil
}

// SetPolicies implements Backend. The file queue keeps no per-route
// state (every route's deliveries share its buckets, and the Worker
// applies the policies), so there is nothing to change.
func (q *Queue) SetPolicies(map[string]Policy) {}

// Wake implements Source.
func (q *Queue) Wake() <-chan struct{} { return q.notify }

func (q *Queue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// Enqueue stores d as a new pending delivery and returns once it is on
// disk (fsync'd). It fills d's ID, State, AcceptedAt, NextAt and BodyBytes.
// If d.Key matches the key of a delivery of the same route still in the
// queue, nothing is stored and that delivery's id comes back with
// duplicate = true. Concurrent calls share one commit (group commit).
func (q *Queue) Enqueue(ctx context.Context, d *Delivery) (id string, duplicate bool, err error) {
	return q.EnqueueGroup(ctx, []*Delivery{d})
}

// EnqueueGroup stores the deliveries of one request that fans out to
// several targets, all in one commit: after a crash either every target
// has its delivery or none (and the sender got no 202). Their ids are
// consecutive; the first is the request's (Delivery.Request of each) and
// is returned. The idempotency key is the first delivery's: a duplicate
// request stores nothing and gets the first id again.
func (q *Queue) EnqueueGroup(_ context.Context, ds []*Delivery) (id string, duplicate bool, err error) {
	if len(ds) == 0 {
		return "", false, fmt.Errorf("enqueue: %w: no delivery", ErrInvalid)
	}
	for _, d := range ds {
		if err := validate(d); err != nil {
			return "", false, fmt.Errorf("enqueue: %w", err)
		}
	}
	ids := make([]string, len(ds))
	var now time.Time
	err = q.group.do(func() {
		// Under the group's lock: ids follow commit order, so the order
		// of ids is the order of acceptance.
		now = q.clock.Now()
		for i := range ids {
			ids[i] = q.ids.next(now)
		}
	}, func(tx *bbolt.Tx) error {
		// May run twice (see group): compute every output afresh.
		id, duplicate = ids[0], false
		first := ds[0]
		var kk []byte
		if first.Key != "" {
			kk = routeKey(first.Route, first.Key)
			if v := tx.Bucket(keyBucket).Get(kk); v != nil {
				id, duplicate = string(v), true
				return nil
			}
		}
		for i, d := range ds {
			rec := *d
			rec.ID, rec.State, rec.AcceptedAt, rec.NextAt = ids[i], Pending, now, now
			rec.ReplayedAt, rec.DoneAt, rec.Attempts, rec.Targets = time.Time{}, time.Time{}, nil, nil
			rec.Body, rec.BodyBytes = nil, len(d.Body)
			if len(ds) > 1 {
				rec.Request = ids[0]
			}
			if err := putRecord(tx, &rec); err != nil {
				return err
			}
			if i == 0 {
				// One body for the whole request: every target's
				// delivery reads it under the request's id (bodyKey).
				if err := tx.Bucket(bodyBucket).Put([]byte(ids[0]), d.Body); err != nil {
					return err
				}
			}
			if err := tx.Bucket(pendingBucket).Put(routeKey(d.Route, ids[i]), pendingValue(&rec)); err != nil {
				return err
			}
		}
		if kk != nil {
			if err := tx.Bucket(keyBucket).Put(kk, []byte(ids[0])); err != nil {
				return err
			}
		}
		return addCounts(tx, len(ds), 0, 0)
	})
	if err != nil {
		return "", false, fmt.Errorf("enqueue: %w", err)
	}
	if !duplicate {
		for i, d := range ds {
			d.ID, d.State, d.AcceptedAt, d.NextAt, d.BodyBytes = ids[i], Pending, now, now, len(d.Body)
			if len(ds) > 1 {
				d.Request = ids[0]
			}
		}
		q.wake()
	}
	return id, duplicate, nil
}

// pendingValue is a delivery's value in the pending index: empty when its
// lane is not ordered, else a flag byte (orderedFlag, or coalesceFlag for
// coalesce: latest) and the order key, so that Due schedules by key
// without reading records.
func pendingValue(d *Delivery) []byte {
	if !d.Ordered {
		return nil
	}
	f := orderedFlag
	if d.Coalesce {
		f = coalesceFlag
	}
	return append([]byte{f}, d.OrderKey...)
}

const (
	orderedFlag  byte = 'o'
	coalesceFlag byte = 'c'
)

func routeKey(route, s string) []byte {
	k := make([]byte, 0, len(route)+1+len(s))
	return append(append(append(k, route...), 0), s...)
}

func putRecord(tx *bbolt.Tx, d *Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return tx.Bucket(recordBucket).Put([]byte(d.ID), v)
}

// getRecord decodes a record (decoding copies: bbolt's bytes die with the
// transaction).
func getRecord(tx *bbolt.Tx, id string) (*Delivery, error) {
	v := tx.Bucket(recordBucket).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	d := new(Delivery)
	if err := json.Unmarshal(v, d); err != nil {
		return nil, fmt.Errorf("delivery %s: corrupt record: %w", id, err)
	}
	return d, nil
}

func addCounts(tx *bbolt.Tx, pending, delivered, dead int) error {
	return addCounts4(tx, [4]int{pending, delivered, dead, 0})
}

// addCounts4 adds to the counts of pending, delivered, dead and
// coalesced deliveries.
func addCounts4(tx *bbolt.Tx, d [4]int) error {
	b := tx.Bucket(metaBucket)
	c := decodeCounts(b.Get(countsKey))
	c.Pending += d[0]
	c.Delivered += d[1]
	c.Dead += d[2]
	c.Coalesced += d[3]
	v := make([]byte, 32)
	binary.BigEndian.PutUint64(v[0:], uint64(c.Pending))
	binary.BigEndian.PutUint64(v[8:], uint64(c.Delivered))
	binary.BigEndian.PutUint64(v[16:], uint64(c.Dead))
	binary.BigEndian.PutUint64(v[24:], uint64(c.Coalesced))
	return b.Put(countsKey, v)
}

// decodeCounts reads the counts: 24 bytes from before the coalesced
// state existed, 32 since.
func decodeCounts(v []byte) Counts {
	if len(v) != 24 && len(v) != 32 {
		return Counts{}
	}
	c := Counts{
		Pending:   int(binary.BigEndian.Uint64(v[0:])),
		Delivered: int(binary.BigEndian.Uint64(v[8:])),
		Dead:      int(binary.BigEndian.Uint64(v[16:])),
	}
	if len(v) == 32 {
		c.Coalesced = int(binary.BigEndian.Uint64(v[24:]))
	}
	return c
}

// countDelta is the change in Counts when a delivery moves from one state
// to another ("" = does not exist).
func countDelta(tx *bbolt.Tx, from, to State) error {
	var c [4]int
	idx := map[State]int{Pending: 0, Delivered: 1, Dead: 2, Coalesced: 3}
	if i, ok := idx[from]; ok {
		c[i]--
	}
	if i, ok := idx[to]; ok {
		c[i]++
	}
	return addCounts4(tx, c)
}

// Counts implements Ops: one key read, cheap enough for every scrape.
func (q *Queue) Counts() (Counts, error) {
	var c Counts
	err := q.db.View(func(tx *bbolt.Tx) error {
		c = decodeCounts(tx.Bucket(metaBucket).Get(countsKey))
		return nil
	})
	return c, err
}

// Get implements Ops.
func (q *Queue) Get(id string) (*Delivery, error) {
	if !validID(id) {
		return nil, fmt.Errorf("get %q: %w: not a delivery id", id, ErrInvalid)
	}
	var d *Delivery
	err := q.db.View(func(tx *bbolt.Tx) error {
		var err error
		if d, err = getRecord(tx, id); err != nil {
			return err
		}
		d.Body = bytes.Clone(tx.Bucket(bodyBucket).Get(bodyKey(d)))
		if d.Request != "" {
			d.Targets, err = targets(tx, d.Request)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", id, err)
	}
	return d, nil
}

// List implements Ops.
func (q *Queue) List(f Filter) ([]*Delivery, error) {
	if f.State != "" {
		if _, err := ParseState(string(f.State)); err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
	}
	var out []*Delivery
	err := q.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(recordBucket).Cursor()
		var k, v []byte
		if f.Before != "" {
			c.Seek([]byte(f.Before))
			k, v = c.Prev()
		} else {
			k, v = c.Last()
		}
		var floor []byte
		if !f.Since.IsZero() {
			floor = []byte(idFloor(f.Since))
		}
		for ; k != nil && len(out) < f.limit(); k, v = c.Prev() {
			if floor != nil && bytes.Compare(k, floor) < 0 {
				break
			}
			d := new(Delivery)
			if err := json.Unmarshal(v, d); err != nil {
				return fmt.Errorf("delivery %s: corrupt record: %w", k, err)
			}
			if f.match(d) {
				out = append(out, d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return out, nil
}

// Replay implements Ops.
func (q *Queue) Replay(id string) error {
	if !validID(id) {
		return fmt.Errorf("replay %q: %w: not a delivery id", id, ErrInvalid)
	}
	err := q.db.Update(func(tx *bbolt.Tx) error {
		d, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		return replayLocked(tx, d, q.clock.Now())
	})
	if err != nil {
		return fmt.Errorf("replay %s: %w", id, err)
	}
	q.wake()
	return nil
}

func replayLocked(tx *bbolt.Tx, d *Delivery, now time.Time) error {
	if d.State == Pending {
		return nil
	}
	from := d.State
	d.State, d.ReplayedAt, d.NextAt, d.DoneAt = Pending, now, now, time.Time{}
	if err := putRecord(tx, d); err != nil {
		return err
	}
	if err := tx.Bucket(pendingBucket).Put(routeKey(d.Route, d.ID), pendingValue(d)); err != nil {
		return err
	}
	return countDelta(tx, from, Pending)
}

// ReplayDead implements Ops.
func (q *Queue) ReplayDead(since time.Time) (int, error) {
	n := 0
	err := q.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		now := q.clock.Now()
		return q.scan(tx, func(d *Delivery) error {
			if d.State != Dead || d.DoneAt.Before(since) {
				return nil
			}
			n++
			return replayLocked(tx, d, now)
		})
	})
	if err != nil {
		return 0, fmt.Errorf("replay dead: %w", err)
	}
	if n > 0 {
		q.wake()
	}
	return n, nil
}

// scan calls fn for every record, oldest first. fn may write to the
// record's own keys (bbolt allows Put on the key under the cursor).
func (q *Queue) scan(tx *bbolt.Tx, fn func(*Delivery) error) error {
	var ids []string
	if err := tx.Bucket(recordBucket).ForEach(func(k, _ []byte) error {
		ids = append(ids, string(k))
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		d, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// Purge implements Ops.
func (q *Queue) Purge(state State, olderThan time.Time) (int, error) {
	if state != Delivered && state != Dead && state != Coalesced {
		return 0, fmt.Errorf("purge: %w: only delivered, dead or coalesced deliveries can be purged, not %q", ErrInvalid, state)
	}
	n := 0
	err := q.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		return q.scan(tx, func(d *Delivery) error {
			if d.State != state || !d.DoneAt.Before(olderThan) {
				return nil
			}
			n++
			id := []byte(d.ID)
			if d.Key != "" {
				kb := tx.Bucket(keyBucket)
				if kk := routeKey(d.Route, d.Key); bytes.Equal(kb.Get(kk), id) {
					if err := kb.Delete(kk); err != nil {
						return err
					}
				}
			}
			if err := tx.Bucket(recordBucket).Delete(id); err != nil {
				return err
			}
			if d.Request == "" || len(mustTargets(tx, d.Request)) == 0 {
				// The last delivery of its request: the body goes too.
				if err := tx.Bucket(bodyBucket).Delete(bodyKey(d)); err != nil {
					return err
				}
			}
			return countDelta(tx, state, "")
		})
	})
	if err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	return n, nil
}

// Due implements Source: the deliveries the worker may start at now, with
// bodies. For each route, of its window(route) oldest pending deliveries,
// those not busy (already in flight) whose NextAt has come, in acceptance
// order. next is the earliest NextAt among the window's others (zero if
// none): when to look again.
//
// An ordered lane (order_by) is scheduled by key instead (dueOrdered):
// each key's oldest delivery is its head and the only one that may be in
// flight, and window(route) bounds the keys in flight. On a coalescing
// lane Due also records as Coalesced every never-attempted delivery that
// a newer one of its key supersedes, before the head is chosen.
func (q *Queue) Due(_ context.Context, now time.Time, window func(route string) int, busy func(id string) bool) (ready []*Delivery, next time.Time, err error) {
	var coalesce []string
	err = q.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(pendingBucket).Cursor()
		bodies := tx.Bucket(bodyBucket)
		k, v := c.First()
		for k != nil {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("corrupt pending index key %q", k)
			}
			route := string(k[:i])
			prefix := k[: i+1 : i+1]
			limit := max(window(route), 1)
			if len(v) > 0 {
				r, n, co, err := dueOrdered(tx, c, k, v, prefix, now, limit, busy)
				if err != nil {
					return err
				}
				ready, coalesce = append(ready, r...), append(coalesce, co...)
				if !n.IsZero() && (next.IsZero() || n.Before(next)) {
					next = n
				}
				k, v = c.Seek(append([]byte(route), 1))
				continue
			}
			for seen := 0; k != nil && bytes.HasPrefix(k, prefix) && seen < limit; k, _ = c.Next() {
				seen++
				id := string(k[i+1:])
				if busy(id) {
					continue
				}
				d, err := getRecord(tx, id)
				if err != nil {
					return err
				}
				if d.NextAt.After(now) {
					if next.IsZero() || d.NextAt.Before(next) {
						next = d.NextAt
					}
					continue
				}
				d.Body = bytes.Clone(bodies.Get(bodyKey(d)))
				ready = append(ready, d)
			}
			// Skip the rest of this route: keys of the next route sort
			// after route + "\x01".
			k, v = c.Seek(append([]byte(route), 1))
		}
		return nil
	})
	if err == nil && len(coalesce) > 0 {
		err = q.markCoalesced(coalesce, now)
	}
	return ready, next, err
}

// maxOrderedScan bounds the pending deliveries of one ordered lane that
// one scheduling pass reads: keys whose first delivery lies beyond wait
// for the ones before to be delivered.
const maxOrderedScan = 10000

// dueOrdered schedules one ordered lane, whose first pending index entry
// is k, v. It returns the heads to start, the earliest NextAt of the
// heads not due, and the ids to record as coalesced.
func dueOrdered(tx *bbolt.Tx, c *bbolt.Cursor, k, v, prefix []byte, now time.Time, limit int, busy func(string) bool) (ready []*Delivery, next time.Time, coalesce []string, err error) {
	type entry struct {
		id       string
		coalesce bool
	}
	var order []string // keys in the order of their oldest delivery
	runs := map[string][]entry{}
	for n := 0; k != nil && bytes.HasPrefix(k, prefix) && n < maxOrderedScan; k, v = c.Next() {
		n++
		key, co := "", false
		if len(v) > 0 {
			key, co = string(v[1:]), v[0] == coalesceFlag
		}
		if _, ok := runs[key]; !ok {
			order = append(order, key)
		}
		runs[key] = append(runs[key], entry{string(k[len(prefix):]), co})
	}
	type head struct {
		d    *Delivery
		busy bool
	}
	var heads []head
	inFlight := 0
	for _, key := range order {
		run := runs[key]
		// The head is the oldest delivery not coalesced. On a coalescing
		// key every never-attempted delivery but the newest is coalesced,
		// also behind a head that is being retried.
		var h *head
		for j, e := range run {
			if busy(e.id) {
				// Only a head is ever started, so a busy one is this
				// key's head, and the key waits for it.
				if h == nil {
					h = &head{busy: true}
				}
				continue
			}
			if h != nil && !e.coalesce {
				break
			}
			d, err := getRecord(tx, e.id)
			if err != nil {
				return nil, time.Time{}, nil, err
			}
			if e.coalesce && j < len(run)-1 && coalescible(d) {
				coalesce = append(coalesce, e.id)
				continue
			}
			if h == nil {
				h = &head{d: d}
			}
		}
		if h == nil {
			continue
		}
		if h.busy {
			inFlight++
			continue
		}
		heads = append(heads, *h)
	}
	bodies := tx.Bucket(bodyBucket)
	for _, h := range heads {
		if h.d.NextAt.After(now) {
			if next.IsZero() || h.d.NextAt.Before(next) {
				next = h.d.NextAt
			}
			continue
		}
		if inFlight+len(ready) >= limit {
			break
		}
		h.d.Body = bytes.Clone(bodies.Get(bodyKey(h.d)))
		ready = append(ready, h.d)
	}
	return ready, next, coalesce, nil
}

// coalescible: never attempted and never replayed (an operator's replay
// asks for this very delivery).
func coalescible(d *Delivery) bool { return len(d.Attempts) == 0 && d.ReplayedAt.IsZero() }

// markCoalesced records ids as Coalesced, each only if it is still
// pending and never attempted (a replay or purge may have come between).
func (q *Queue) markCoalesced(ids []string, now time.Time) error {
	return q.db.Update(func(tx *bbolt.Tx) error {
		for _, id := range ids {
			d, err := getRecord(tx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if d.State != Pending || !coalescible(d) {
				continue
			}
			d.State, d.NextAt, d.DoneAt = Coalesced, time.Time{}, now
			if err := putRecord(tx, d); err != nil {
				return err
			}
			if err := tx.Bucket(pendingBucket).Delete(routeKey(d.Route, id)); err != nil {
				return err
			}
			if err := countDelta(tx, Pending, Coalesced); err != nil {
				return err
			}
		}
		return nil
	})
}

// Finish implements Source: it records one attempt and moves the delivery
// to state (at next if still pending), durably.
func (q *Queue) Finish(_ context.Context, sent *Delivery, a Attempt, state State, next time.Time) error {
	id := sent.ID
	return q.db.Update(func(tx *bbolt.Tx) error {
		d, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if d.State != Pending {
			return ErrNotPending
		}
		d.Attempts = append(d.Attempts, a)
		d.State = state
		if state == Pending {
			d.NextAt = next
			return putRecord(tx, d)
		}
		d.NextAt, d.DoneAt = time.Time{}, a.At.Add(a.Duration)
		if err := putRecord(tx, d); err != nil {
			return err
		}
		if err := tx.Bucket(pendingBucket).Delete(routeKey(d.Route, id)); err != nil {
			return err
		}
		return countDelta(tx, Pending, state)
	})
}

// targets lists the deliveries of one fanned-out request: their ids are
// consecutive from the request's own (EnqueueGroup), so they are read in
// one cursor walk.
func targets(tx *bbolt.Tx, request string) ([]TargetState, error) {
	var out []TargetState
	c := tx.Bucket(recordBucket).Cursor()
	for k, v := c.Seek([]byte(request)); k != nil && len(out) < 64; k, v = c.Next() {
		var d Delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return nil, fmt.Errorf("delivery %s: corrupt record: %w", k, err)
		}
		if d.Request != request {
			break
		}
		ts := TargetState{ID: d.ID, Route: d.Route, State: d.State, Attempts: len(d.Attempts)}
		if n := len(d.Attempts); n > 0 {
			ts.LastStatus = d.Attempts[n-1].Status
		}
		out = append(out, ts)
	}
	return out, nil
}

// bodyKey is where d's body is stored: under the request's id for a
// fanned-out request (one copy for all its targets), else its own.
func bodyKey(d *Delivery) []byte {
	if d.Request != "" {
		return []byte(d.Request)
	}
	return []byte(d.ID)
}

// mustTargets is targets, a corrupt record counting as present (so its
// request's body is kept).
func mustTargets(tx *bbolt.Tx, request string) []TargetState {
	ts, err := targets(tx, request)
	if err != nil {
		return []TargetState{{}}
	}
	return ts
}
