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
	if len(ids) == 0 {
		return nil
	}
	if q.s.closed.Load() {
		return fmt.Errorf("dead-letter deliveries: %w", store.ErrClosed)
	}
	args := make([]any, 0, 1+len(ids))
	args = append(args, q.group)
	for _, id := range ids {
		args = append(args, id)
	}
	ctx, cancel := q.s.call(ctx)
	defer cancel()
	if err := deadScript.Run(ctx, q.s.c, []string{q.stream, q.dead}, args...).Err(); err != nil {
		return fail("dead-letter deliveries", err)
	}
	return nil
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
		return 0, 0, fail("count deliveries", err)
	}
	return s.Val(), d.Val(), nil
}
