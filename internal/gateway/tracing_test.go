package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/drawbridge/drawbridge/internal/accesslog"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/tracing"
)

// newTestTracer is a tracer exporting into memory (the SDK's own
// in-memory exporter, behind the real queue); spans returns what it
// exported once everything queued was flushed.
func newTestTracer(t testing.TB, ratio float64) (*tracing.Tracer, func() tracetest.SpanStubs) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	r := config.Number(ratio)
	tr, err := tracing.New(&config.Tracing{OTLPEndpoint: "http://127.0.0.1:1", ServiceName: "drawbridge", SampleRatio: &r}, nil, tracing.Options{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(context.Background()) })
	return tr, func() tracetest.SpanStubs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tr.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return exp.GetSpans()
	}
}

const clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// TestTraceparentTrust: a client's traceparent is continued only from a
// trusted proxy. From anyone else the request starts a new trace: the
// client's trace id reaches neither the target nor any span, and the
// target receives the gateway's upstream span, not the client's header.
func TestTraceparentTrust(t *testing.T) {
	for _, lean := range []bool{true, false} {
		forwarder := "reverseproxy"
		if lean {
			forwarder = "lean"
		}
		t.Run(forwarder, func(t *testing.T) {
			b := newBackend(t, nil)
			tr, spans := newTestTracer(t, 1)
			g, _ := buildFor(t, `
server: {forwarder: `+forwarder+`}
client_ip: {trusted_proxies: [192.0.2.0/24]}
routes:
  - {path: "/users/{id}", target: "{T}/u/{id}"}
`, b.URL, Deps{Tracer: tr}, nil)
			send := func(peer string) seen {
				r := httptest.NewRequest("GET", "/users/7", nil)
				r.RemoteAddr = peer
				r.Header.Set("Traceparent", "00-"+clientTraceID+"-00f067aa0ba902b7-01")
				r.Header.Set("Tracestate", "congo=t61rcWkgMzE")
				w := httptest.NewRecorder()
				g.ServeHTTP(w, r)
				if w.Code != 200 {
					t.Fatalf("peer %s: %d", peer, w.Code)
				}
				return b.last(t)
			}

			untrusted := send("198.51.100.1:1234")
			tp := untrusted.Header.Get("Traceparent")
			if tp == "" || strings.Contains(tp, clientTraceID) {
				t.Errorf("untrusted peer: target got traceparent %q, want the gateway's new trace", tp)
			}
			if ts := untrusted.Header.Get("Tracestate"); ts != "" {
				t.Errorf("untrusted peer: target got tracestate %q", ts)
			}
			got := spans()
			for _, s := range got {
				if s.SpanContext.TraceID().String() == clientTraceID || s.Parent.TraceID().String() == clientTraceID {
					t.Errorf("span %q carries the untrusted client's trace id", s.Name)
				}
			}
			up := find(t, got, "GET", trace.SpanKindClient)
			if want := "00-" + up.SpanContext.TraceID().String() + "-" + up.SpanContext.SpanID().String() + "-01"; tp != want {
				t.Errorf("target got %q, want the upstream span's %q", tp, want)
			}
			srv := find(t, got, "GET /users/{id}", trace.SpanKindServer)
			if srv.Parent.IsValid() {
				t.Errorf("untrusted peer: server span has parent %v, want a root", srv.Parent)
			}
			if up.Parent.SpanID() != srv.SpanContext.SpanID() {
				t.Errorf("upstream span's parent %v, want the server span %v", up.Parent.SpanID(), srv.SpanContext.SpanID())
			}

			trusted := send("192.0.2.10:1234")
			tp = trusted.Header.Get("Traceparent")
			if !strings.HasPrefix(tp, "00-"+clientTraceID+"-") || strings.Contains(tp, "00f067aa0ba902b7") {
				t.Errorf("trusted proxy: target got traceparent %q, want the proxy's trace continued with the gateway's span", tp)
			}
			if ts := trusted.Header.Get("Tracestate"); ts != "congo=t61rcWkgMzE" {
				t.Errorf("trusted proxy: tracestate %q, want the proxy's", ts)
			}
			srv = find(t, spans(), "GET /users/{id}", trace.SpanKindServer)
			if srv.SpanContext.TraceID().String() != clientTraceID || srv.Parent.SpanID().String() != "00f067aa0ba902b7" {
				t.Errorf("trusted proxy: server span trace %s parent %s, want the proxy's", srv.SpanContext.TraceID(), srv.Parent.SpanID())
			}
		})
	}
}

// find returns the last span named name of kind.
func find(t *testing.T, spans tracetest.SpanStubs, name string, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	for i := len(spans) - 1; i >= 0; i-- {
		if spans[i].Name == name && spans[i].SpanKind == kind {
			return spans[i]
		}
	}
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	t.Fatalf("no %v span %q among %q", kind, name, names)
	return tracetest.SpanStub{}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// TestTraceGuardSpans: every guard step that decided has a child span
// with its rule and outcome; skipped steps have none; the server span
// names the route template and carries the status, the client and the
// outcome; the access line has the trace and span ids.
func TestTraceGuardSpans(t *testing.T) {
	b := newBackend(t, nil)
	tr, spans := newTestTracer(t, 1)
	var log strings.Builder
	g, _ := buildFor(t, `
usage_plans: {p: {throttle: {rate: 100, burst: 100}}}
api_keys: [{name: k, plan: p, sha256: `+digest(keyA)+`}]
routes:
  - {path: /a, target: "{T}/a", api_key_required: true}
`, b.URL, Deps{Tracer: tr, Log: slog.New(accesslog.New(&log))}, nil)
	r := httptest.NewRequest("GET", "/a", nil)
	r.RemoteAddr = "198.51.100.9:1"
	w := httptest.NewRecorder()
	g.ServeHTTP(w, r)
	if w.Code != 403 {
		t.Fatalf("no key: %d", w.Code)
	}
	got := spans()
	srv := find(t, got, "GET /a", trace.SpanKindServer)
	key := find(t, got, "guard api_key", trace.SpanKindInternal)
	if key.Parent.SpanID() != srv.SpanContext.SpanID() {
		t.Error("guard span is not the request span's child")
	}
	if o, r := attr(key, "drawbridge.guard.outcome"), attr(key, "drawbridge.guard.rule"); o != "key_rejected" || r != "api_key" {
		t.Errorf("api_key span: outcome %q rule %q", o, r)
	}
	lim := find(t, got, "guard limits", trace.SpanKindInternal)
	if attr(lim, "drawbridge.guard.outcome") != "allow" {
		t.Errorf("limits span outcome %q, want allow", attr(lim, "drawbridge.guard.outcome"))
	}
	for _, s := range got {
		if s.Name == "guard allow_ips" || s.Name == "guard throttle" {
			t.Errorf("span %q for a step that did not run or decide", s.Name)
		}
	}
	for k, want := range map[string]string{"http.request.method": "GET", "http.route": "/a", "http.response.status_code": "403",
		"client.address": "198.51.100.9", "drawbridge.outcome": "key_rejected", "drawbridge.guard": "api_key"} {
		if v := attr(srv, k); v != want {
			t.Errorf("server span %s = %q, want %q", k, v, want)
		}
	}
	line := log.String()
	if !strings.Contains(line, `"trace_id":"`+srv.SpanContext.TraceID().String()+`"`) || !strings.Contains(line, `"span_id":"`+srv.SpanContext.SpanID().String()+`"`) {
		t.Errorf("access line without the span's ids: %s", line)
	}
}

// TestTraceCollectorDown: a collector that accepts connections and never
// answers neither slows nor fails a request. Requests go round robin to
// three gateways on one backend, so all see the same machine: tracing
// off, tracing to a collector that answers at once, and tracing to the
// hung one. The hung collector's median must stay within noise of the
// healthy one's (what tracing itself costs is BenchmarkGuardsTraced's
// business), no request may come near the export timeout, and the spans
// that found the queue full are counted.
func TestTraceCollectorDown(t *testing.T) {
	stop := make(chan struct{})
	hole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer hole.Close()
	defer close(stop)
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer healthy.Close()

	b := newBackend(t, nil)
	const yaml = `
routes:
  - {path: /a, target: "{T}/a", throttle: {rate: 1000000, burst: 1000000}}
`
	opts := tracing.Options{QueueSize: 16, BatchSize: 8, Interval: time.Millisecond, ExportTimeout: time.Hour}
	gateway := func(collector string) (*Gateway, *metrics.Metrics) {
		m := metrics.New()
		tr, err := tracing.New(&config.Tracing{OTLPEndpoint: collector, ServiceName: "drawbridge"}, m.Registry, opts)
		if err != nil {
			t.Fatal(err)
		}
		// Shutdown cannot finish an export that never ends; bound it.
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			tr.Shutdown(ctx)
		})
		return buildFor(t, yaml, b.URL, Deps{Tracer: tr, Metrics: m}, nil)
	}
	hung, hungMetrics := gateway(hole.URL)
	ok, _ := gateway(healthy.URL)
	plain, _ := buildFor(t, yaml, b.URL, Deps{}, nil)

	const n = 300
	gws := []*Gateway{plain, ok, hung}
	lat := make([][]time.Duration, len(gws))
	for i := range len(gws) * n {
		k := i % len(gws)
		r := httptest.NewRequest("GET", "/a", nil)
		w := httptest.NewRecorder()
		t0 := time.Now()
		gws[k].ServeHTTP(w, r)
		lat[k] = append(lat[k], time.Since(t0))
		if w.Code != 200 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	mOff, mOK, mHung := median(lat[0]), median(lat[1]), median(lat[2])
	t.Logf("median latency: tracing off %v; on, collector answering %v; on, collector never answering %v (slowest %v)", mOff, mOK, mHung, slices.Max(lat[2]))
	if mHung > 2*mOK+time.Millisecond {
		t.Errorf("median latency with a hung collector %v, with one that answers %v", mHung, mOK)
	}
	if worst := slices.Max(lat[2]); worst > 5*time.Second {
		t.Errorf("a request took %v with a hung collector", worst)
	}
	dropped := testutil.ToFloat64(dropCounter(t, hungMetrics, "queue_full"))
	if dropped < n {
		t.Errorf("queue_full drops = %v for %d traced requests of several spans each into a queue of 16", dropped, n)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// dropCounter finds drawbridge_trace_spans_dropped_total{reason} on m's
// registry, as a scrape would.
func dropCounter(t *testing.T, m *metrics.Metrics, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "drawbridge_trace_spans_dropped_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
					c.Add(mt.GetCounter().GetValue())
					return c
				}
			}
		}
	}
	t.Fatalf("no drawbridge_trace_spans_dropped_total{reason=%q} in the registry", reason)
	return nil
}

// TestTraceLambdaXRay: inside Lambda, API Gateway's X-Amzn-Trace-Id is
// linked from the request span (and kept as an attribute); outside
// Lambda the same header is the client's, and ignored.
func TestTraceLambdaXRay(t *testing.T) {
	const xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	for _, inLambda := range []bool{true, false} {
		exp := tracetest.NewInMemoryExporter()
		tr, err := tracing.New(&config.Tracing{OTLPEndpoint: "http://127.0.0.1:1", ServiceName: "drawbridge"}, nil, tracing.Options{Exporter: exp, Lambda: inLambda})
		if err != nil {
			t.Fatal(err)
		}
		b := newBackend(t, nil)
		g, _ := buildFor(t, "routes: [{path: /a, target: \"{T}/a\"}]", b.URL, Deps{Tracer: tr}, nil)
		r := httptest.NewRequest("GET", "/a", nil)
		r.Header.Set("X-Amzn-Trace-Id", xray)
		g.ServeHTTP(httptest.NewRecorder(), r)
		if err := tr.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		srv := find(t, exp.GetSpans(), "GET /a", trace.SpanKindServer)
		tr.Shutdown(context.Background())
		linked := len(srv.Links) == 1 && srv.Links[0].SpanContext.TraceID().String() == "5759e988bd862e3fe1be46a994272793" &&
			srv.Links[0].SpanContext.SpanID().String() == "53995c3f42cd8ad8"
		if linked != inLambda || (attr(srv, "aws.xray.trace_header") == xray) != inLambda {
			t.Errorf("lambda %v: links %v, aws.xray.trace_header %q", inLambda, srv.Links, attr(srv, "aws.xray.trace_header"))
		}
		if srv.SpanContext.TraceID().String() == "5759e988bd862e3fe1be46a994272793" {
			t.Errorf("lambda %v: the X-Ray trace was continued, not linked", inLambda)
		}
	}
}

// TestTraceAbortedAnswer: a target whose body breaks off mid-answer makes
// the gateway abort the client's response (http.ErrAbortHandler); the
// request and upstream spans still end, the upstream one as an error.
func TestTraceAbortedAnswer(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		io.WriteString(w, "only ten b")
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	tr, spans := newTestTracer(t, 1)
	g, _ := buildFor(t, "routes: [{path: /a, target: \"{T}/a\"}]", b.URL, Deps{Tracer: tr}, nil)
	front := httptest.NewServer(g)
	defer front.Close()
	resp, err := http.Get(front.URL + "/a")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	got := spans()
	srv := find(t, got, "GET /a", trace.SpanKindServer)
	up := find(t, got, "GET", trace.SpanKindClient)
	if attr(up, "error.type") != "aborted" || up.Parent.SpanID() != srv.SpanContext.SpanID() {
		t.Errorf("upstream span of an aborted answer: error.type %q", attr(up, "error.type"))
	}
}
