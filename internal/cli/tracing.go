package cli

import (
	"context"
	"log/slog"
	"reflect"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/tracing"
)

// newTracer is the process's tracer for cfg's tracing:, its counters on
// m's registry; nil when tracing is off (docs/tracing.md). It lives for
// the process: a reload keeps it.
func newTracer(cfg *config.Config, m *metrics.Metrics, inLambda bool) (*tracing.Tracer, error) {
	if cfg.Tracing == nil {
		return nil, nil
	}
	return tracing.New(cfg.Tracing, m.Registry, tracing.Options{Lambda: inLambda, Version: version})
}

// traceAttempts is the worker's span hook; nil when tracing is off.
func traceAttempts(t *tracing.Tracer, o *delivery.WorkerOptions) {
	if t != nil {
		o.Trace = t.Attempt
	}
}

// stopTracer exports the spans still queued, within a bound: a collector
// that does not answer must not hold a shutdown.
func stopTracer(t *tracing.Tracer, log *slog.Logger) {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("tracing: spans not exported at shutdown", "error", err.Error())
	}
}

// warnTracingRestart logs that a reload does not apply tracing: the
// exporter is made once per process.
func warnTracingRestart(prev, cfg *config.Config, log *slog.Logger) {
	if !reflect.DeepEqual(prev.Tracing, cfg.Tracing) {
		log.Warn("tracing: changes take effect after a restart")
	}
}
