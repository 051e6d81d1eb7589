package cli

import (
	"log/slog"
	"time"

	"github.com/drawbridge/drawbridge/internal/body"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/gateway"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/tracing"
)

// wiring is what a command has for its gateway beyond the config: the
// parts that differ between serve, Lambda, check and explain.
type wiring struct {
	state   *state           // required
	metrics *metrics.Metrics // nil: a fresh registry nobody scrapes (check, explain)
	log     *slog.Logger     // nil: discard
	// egress checks every upstream dial and resolves target names. Nil: none,
	// for explain, whose gateway never dials.
	egress *egress.Guard
	now    func() time.Time // the guards' clock; nil: real time (tests inject one)
	// bodies is the body memory budget, shared across reloads. Nil: the
	// gateway makes its own (Lambda, check, explain build one gateway).
	bodies *body.Budget
	tracer *tracing.Tracer // nil: tracing off
}

// gatewayDeps builds the gateway's dependencies for every command that
// builds one (serve and each reload, Lambda, check, explain, keys usage),
// so none of them can miss one: the local copies of built-in ip sets next
// to cfg's file are read afresh on every call (a reload picks up
// `drawbridge ipsets update`), and the queue is the state's own, a nil
// interface when it has none (async routes then answer 503).
func gatewayDeps(cfg *config.Config, w wiring) gateway.Deps {
	log := w.log
	if log == nil {
		log = discardLog()
	}
	m := w.metrics
	if m == nil {
		m = metrics.New()
	}
	return gateway.Deps{Metrics: m, Log: log, Store: w.state.store, Queue: w.state.queue, Now: w.now,
		Egress: w.egress, IPSets: localIPSets(cfg.File, log), Bodies: w.bodies, Tracer: w.tracer}
}
