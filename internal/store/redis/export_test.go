package redis

import (
	"context"
	"net"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
)

// CountRoundTrips makes s add to n one per request/reply exchange with the
// server: one per command sent alone, one per pipeline, one per dial.
func (s *Store) CountRoundTrips(n *atomic.Int64) { s.c.AddHook(roundTrips{n}) }

type roundTrips struct{ n *atomic.Int64 }

func (h roundTrips) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.n.Add(1)
		return next(ctx, network, addr)
	}
}

func (h roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TakeResult exposes the reply decoder to tests.
var TakeResult = takeResult
