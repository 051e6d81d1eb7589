package gateway

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/drawbridge/drawbridge/internal/accesslog"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/metrics"
)

// sampledReason marks the refusals whose access lines log.rejections
// samples: answers a client can bring on itself as often as it likes.
// Forwarded and accepted requests, preflights, failures of the target or
// the state store, and everything else the gateway answers keep their
// line (docs/performance.md#rejection-log-sampling).
var sampledReason = [numReasons]bool{
	noRoute: true, badRequest: true, headersTooLarge: true, tooLarge: true,
	policyDenied: true, unauthorized: true, forbidden: true, keyRejected: true,
	signatureRejected: true, throttled: true, quotaExceeded: true,
}

// rejectLog bounds the access lines of rejections with an
// accesslog.Sampler and writes its summary line once per interval in
// which it suppressed any. A timer runs only while a window is open.
type rejectLog struct {
	s        *accesslog.Sampler
	interval time.Duration
	log      *slog.Logger
	timer    atomic.Pointer[time.Timer]
}

// newRejectLog gives every route its row of sampler keys, one per reason
// (row 0: requests that matched no route).
func newRejectLog(cfg *config.RejectionLog, routes []*route, replies *[numReasons]reply, log *slog.Logger, now time.Time) *rejectLog {
	outcomes := make([]string, 0, (len(routes)+1)*int(numReasons))
	for i := 0; i <= len(routes); i++ {
		if i > 0 {
			routes[i-1].logKey = len(outcomes)
		}
		for rs := range numReasons {
			outcomes = append(outcomes, string(replies[rs].outcome))
		}
	}
	return &rejectLog{
		s:        accesslog.NewSampler(float64(cfg.Rate), int(cfg.Burst), outcomes, now),
		interval: time.Duration(cfg.SummaryInterval),
		log:      log,
	}
}

// fullLine reports whether c gets its access line: always, unless it is a
// sampled refusal and its route's or its network's lines are spent.
func (g *Gateway) fullLine(c *call, end time.Time) bool {
	if c.outcome == metrics.Forwarded || !sampledReason[c.reason] {
		return true
	}
	key := int(c.reason)
	client := c.client
	if c.route != nil {
		key += c.route.logKey
	} else {
		// Not resolved for a request no route matched (its line says
		// "unknown"), but its network is what a flood of them shares.
		client = g.clientIP.ClientIP(c.r.RemoteAddr, c.r.Header["X-Forwarded-For"])
	}
	full, arm := g.rejects.s.Allow(key, client, end)
	if arm {
		g.rejects.timer.Store(time.AfterFunc(g.rejects.interval, g.rejects.flush))
	}
	return full
}

// flush writes the summary of the window that just ended.
func (rl *rejectLog) flush() {
	if sum, ok := rl.s.Summary(); ok {
		rl.write(sum)
	}
}

// close writes the last summary; requests still finishing after it get
// their full lines.
func (rl *rejectLog) close() {
	if t := rl.timer.Load(); t != nil {
		t.Stop()
	}
	if sum, ok := rl.s.Close(); ok {
		rl.write(sum)
	}
}

// write is the summary line: a WARN, as it says a client is being refused
// faster than the log keeps up with, and operators filtering at WARN
// should see it.
func (rl *rejectLog) write(sum accesslog.Summary) {
	outcomes := make([]any, len(sum.Outcomes))
	for i, o := range sum.Outcomes {
		outcomes[i] = slog.Int64(o.Name, o.N)
	}
	top := make([]any, len(sum.Top))
	for i, n := range sum.Top {
		top[i] = slog.Int64(n.Name, n.N)
	}
	rl.log.LogAttrs(context.Background(), slog.LevelWarn, "rejections suppressed",
		slog.Time("since", sum.Since),
		slog.Int64("suppressed", sum.Suppressed),
		slog.Group("by_outcome", outcomes...),
		slog.Int("networks", sum.Networks),
		slog.Group("top_networks", top...),
	)
}
