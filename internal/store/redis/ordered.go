package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
)

// Ordered queues (delivery.order_by, docs/delivery.md#order-and-coalescing)
// keep, per order key, only the key's oldest entry (its head) in the
// stream, where any replica's worker may claim it; the later entries of
// the key wait in a held stream, listed in order under the key, and the
// one after the head is moved into the stream when the head is
// acknowledged or dead-lettered. So a key's entries are delivered one at a
// time in acceptance order whichever replica holds them, and the
// consumer group's window bounds the keys in flight. With coalesce, an
// entry enqueued behind held ones drops them (they were never handed
// out) into the coalesced stream.
//
// More keys under the queue's hash tag (so every script stays in one
// slot): <base>held (the held entries), <base>co (coalesced entries:
// fields id and okey), <base>h:<okey> (the id of the key's head in the
// stream) and <base>o:<okey> (the key's held ids, in order). The h: and
// o: names depend on the entry, so the scripts build them from <base>,
// which carries the hash tag: they hash to the slot of the declared keys.

// enqueueOrderedScript: KEYS = stream, dedupe key (or the dedupe prefix
// when there is no key), held, coalesced; ARGV = dedupe ttl (ms), key,
// body, okey, coalesce ("1"), base, has key ("1"). Returns {id, dup}.
var enqueueOrderedScript = goredis.NewScript(`
if ARGV[7] == '1' then
  local id = redis.call('GET', KEYS[2])
  if id then return {id, 1} end
end
local hk = ARGV[6] .. 'h:' .. ARGV[4]
local lk = ARGV[6] .. 'o:' .. ARGV[4]
local id
if redis.call('EXISTS', hk) == 0 then
  id = redis.call('XADD', KEYS[1], '*', 'key', ARGV[2], 'body', ARGV[3], 'okey', ARGV[4])
  redis.call('SET', hk, id)
else
  if ARGV[5] == '1' then
    for _, w in ipairs(redis.call('LRANGE', lk, 0, -1)) do
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'id', w, 'okey', ARGV[4])
      redis.call('XDEL', KEYS[3], w)
    end
    redis.call('DEL', lk)
  end
  id = redis.call('XADD', KEYS[3], '*', 'key', ARGV[2], 'body', ARGV[3], 'okey', ARGV[4])
  redis.call('RPUSH', lk, id)
end
if ARGV[7] == '1' then redis.call('SET', KEYS[2], id, 'PX', ARGV[1]) end
return {id, 0}
`)

// EnqueueOrdered appends body under order key okey (see above): to the
// stream if the key has no entry there, else behind the key's held
// entries, dropping them first when coalesce is set. Dedupe as Enqueue.
func (q *Queue) EnqueueOrdered(ctx context.Context, key string, body []byte, okey string, coalesce bool) (id string, duplicate bool, err error) {
	if q.s.closed.Load() {
		return "", false, fmt.Errorf("enqueue: %w", store.ErrClosed)
	}
	dk, hasKey := q.dedupe, "0"
	if key != "" {
		dk, hasKey = q.dedupe+key, "1"
	}
	co := "0"
	if coalesce {
		co = "1"
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	keys := []string{q.stream, dk, q.held(), q.coalesced()}
	args := []any{q.o.DedupeTTL.Milliseconds(), key, body, okey, co, q.base(), hasKey}
	var v []any
	if q.s.wait > 0 {
		// state.wait_replicas holds for ordered entries too.
		v, err = q.enqueueWait(ctx, enqueueOrderedScript, keys, args...)
	} else {
		v, err = enqueueOrderedScript.Run(ctx, q.s.c, keys, args...).Slice()
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

// finishScript ends entries, acknowledged ("ack") or dead-lettered
// ("dead"), and for an ordered entry that is its key's head moves the
// key's next held entry into the stream (its 202 id kept in field rid).
// KEYS = stream, dead stream, held; ARGV = group, mode, base, ids.
var finishScript = goredis.NewScript(`
for i = 4, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  local okey
  if e[1] then
    local f = e[1][2]
    for j = 1, #f, 2 do if f[j] == 'okey' then okey = f[j + 1] end end
    if ARGV[2] == 'dead' then
      table.insert(f, 'id')
      table.insert(f, ARGV[i])
      redis.call('XADD', KEYS[2], '*', unpack(f))
    end
  end
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
  if okey then
    local hk = ARGV[3] .. 'h:' .. okey
    local lk = ARGV[3] .. 'o:' .. okey
    if redis.call('GET', hk) == ARGV[i] then
      redis.call('DEL', hk)
      while true do
        local nxt = redis.call('LPOP', lk)
        if not nxt then break end
        local h = redis.call('XRANGE', KEYS[3], nxt, nxt)
        if h[1] then
          local f = h[1][2]
          table.insert(f, 'rid')
          table.insert(f, nxt)
          local nid = redis.call('XADD', KEYS[1], '*', unpack(f))
          redis.call('XDEL', KEYS[3], nxt)
          redis.call('SET', hk, nid)
          break
        end
      end
    end
  end
end
return #ARGV - 3
`)

func (q *Queue) base() string      { return q.stream[:len(q.stream)-1] } // "<prefix>{d:<name>}:"
func (q *Queue) held() string      { return q.base() + "held" }
func (q *Queue) coalesced() string { return q.base() + "co" }

// finish runs finishScript on ids.
func (q *Queue) finish(ctx context.Context, action, mode string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if q.s.closed.Load() {
		return fmt.Errorf("%s: %w", action, store.ErrClosed)
	}
	args := make([]any, 0, 3+len(ids))
	args = append(args, q.group, mode, q.base())
	for _, id := range ids {
		args = append(args, id)
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	if err := finishScript.Run(ctx, q.s.c, []string{q.stream, q.dead, q.held()}, args...).Err(); err != nil {
		return q.s.fail(action, err)
	}
	return nil
}

// Coalesced reports how many entries coalescing dropped (the coalesced
// stream's length), for the drawbridge_deliveries gauge.
func (q *Queue) Coalesced(ctx context.Context) (held, coalesced int64, err error) {
	if q.s.closed.Load() {
		return 0, 0, fmt.Errorf("count deliveries: %w", store.ErrClosed)
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	p := q.s.c.Pipeline()
	h := p.XLen(ctx, q.held())
	c := p.XLen(ctx, q.coalesced())
	if _, err := p.Exec(ctx); err != nil {
		return 0, 0, q.s.fail("count deliveries", err)
	}
	return h.Val(), c.Val(), nil
}
