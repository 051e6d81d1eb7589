package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/drawbridge/drawbridge/internal/config"
)

// blackHole is a collector that accepts connections and never answers
// until the test ends.
func blackHole(t *testing.T) string {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv.URL
}

// TestCollectorNeverAnswers: with the collector hanging, ending spans
// never waits: the queue fills, the rest are dropped and counted, and
// the stuck batch counts as export_failed once its timeout passes.
func TestCollectorNeverAnswers(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr, err := New(&config.Tracing{OTLPEndpoint: blackHole(t), ServiceName: "drawbridge"}, reg,
		Options{QueueSize: 8, BatchSize: 4, Interval: time.Millisecond, ExportTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tr.Shutdown(ctx)
	}()
	const n = 1000
	start := time.Now()
	for range n {
		_, s := tr.tracer.Start(context.Background(), "x")
		s.End()
	}
	// A thousand spans against a collector that holds every export for
	// 200ms: if ending a span waited on the export even once per batch,
	// this would take 50 s.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ending %d spans took %v: spans wait on the collector", n, d)
	}
	full := tr.batch.full
	if got := testutil.ToFloat64(full); got < n-8-4*2 {
		t.Errorf("queue_full drops = %v, want nearly all of %d", got, n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(tr.batch.failed) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the unanswered batch was never counted as export_failed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c, err := testutil.GatherAndCount(reg, "drawbridge_trace_spans_dropped_total"); err != nil || c != 2 {
		t.Errorf("drawbridge_trace_spans_dropped_total series = %d (%v), want queue_full and export_failed", c, err)
	}
}

// TestExportToCollectorThatAnswers: a collector that answers 200 gets
// the spans, counted as exported; one that answers 503 counts them as
// export_failed (no retry: a refused batch is not queued again).
func TestExportStatus(t *testing.T) {
	for _, c := range []struct {
		status           int
		exported, failed float64
	}{{200, 3, 0}, {503, 0, 3}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("Authorization") != "Bearer s3cret" {
				t.Errorf("export %s %s %q %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"))
			}
			w.WriteHeader(c.status)
		}))
		defer srv.Close()
		full, err := config.Parse("t.yaml", []byte(`
tracing: {otlp_endpoint: "`+srv.URL+`", headers_env: {authorization: TOKEN}}
routes: [{path: /, target: "http://127.0.0.1:1/"}]
`), func(k string) (string, bool) { return "Bearer s3cret", k == "TOKEN" })
		if err != nil {
			t.Fatal(err)
		}
		tr, err := New(full.Tracing, prometheus.NewRegistry(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			_, s := tr.tracer.Start(context.Background(), "x")
			s.End()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := tr.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if e, f := testutil.ToFloat64(tr.batch.m.exported), testutil.ToFloat64(tr.batch.failed); e != c.exported || f != c.failed {
			t.Errorf("collector answering %d: exported %v failed %v, want %v %v", c.status, e, f, c.exported, c.failed)
		}
	}
}

// TestUnsampledNotQueued: at ratio 0 a new trace is not recorded, so
// nothing is queued, but its span context is still valid (the target
// receives a traceparent with the sampled flag off).
func TestUnsampledNotQueued(t *testing.T) {
	zero := config.Number(0)
	tr, err := New(&config.Tracing{OTLPEndpoint: blackHole(t), ServiceName: "drawbridge", SampleRatio: &zero}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	r := httptest.NewRequest("GET", "/", nil)
	q := tr.Start(r, false, time.Now())
	up := q.Upstream("GET", "http://127.0.0.1:1/")
	tp := up.TraceParent()
	up.EndUpstream(Timing{}, 200, "", nil)
	q.End("GET", "/", 200, "", "forwarded", "", time.Now())
	if len(tp) != 55 || tp[53:] != "00" {
		t.Errorf("unsampled traceparent %q, want flags 00", tp)
	}
	if n := len(tr.batch.queue); n != 0 {
		t.Errorf("%d unsampled spans queued", n)
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	tp := traceparent(sc)
	if tp != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent %q", tp)
	}
	back, ok := parseTraceparent(tp)
	if !ok || back.TraceID() != sc.TraceID() || back.SpanID() != sc.SpanID() || !back.IsSampled() {
		t.Errorf("parsed back %v %v", back, ok)
	}
	for _, bad := range []string{"", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "garbage"} {
		if _, ok := parseTraceparent(bad); ok {
			t.Errorf("parseTraceparent(%q) ok", bad)
		}
	}
	if traceparent(trace.SpanContext{}) != "" {
		t.Error("invalid span context formatted")
	}
}

// TestXRay: API Gateway's X-Amzn-Trace-Id becomes a link to the X-Ray
// trace, with the ids the OpenTelemetry X-Ray propagator derives.
func TestXRay(t *testing.T) {
	sc, ok := xraySpanContext("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
	if !ok || sc.TraceID().String() != "5759e988bd862e3fe1be46a994272793" || sc.SpanID().String() != "53995c3f42cd8ad8" || !sc.IsSampled() {
		t.Errorf("xray: %v %v", sc, ok)
	}
	if _, ok := xraySpanContext("Root=1-5759e988-bd862e3fe1be46a99427279;Sampled=1"); ok {
		t.Error("short root accepted")
	}
	if sc, ok := xraySpanContext("Root=1-5759e988-bd862e3fe1be46a994272793"); !ok || !sc.SpanID().IsValid() {
		t.Error("root without parent: no link")
	}
}

// TestUnknownMethod: a method outside HTTP's own is recorded as _OTHER and
// names the span "HTTP", so invented methods mint neither attribute
// values nor span names (HTTP semantic conventions).
func TestUnknownMethod(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := New(&config.Tracing{OTLPEndpoint: "http://127.0.0.1:1", ServiceName: "drawbridge"}, nil, Options{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	r := httptest.NewRequest("GET", "/x?token=secret", nil)
	r.Method = "XYZZY"
	q := tr.Start(r, false, time.Now())
	up := q.Upstream("XYZZY", "http://10.0.0.1:8080/x?token=secret")
	up.EndUpstream(Timing{}, 200, "", nil)
	q.End("XYZZY", "/x", 200, "", "forwarded", "", time.Now())
	tr.Flush(context.Background())
	for _, s := range exp.GetSpans() {
		if s.Name != "HTTP" && s.Name != "HTTP /x" {
			t.Errorf("span name %q", s.Name)
		}
		for _, a := range s.Attributes {
			if a.Key == "http.request.method" && a.Value.AsString() != "_OTHER" {
				t.Errorf("%s: http.request.method %q", s.Name, a.Value.AsString())
			}
			if strings.Contains(a.Value.Emit(), "secret") {
				t.Errorf("%s: %s carries the query: %s", s.Name, a.Key, a.Value.Emit())
			}
		}
	}
}
