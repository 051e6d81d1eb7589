package delivery

import (
	"encoding/json"
	"testing"
	"time"
)

// TestWorkerTraceHook: with WorkerOptions.Trace set, each attempt starts a
// span with the delivery's stored accepting span (Delivery.Trace) and its
// attempt number, the target receives the attempt's traceparent in place
// of the stored one (and no stored tracestate), and the span ends with the
// status, the state after the attempt and, while pending, the next retry.
func TestWorkerTraceHook(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	tg := newTarget(t)
	tg.set(status(503))
	type call struct {
		route, id, accepted string
		attempt             int
		status              int
		state               string
		next                time.Time
	}
	var calls []*call
	w := NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand,
		Trace: func(route, id, accepted string, attempt int) (string, func(int, error, string, time.Time)) {
			c := &call{route: route, id: id, accepted: accepted, attempt: attempt}
			calls = append(calls, c)
			return "00-0000000000000000000000000000000" + string(rune('0'+attempt)) + "-00f067aa0ba902b7-01", func(st int, _ error, state string, next time.Time) {
				c.status, c.state, c.next = st, state, next
			}
		}})
	defer w.Close()
	const accepted = "00-4bf92f3577b34da6a3ce929d0e0e4736-a3ce929d0e0e4736-01"
	d := sample("/hooks/*", tg.URL+"/h", "k1")
	d.Trace = accepted
	d.Header["Traceparent"] = []string{accepted}
	d.Header["Tracestate"] = []string{"congo=t61rcWkgMzE"}
	id, _, err := q.Enqueue(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	w.RunOnce(ctx)
	tg.set(status(200))
	clock.Add(time.Hour)
	w.RunOnce(ctx)

	if len(calls) != 2 {
		t.Fatalf("%d spans, want 2", len(calls))
	}
	for i, c := range calls {
		if c.route != "/hooks/*" || c.id != id || c.accepted != accepted || c.attempt != i+1 {
			t.Errorf("span %d started with %+v", i+1, c)
		}
	}
	if c := calls[0]; c.status != 503 || c.state != "pending" || c.next.IsZero() {
		t.Errorf("first attempt's span ended with %+v", c)
	}
	if c := calls[1]; c.status != 200 || c.state != "delivered" || !c.next.IsZero() {
		t.Errorf("second attempt's span ended with %+v", c)
	}
	for i, r := range tg.requests() {
		if tp := r.Header.Get("Traceparent"); tp != "00-0000000000000000000000000000000"+string(rune('1'+i))+"-00f067aa0ba902b7-01" {
			t.Errorf("attempt %d sent traceparent %q, want its own span's", i+1, tp)
		}
		if ts := r.Header.Get("Tracestate"); ts != "" {
			t.Errorf("attempt %d sent the stored tracestate %q", i+1, ts)
		}
	}
}

// TestTraceFieldCompatible: a record written before Delivery.Trace
// existed reads with an empty Trace, and a record with it keeps it.
func TestTraceFieldCompatible(t *testing.T) {
	q := openQueue(t, newClock())
	id, _, err := q.Enqueue(ctx, sample("/hooks/*", "http://127.0.0.1:1/h", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := q.Get(id); d.Trace != "" {
		t.Errorf("trace %q without tracing", d.Trace)
	}
	old := []byte(`{"id":"01J00000000000000000000000","route":"/r","method":"POST","url":"http://127.0.0.1:1/","header":{},"body_bytes":0,"state":"pending","accepted_at":"2026-03-01T12:00:00Z"}`)
	var d Delivery
	if err := json.Unmarshal(old, &d); err != nil || d.Trace != "" || d.Route != "/r" {
		t.Errorf("old record: %+v, %v", d, err)
	}
	d.Trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-a3ce929d0e0e4736-01"
	b, _ := json.Marshal(&d)
	var back Delivery
	if err := json.Unmarshal(b, &back); err != nil || back.Trace != d.Trace {
		t.Errorf("round trip: %q, %v", back.Trace, err)
	}
	withTrace := sample("/hooks/*", "http://127.0.0.1:1/h", "k2")
	withTrace.Trace = d.Trace
	id, _, err = q.Enqueue(ctx, withTrace)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Get(id); got.Trace != d.Trace {
		t.Errorf("stored trace %q, want %q", got.Trace, d.Trace)
	}
}
