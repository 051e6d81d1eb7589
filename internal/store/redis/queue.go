package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
)

// Queue is a durable delivery queue on a Redis Stream with one consumer
// group, shared by every replica: any replica may enqueue, any replica's
// worker may deliver, and the entries a dead worker had claimed are taken
// over by another after MinIdle (XAUTOCLAIM). Delivery is at least once:
// with healthy workers each entry is handed to exactly one worker; an entry
// whose worker died after delivering but before Ack is delivered again, so
// duplicates are bounded by the entries in flight at a crash (at most
// Claim's n per dead worker).
//
// Keys, all under one hash tag {d:<name>} so each script stays in one slot:
// <prefix>{d:<name>}:s is the stream (fields "key" and "body"),
// <prefix>{d:<name>}:k:<key> the dedupe key holding the first entry's ID
// for DedupeTTL, <prefix>{d:<name>}:dead the dead-letter stream.
//
// An accepted entry is as durable as the server's AOF setting makes it
// (see Store.Durability): with appendfsync always, Redis fsyncs before it
// replies, so an Enqueue that returned is on disk.
type Queue struct {
	s        *Store
	stream   string
	dead     string
	dedupe   string // prefix of dedupe keys
	group    string
	consumer string
	o        QueueOptions
}

// QueueOptions tune a Queue. Zero fields take the defaults shown.
type QueueOptions struct {
	// Consumer names this worker in the group (default: a random name).
	// Use one name per process: a restarted process with the same name
	// gets back its own unacknowledged entries at once.
	Consumer string
	// MinIdle is how long a claimed entry stays unacknowledged before
	// another worker may take it over (default 5m). It must exceed the
	// longest delivery attempt, or a slow but live worker's entry is
	// delivered twice.
	MinIdle time.Duration
	// DedupeTTL is how long an idempotency key maps to its first entry
	// (default 72h, the default delivery max_age).
	DedupeTTL time.Duration
	// MaxDeliveries moves an entry to the dead-letter stream once it has
	// been handed out this many times without an Ack (default 10).
	MaxDeliveries int64
}

// Message is one claimed entry.
type Message struct {
	ID         string // stream entry ID: Ack it
	Key        string // idempotency key ("" = none)
	Body       []byte
	Deliveries int64 // times handed out, this one included
	// OrderKey and Ordered: an ordered queue's entry (EnqueueOrdered).
	OrderKey string
	Ordered  bool
	// RequestID is the id Enqueue returned for an entry that waited held
	// behind its key and got a new stream ID when its turn came.
	RequestID string
}

// Queue returns the delivery queue named name (one per route, or one for
// all). It does not contact Redis: the consumer group is created by the
// first Claim that finds it missing (also after a Redis restart without
// persistence lost it), reading the stream from its start, so no entry
// enqueued before is skipped.
func (s *Store) Queue(name string, o QueueOptions) *Queue {
	if o.MinIdle <= 0 {
		o.MinIdle = 5 * time.Minute
	}
	if o.DedupeTTL <= 0 {
		o.DedupeTTL = 72 * time.Hour
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = 10
	}
	if o.Consumer == "" {
		o.Consumer = fmt.Sprintf("c%016x", rand.Uint64())
	}
	base := s.prefix + "{d:" + name + "}:"
	return &Queue{s: s, stream: base + "s", dead: base + "dead", dedupe: base + "k:",
		group: "drawbridge", consumer: o.Consumer, o: o}
}

// enqueueScript: KEYS = stream, dedupe key (optional); ARGV = dedupe ttl
// (ms), key, body. Returns {id, 1} for a duplicate, else {id, 0}.
var enqueueScript = goredis.NewScript(`
if KEYS[2] then
  local id = redis.call('GET', KEYS[2])
  if id then return {id, 1} end
end
local id = redis.call('XADD', KEYS[1], '*', 'key', ARGV[2], 'body', ARGV[3])
if KEYS[2] then redis.call('SET', KEYS[2], id, 'PX', ARGV[1]) end
return {id, 0}
`)

// Enqueue appends body in one round trip. If key is not empty and an entry
// with the same key was enqueued within DedupeTTL, nothing is added and
// that entry's ID comes back with duplicate = true. Not retried: an
// Enqueue whose reply was lost answers 503, the sender retries with the
// same key, and dedupe returns the first entry.
func (q *Queue) Enqueue(ctx context.Context, key string, body []byte) (id string, duplicate bool, err error) {
	if q.s.closed.Load() {
		return "", false, fmt.Errorf("enqueue: %w", store.ErrClosed)
	}
	keys := []string{q.stream}
	if key != "" {
		keys = append(keys, q.dedupe+key)
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	var v []any
	if q.s.wait > 0 {
		v, err = q.enqueueWait(ctx, enqueueScript, keys, q.o.DedupeTTL.Milliseconds(), key, body)
	} else {
		v, err = enqueueScript.Run(ctx, q.s.c, keys, q.o.DedupeTTL.Milliseconds(), key, body).Slice()
	}
	if err != nil {
		return "", false, q.s.fail("enqueue", err)
	}
	if len(v) == 2 {
		id, _ = v[0].(string)
		dup, _ := v[1].(int64)
		if id != "" {
			return id, dup == 1, nil
		}
	}
	return "", false, fmt.Errorf("enqueue: %w: unexpected reply %v", store.ErrUnavailable, v)
}

// enqueueWait runs an enqueue script and WAIT in one pipeline (one round
// trip) on the primary that holds the stream, and fails unless
// Options.WaitReplicas replicas acknowledged the write within half what
// is left of the call budget: Redis replicates asynchronously, and an
// entry only the old primary held is lost when a replica is promoted.
// The failed Enqueue answers 503, though the entry is in the stream and
// may still be delivered (at least once); the sender's retry with the
// same key finds it (dedupe) and waits again. EVALSHA first; after a
// Redis restart flushed the script cache, the same pipeline with EVAL
// (WAIT alone ran: harmless).
func (q *Queue) enqueueWait(ctx context.Context, script *goredis.Script, keys []string, args ...any) ([]any, error) {
	var c goredis.Cmdable = q.s.c
	if cc, ok := q.s.c.(*goredis.ClusterClient); ok {
		// WAIT names no key: sent through the cluster client it would go
		// to any node, not the one the script wrote to.
		m, err := cc.MasterForKey(ctx, q.stream)
		if err != nil {
			return nil, err
		}
		c = m
	}
	for _, sha := range []bool{true, false} {
		waitMS := int64(1)
		if d, ok := ctx.Deadline(); ok {
			waitMS = max(time.Until(d).Milliseconds()/2, 1)
		}
		p := c.Pipeline()
		var r *goredis.Cmd
		if sha {
			r = script.EvalSha(ctx, p, keys, args...)
		} else {
			r = script.Eval(ctx, p, keys, args...)
		}
		w := p.Do(ctx, "WAIT", q.s.wait, waitMS)
		p.Exec(ctx) // errors are read per command below
		if err := r.Err(); err != nil {
			if sha && goredis.HasErrorPrefix(err, "NOSCRIPT") {
				continue
			}
			return nil, err
		}
		if err := w.Err(); err != nil {
			return nil, fmt.Errorf("wait for replicas: %w", err)
		}
		if n, _ := w.Int64(); n < int64(q.s.wait) {
			return nil, fmt.Errorf("written on the primary but %d of %d replicas acknowledged it within %d ms (state.wait_replicas)", n, q.s.wait, waitMS)
		}
		return r.Slice()
	}
	return nil, errors.New("NOSCRIPT after EVAL")
}

// Claim hands this worker up to n entries: first entries other workers (or
// a previous life of this one) left unacknowledged for MinIdle, then new
// ones. Entries handed out MaxDeliveries times already go to the
// dead-letter stream instead. It does not block: an empty result means
// nothing is due.
func (q *Queue) Claim(ctx context.Context, n int64) ([]Message, error) {
	if q.s.closed.Load() {
		return nil, fmt.Errorf("claim deliveries: %w", store.ErrClosed)
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	ms, err := q.claim(ctx, n)
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		err = q.s.c.XGroupCreateMkStream(ctx, q.stream, q.group, "0").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return nil, q.s.fail("create delivery group", err)
		}
		ms, err = q.claim(ctx, n)
	}
	if err != nil {
		return nil, q.s.fail("claim deliveries", err)
	}
	return ms, nil
}

func (q *Queue) claim(ctx context.Context, n int64) ([]Message, error) {
	// Idle entries and how often each was handed out.
	pend, err := q.s.c.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: q.stream, Group: q.group, Idle: q.o.MinIdle, Start: "-", End: "+", Count: n,
	}).Result()
	if err != nil {
		return nil, err
	}
	var deadIDs []any
	seen := make(map[string]int64, len(pend))
	for _, p := range pend {
		if p.RetryCount >= q.o.MaxDeliveries {
			deadIDs = append(deadIDs, p.ID)
		} else {
			seen[p.ID] = p.RetryCount
		}
	}
	if len(deadIDs) > 0 {
		args := append([]any{q.group, "dead", q.base()}, deadIDs...)
		if err := finishScript.Run(ctx, q.s.c, []string{q.stream, q.dead, q.held()}, args...).Err(); err != nil {
			return nil, fmt.Errorf("dead-letter: %w", err)
		}
	}
	var out []Message
	if len(seen) > 0 {
		msgs, _, err := q.s.c.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
			Stream: q.stream, Group: q.group, MinIdle: q.o.MinIdle, Start: "0-0", Count: n, Consumer: q.consumer,
		}).Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			c, ok := seen[m.ID]
			if !ok { // became idle after XPENDING looked: count unknown
				c = 1
			}
			out = append(out, message(m, c+1))
		}
	}
	if int64(len(out)) >= n {
		return out, nil
	}
	res, err := q.s.c.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: q.group, Consumer: q.consumer, Streams: []string{q.stream, ">"}, Count: n - int64(len(out)), Block: -1,
	}).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, err
	}
	for _, st := range res {
		for _, m := range st.Messages {
			out = append(out, message(m, 1))
		}
	}
	return out, nil
}

func message(m goredis.XMessage, deliveries int64) Message {
	k, _ := m.Values["key"].(string)
	b, _ := m.Values["body"].(string)
	msg := Message{ID: m.ID, Key: k, Body: []byte(b), Deliveries: deliveries}
	msg.OrderKey, msg.Ordered = m.Values["okey"].(string)
	msg.RequestID, _ = m.Values["rid"].(string)
	return msg
}

// Ack ends delivered entries: acknowledged and deleted in one round trip.
// Acknowledging an entry twice is a no-op. The dedupe key stays until its
// TTL, so a late redelivery from the sender is still recognised.
func (q *Queue) Ack(ctx context.Context, ids ...string) error {
	return q.finish(ctx, "ack deliveries", "ack", ids)
}

// Dead lists up to n dead-lettered entries, oldest first; Message.ID is the
// entry's original ID.
func (q *Queue) Dead(ctx context.Context, n int64) ([]Message, error) {
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	msgs, err := q.s.c.XRangeN(ctx, q.dead, "-", "+", n).Result()
	if err != nil {
		return nil, q.s.fail("list dead deliveries", err)
	}
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = message(m, 0)
		out[i].ID, _ = m.Values["id"].(string)
	}
	return out, nil
}

// Pending reports how many entries are in the stream (queued or claimed
// and not yet acknowledged), for the drawbridge_deliveries gauge.
func (q *Queue) Pending(ctx context.Context) (int64, error) {
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	n, err := q.s.c.XLen(ctx, q.stream).Result()
	if err != nil {
		return 0, q.s.fail("count deliveries", err)
	}
	return n, nil
}
