package tracing

import (
	"context"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the tracer's Prometheus series: spans never reach the
// collector silently.
type counters struct {
	dropped  *prometheus.CounterVec // reason: queue_full, export_failed
	exported prometheus.Counter
}

func newCounters() *counters {
	return &counters{
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_trace_spans_dropped_total",
			Help: "Spans not exported, by reason: queue_full (the export queue was full when the span ended) or export_failed (the collector refused or did not answer the batch).",
		}, []string{"reason"}),
		exported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drawbridge_trace_spans_exported_total",
			Help: "Spans the collector accepted.",
		}),
	}
}

// batcher is the span processor: a bounded queue that OnEnd never waits
// on, and one goroutine that sends batches to the exporter. The SDK's own
// BatchSpanProcessor also drops rather than blocks, but counts its drops
// only where a Prometheus scrape cannot see them.
//
// The exporting goroutine does not receive span by span: it wakes when a
// batch is full (OnEnd's signal), on the interval, or to flush, and then
// drains the queue. A receiver parked on the queue would be woken by every
// span a request ends, eight goroutine switches for one allowed request.
type batcher struct {
	exp      sdktrace.SpanExporter
	m        *counters
	queue    chan sdktrace.ReadOnlySpan
	size     int
	interval time.Duration
	timeout  time.Duration

	wake     chan struct{} // a batch is waiting
	flush    chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	full     prometheus.Counter
	failed   prometheus.Counter
}

func newBatcher(exp sdktrace.SpanExporter, m *counters, o Options) *batcher {
	if o.QueueSize <= 0 {
		o.QueueSize = 2048
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 512
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.ExportTimeout <= 0 {
		o.ExportTimeout = 10 * time.Second
	}
	b := &batcher{
		exp: exp, m: m,
		queue: make(chan sdktrace.ReadOnlySpan, o.QueueSize), size: o.BatchSize,
		interval: o.Interval, timeout: o.ExportTimeout,
		wake: make(chan struct{}, 1), flush: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
		full: m.dropped.WithLabelValues("queue_full"), failed: m.dropped.WithLabelValues("export_failed"),
	}
	go b.run()
	return b
}

// OnStart implements sdktrace.SpanProcessor.
func (b *batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span, or drops and counts it when the queue is
// full: the request that ended it never waits for the collector.
func (b *batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case b.queue <- s:
	default:
		b.full.Inc()
		return
	}
	if len(b.queue) >= b.size {
		select {
		case b.wake <- struct{}{}:
		default: // already signalled
		}
	}
}

func (b *batcher) run() {
	defer close(b.done)
	batch := make([]sdktrace.ReadOnlySpan, 0, b.size)
	tick := time.NewTicker(b.interval)
	defer tick.Stop()
	send := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		err := b.exp.ExportSpans(ctx, batch)
		cancel()
		if err != nil {
			b.failed.Add(float64(len(batch)))
		} else {
			b.m.exported.Add(float64(len(batch)))
		}
		clear(batch)
		batch = batch[:0]
	}
	drain := func() {
		for {
			select {
			case s := <-b.queue:
				batch = append(batch, s)
				if len(batch) == b.size {
					send()
				}
			default:
				send()
				return
			}
		}
	}
	for {
		select {
		case <-b.wake:
			drain()
		case <-tick.C:
			drain()
		case ack := <-b.flush:
			drain()
			close(ack)
		case <-b.stop:
			drain()
			return
		}
	}
}

// ForceFlush exports every span queued now, or gives up when ctx ends.
func (b *batcher) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case b.flush <- ack:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued and stops the exporter, within ctx.
func (b *batcher) Shutdown(ctx context.Context) error {
	b.stopOnce.Do(func() { close(b.stop) })
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.exp.Shutdown(ctx)
}
