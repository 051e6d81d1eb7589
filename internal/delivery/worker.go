package delivery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/webhook"
)

// WorkerOptions tune a Worker. The zero value is usable.
type WorkerOptions struct {
	Clock Clock        // nil: SystemClock; all retry timing reads it
	Log   *slog.Logger // nil: discard; one line per attempt
	// Egress checks every dial on the resolved address, before
	// connecting, and resolves target host names: the egress guard, as on
	// the sync path (deliveries go through forward.Client, the sync path's
	// dialer and framing watch). Nil: no check.
	Egress *egress.Guard
	// Rand draws uniformly from [0, n) for the backoff jitter. Nil:
	// math/rand/v2; tests inject a fixed one.
	Rand func(n int64) int64
	// OnCounts is told the queue's counts after every scheduling pass
	// (the drawbridge_deliveries gauge). Nil: nobody.
	OnCounts func(Counts)
	// OnAttempt is told of every recorded attempt (the attempt and
	// latency histograms). Nil: nobody.
	OnAttempt func(AttemptReport)
	// Poll bounds how long Run sleeps between scans when nothing wakes it
	// (a clock jump, a missed wake-up). Zero: 10s.
	Poll time.Duration
	// Agents carries deliveries accepted on via routes (Delivery.Via).
	// Nil, or no agent connected: the attempt fails and is retried on
	// the route's schedule, so the delivery waits in the queue.
	Agents func(name string) http.RoundTripper
	// Trace starts the span of one attempt, linked to the accepting
	// span (accepted: Delivery.Trace), and returns the traceparent the
	// target receives and the function that ends the span with the
	// attempt's status, error, the delivery's state after it and its next
	// retry (tracing.Tracer.Attempt). Nil: no spans.
	Trace func(route, id, accepted string, attempt int) (traceparent string, end func(status int, err error, state string, next time.Time))
}

// Source is a queue a Worker delivers from: the bbolt Queue, or one that
// replicas share (package streams, on Redis). The Worker owns scheduling
// (windows, in-flight ids), sending and the retry policy; a Source only
// stores.
type Source interface {
	// Due returns the deliveries the worker may start at now, with
	// bodies: per route at most window(route) in flight, none that busy
	// reports in flight already. next is when to look again (zero:
	// unknown, the worker polls).
	Due(ctx context.Context, now time.Time, window func(route string) int, busy func(id string) bool) (ready []*Delivery, next time.Time, err error)
	// Finish records attempt a of d and moves d to state (at next if
	// still pending). ErrNotPending: d was purged or replayed meanwhile.
	Finish(ctx context.Context, d *Delivery, a Attempt, state State, next time.Time) error
	// Counts are the deliveries in each state, for the gauge.
	Counts() (Counts, error)
	// Wake receives when a delivery was enqueued here, so the worker
	// need not wait for its next poll.
	Wake() <-chan struct{}
}

var _ Source = (*Queue)(nil)

// Worker delivers a Source's pending deliveries. Run it in the background
// for a server; call RunOnce for one pass (Lambda's scheduled drain).
type Worker struct {
	q      Source
	opts   WorkerOptions
	client *forward.Client
	vias   sync.Map // agent name -> *forward.Client

	mu       sync.Mutex
	policies map[string]Policy // by route; routes not listed get the defaults
	busy     map[string]bool   // ids in flight
	// recent holds ids released since the current scan began: a scan
	// whose snapshot predates an attempt's commit would still see that
	// delivery pending, and must not start it again now that it is no
	// longer busy. Releases before a scan began committed before its
	// snapshot, so each scan starts with recent empty.
	recent map[string]bool
}

// NewWorker makes a worker for q.
func NewWorker(q Source, opts WorkerOptions) *Worker {
	if opts.Clock == nil {
		opts.Clock = SystemClock
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Int64N
	}
	if opts.Poll <= 0 {
		opts.Poll = 10 * time.Second
	}
	return &Worker{
		q:        q,
		opts:     opts,
		client:   forward.NewClient(forward.Options{Egress: opts.Egress}),
		policies: map[string]Policy{},
		busy:     map[string]bool{},
		recent:   map[string]bool{},
	}
}

// Policies reads the policy of every lane of every async route of cfg
// (one per target; config.Lane), by lane name.
func Policies(cfg *config.Config) map[string]Policy {
	m := map[string]Policy{}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if r.Delivery == nil || r.Delivery.Mode != config.DeliveryAsync {
			continue
		}
		lanes := r.Lanes()
		if len(lanes) == 0 { // a config built in code, without Validate
			m[r.Path] = PolicyFor(r)
			continue
		}
		for _, l := range lanes {
			m[l.Name] = PolicyForLane(l)
		}
	}
	return m
}

// SetPolicies replaces the per-route policies (on start and on reload).
// Deliveries of a route no longer configured keep going to the URL they
// were accepted for, under the default policy.
func (w *Worker) SetPolicies(p map[string]Policy) {
	w.mu.Lock()
	w.policies = p
	w.mu.Unlock()
}

func (w *Worker) policy(route string) Policy {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p, ok := w.policies[route]; ok {
		return p
	}
	return Policy{}.WithDefaults()
}

// window and isBusy are called by Source.Due (the bbolt Queue's inside a
// read transaction).
func (w *Worker) window(route string) int { return w.policy(route).Concurrency }

func (w *Worker) isBusy(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.busy[id] || w.recent[id]
}

// due is Source.Due with the worker's windows and in-flight ids.
func (w *Worker) due(ctx context.Context, now time.Time) ([]*Delivery, time.Time, error) {
	w.mu.Lock()
	clear(w.recent)
	w.mu.Unlock()
	return w.q.Due(ctx, now, w.window, w.isBusy)
}

// claim marks ds in flight.
func (w *Worker) claim(ds []*Delivery) {
	w.mu.Lock()
	for _, d := range ds {
		w.busy[d.ID] = true
	}
	w.mu.Unlock()
}

// release ends an attempt that has been recorded (Finish returned).
func (w *Worker) release(id string) {
	w.mu.Lock()
	delete(w.busy, id)
	w.recent[id] = true
	w.mu.Unlock()
}

// Close drops idle connections to targets.
func (w *Worker) Close() { w.client.Close() }

// Run delivers until ctx is cancelled, then waits for the attempts in
// flight to end. An attempt cut short by the cancellation is not recorded:
// its delivery stays pending and is sent again after restart.
func (w *Worker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	finished := make(chan struct{}, 1)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := w.opts.Clock.Now()
		ready, next, err := w.due(ctx, now)
		if err != nil {
			w.opts.Log.Error("delivery scan failed", "error", err.Error())
		}
		w.claim(ready)
		for _, d := range ready {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.attempt(ctx, d)
				w.release(d.ID)
				select {
				case finished <- struct{}{}:
				default:
				}
			}()
		}
		w.report()
		wait := w.opts.Poll
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(now), 0))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.q.Wake():
		case <-finished:
		case <-timer.C:
		}
	}
}

// RunOnce delivers everything due at the clock's now, one window per
// route at a time, until nothing is due, and returns how many attempts it
// made. A failed attempt is due again only later (backoff is never zero),
// so RunOnce ends.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	n := 0
	defer w.report()
	for ctx.Err() == nil {
		ready, _, err := w.due(ctx, w.opts.Clock.Now())
		if err != nil || len(ready) == 0 {
			return n, err
		}
		w.claim(ready)
		var wg sync.WaitGroup
		for _, d := range ready {
			wg.Go(func() {
				w.attempt(ctx, d)
				w.release(d.ID)
			})
		}
		wg.Wait()
		n += len(ready)
	}
	return n, ctx.Err()
}

func (w *Worker) report() {
	if w.opts.OnCounts == nil {
		return
	}
	c, err := w.q.Counts()
	if err != nil {
		w.opts.Log.Error("delivery counts", "error", err.Error())
		return
	}
	w.opts.OnCounts(c)
}

// AttemptReport is one recorded attempt, for metrics.
type AttemptReport struct {
	Route    string
	Duration time.Duration // of this attempt
	// State is the delivery's state after the attempt: Delivered and Dead
	// end it (Tries then counts every attempt of the retry budget, and
	// SinceAccepted is the time from acceptance, or the last replay, to
	// the end); Pending means it will be tried again.
	State         State
	Tries         int
	SinceAccepted time.Duration
}

// attempt sends d once and records the outcome.
func (w *Worker) attempt(ctx context.Context, d *Delivery) {
	p := w.policy(d.Route)
	var tp string
	var endSpan func(int, error, string, time.Time)
	if w.opts.Trace != nil {
		tp, endSpan = w.opts.Trace(d.Route, d.ID, d.Trace, d.tries()+1)
	}
	start := w.opts.Clock.Now()
	res := w.send(ctx, d, p.Timeout, tp, p.Sign)
	if ctx.Err() != nil {
		if endSpan != nil {
			endSpan(res.Status, context.Canceled, string(Pending), time.Time{})
		}
		return // shutting down: not the target's fault, not an attempt
	}
	end := w.opts.Clock.Now()
	a := Attempt{At: start, Status: res.Status, Duration: end.Sub(start)}
	if res.Err != nil {
		a.Error = res.Err.Error()
	}
	state, next := p.Decide(d, res, end, w.opts.Rand)
	if endSpan != nil {
		var nextRetry time.Time
		if state == Pending {
			nextRetry = next
		}
		endSpan(res.Status, res.Err, string(state), nextRetry)
	}
	err := w.q.Finish(ctx, d, a, state, next)
	if err == nil && w.opts.OnAttempt != nil {
		w.opts.OnAttempt(AttemptReport{Route: d.Route, Duration: a.Duration, State: state,
			Tries: d.tries() + 1, SinceAccepted: end.Sub(d.budgetStart())})
	}
	attrs := []any{"id", d.ID, "route", d.Route, "attempt", d.tries() + 1,
		"status", res.Status, "duration_ms", float64(a.Duration.Microseconds()) / 1000, "state", string(state)}
	if a.Error != "" {
		attrs = append(attrs, "error", a.Error)
	}
	if state == Pending {
		attrs = append(attrs, "next_at", next.UTC().Format(time.RFC3339Nano))
	}
	switch {
	case err != nil && !errors.Is(err, ErrNotPending):
		w.opts.Log.Error("delivery attempt not recorded; it will be sent again", append(attrs, "store_error", err.Error())...)
	case state == Dead:
		w.opts.Log.Warn("delivery dead-lettered", attrs...)
	default:
		w.opts.Log.Info("delivery attempt", attrs...)
	}
}

// maxDrain is how much of a target's answer is read (and discarded) so
// the connection can be reused.
const maxDrain = 64 << 10

// send makes one attempt. traceparent, when set (tracing on), is the
// attempt span's: it replaces the one stored with the request (the
// accepting span's), and the stored tracestate, which went with it.
// sign, when set (delivery.sign), signs the attempt as it is sent.
func (w *Worker) send(ctx context.Context, d *Delivery, timeout time.Duration, traceparent string, sign *webhook.Signer) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The header is the plan the gateway stored (forward.Plan). A
	// X-Drawbridge-* name in it can only be a client's, stored before the
	// gateway dropped them: this one is drawbridge's.
	h := make(http.Header, len(d.Header)+1)
	for k, vs := range d.Header {
		if !drawbridgeHeader(k) {
			h[k] = vs
		}
	}
	// The same id on every attempt, so the target can drop our own
	// at-least-once duplicates.
	h["X-Drawbridge-Delivery"] = []string{d.ID}
	if traceparent != "" {
		h["Traceparent"] = []string{traceparent}
		delete(h, "Tracestate")
	}
	if sign != nil {
		// Signed now, at every attempt: a backend that checks the
		// timestamp's age accepts a delivery made long after acceptance.
		sign.Sign(h, d.ID, d.Body, w.opts.Clock.Now())
	}
	resp, err := w.clientFor(d.Via).Send(ctx, d.Method, d.URL, h, d.Body)
	if err != nil {
		return Result{Err: err}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	r := Result{Status: resp.StatusCode}
	ref := w.opts.Clock.Now()
	if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		ref = t
	}
	if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), ref); ok {
		r.RetryAfter = ra
	}
	return r
}

// clientFor is the client that sends a delivery: through the agents of
// via, or the worker's own.
func (w *Worker) clientFor(via string) *forward.Client {
	if via == "" {
		return w.client
	}
	if c, ok := w.vias.Load(via); ok {
		return c.(*forward.Client)
	}
	w.mu.Lock()
	agents := w.opts.Agents
	w.mu.Unlock()
	if agents == nil {
		return noAgentClient // not kept: SetAgents may come later
	}
	c, _ := w.vias.LoadOrStore(via, forward.NewClient(forward.Options{Transport: agents(via)}))
	return c.(*forward.Client)
}

// SetAgents sets WorkerOptions.Agents on a running worker (serve opens
// the agents listener after the queue).
func (w *Worker) SetAgents(f func(name string) http.RoundTripper) {
	w.mu.Lock()
	w.opts.Agents = f
	w.mu.Unlock()
}

var noAgentClient = forward.NewClient(forward.Options{Transport: noAgent{}})

type noAgent struct{}

func (noAgent) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, forward.ErrAgentUnavailable
}

// drawbridgeHeader reports whether name is in drawbridge's own header
// space, x-drawbridge-*, in any case and with '_' for '-'.
func drawbridgeHeader(name string) bool {
	const p = "x-drawbridge-"
	if len(name) <= len(p) {
		return false
	}
	return strings.EqualFold(strings.ReplaceAll(name[:len(p)], "_", "-"), p)
}
