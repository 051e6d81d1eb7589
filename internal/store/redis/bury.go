package redis

import (
	"context"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/store"
)

// Bury moves entries to the dead-letter stream at once (a permanent
// failure, or a retry budget the caller's policy says is spent), in one
// round trip: the same script Claim uses after MaxDeliveries.
func (q *Queue) Bury(ctx context.Context, ids ...string) error {
	return q.finish(ctx, "dead-letter deliveries", "dead", ids)
}

// Lengths reports the entries in the stream (queued or claimed, not yet
// acknowledged) and in the dead-letter stream, in one pipelined round
// trip, for the drawbridge_deliveries gauge.
func (q *Queue) Lengths(ctx context.Context) (pending, dead int64, err error) {
	if q.s.closed.Load() {
		return 0, 0, fmt.Errorf("count deliveries: %w", store.ErrClosed)
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	p := q.s.c.Pipeline()
	s := p.XLen(ctx, q.stream)
	d := p.XLen(ctx, q.dead)
	if _, err := p.Exec(ctx); err != nil {
		return 0, 0, q.s.fail("count deliveries", err)
	}
	return s.Val(), d.Val(), nil
}
