package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
)

// What an operator can see of a Queue and do with it (the console's
// deliveries pages on the redis driver; docs/console.md): page through
// the stream and the dead-letter stream, read one entry, move dead
// entries back to the stream, and trim dead letters. Entries cannot move
// between streams keeping their ID: a dead letter has the dead stream's
// ID, and a revived one a new ID in the stream.

// Entry is one entry of the stream or the dead-letter stream.
type Entry struct {
	ID   string // the entry's ID in its stream
	Key  string // idempotency key
	Body []byte
	// Original is a dead letter's ID in the stream before it died ("" for
	// the stream's own entries).
	Original string
}

// Time is when the entry was added to its stream (the ID's
// milliseconds, on the Redis server's clock).
func (e Entry) Time() time.Time { return IDTime(e.ID) }

// IDTime reads the milliseconds of a stream entry ID; zero when id is not
// one.
func IDTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// Entries returns up to n entries of the stream (dead false) or the
// dead-letter stream, newest first, with IDs strictly below before ("":
// from the newest) and at or after since (zero: any).
func (q *Queue) Entries(ctx context.Context, dead bool, before string, since time.Time, n int64) ([]Entry, error) {
	if q.s.closed.Load() {
		return nil, fmt.Errorf("list deliveries: %w", store.ErrClosed)
	}
	key := q.stream
	if dead {
		key = q.dead
	}
	hi, lo := "+", "-"
	if before != "" {
		hi = "(" + before
	}
	if !since.IsZero() {
		lo = strconv.FormatInt(since.UnixMilli(), 10)
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	msgs, err := q.s.c.XRevRangeN(ctx, key, hi, lo, n).Result()
	if err != nil {
		return nil, q.s.fail("list deliveries", err)
	}
	out := make([]Entry, len(msgs))
	for i, m := range msgs {
		out[i] = entry(m)
	}
	return out, nil
}

func entry(m goredis.XMessage) Entry {
	msg := message(m, 0)
	orig, _ := m.Values["id"].(string)
	return Entry{ID: m.ID, Key: msg.Key, Body: msg.Body, Original: orig}
}

// Entry reads one entry of the stream (dead false) or of the dead-letter
// stream; found is false when it does not hold id. The two streams number
// their entries independently, so an ID alone does not say which holds it.
func (q *Queue) Entry(ctx context.Context, dead bool, id string) (e Entry, found bool, err error) {
	if q.s.closed.Load() {
		return e, false, fmt.Errorf("read delivery: %w", store.ErrClosed)
	}
	key := q.stream
	if dead {
		key = q.dead
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	ms, err := q.s.c.XRange(ctx, key, id, id).Result()
	if err != nil {
		return e, false, q.s.fail("read delivery", err)
	}
	if len(ms) != 1 {
		return e, false, nil
	}
	return entry(ms[0]), true, nil
}

// reviveScript: KEYS = stream, dead stream; ARGV = dead entry IDs. Adds
// each dead entry's key and body to the stream as a new entry and deletes
// it from the dead stream; returns the new IDs ("" for an ID not found).
var reviveScript = goredis.NewScript(`
local out = {}
for i = 1, #ARGV do
  local e = redis.call('XRANGE', KEYS[2], ARGV[i], ARGV[i])
  if e[1] then
    local f, key, body = e[1][2], '', ''
    for j = 1, #f, 2 do
      if f[j] == 'key' then key = f[j+1] elseif f[j] == 'body' then body = f[j+1] end
    end
    out[i] = redis.call('XADD', KEYS[1], '*', 'key', key, 'body', body)
    redis.call('XDEL', KEYS[2], ARGV[i])
  else
    out[i] = ''
  end
end
return out
`)

// Revive moves dead letters back to the stream, each as a new entry handed
// out afresh (its hand-out count starts again), in one round trip; it
// returns the new IDs, "" for an ID the dead stream does not hold.
func (q *Queue) Revive(ctx context.Context, deadIDs ...string) ([]string, error) {
	if len(deadIDs) == 0 {
		return nil, nil
	}
	if q.s.closed.Load() {
		return nil, fmt.Errorf("replay deliveries: %w", store.ErrClosed)
	}
	args := make([]any, len(deadIDs))
	for i, id := range deadIDs {
		args[i] = id
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	res, err := reviveScript.Run(ctx, q.s.c, []string{q.stream, q.dead}, args...).StringSlice()
	if err != nil {
		return nil, q.s.fail("replay deliveries", err)
	}
	return res, nil
}

// TrimDead deletes the dead letters added before olderThan and returns how
// many.
func (q *Queue) TrimDead(ctx context.Context, olderThan time.Time) (int64, error) {
	if q.s.closed.Load() {
		return 0, fmt.Errorf("purge deliveries: %w", store.ErrClosed)
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	n, err := q.s.c.XTrimMinID(ctx, q.dead, strconv.FormatInt(olderThan.UnixMilli(), 10)).Result()
	if err != nil {
		return 0, q.s.fail("purge deliveries", err)
	}
	return n, nil
}
