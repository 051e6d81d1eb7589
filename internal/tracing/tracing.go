// Package tracing exports OpenTelemetry traces of requests, guard
// decisions, upstream exchanges and delivery attempts over OTLP/HTTP
// (docs/tracing.md).
//
// It is the only package that imports OpenTelemetry. The gateway and the
// delivery worker hold a *Tracer that is nil when tracing: is absent, and
// test that pointer before anything else: tracing off costs one nil check
// per request, no exporter, no goroutine and no allocation.
//
// Spans never wait on the collector. They go through a bounded queue
// (batcher) to one exporting goroutine; a span that finds the queue full
// is dropped and counted in drawbridge_trace_spans_dropped_total, as is
// every span of a batch the collector did not take.
package tracing

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/prometheus/client_golang/prometheus"
)

// Options tune a Tracer beyond its config. The zero value is what serve
// uses.
type Options struct {
	// Lambda reads API Gateway's X-Amzn-Trace-Id into each request span's
	// links and attributes. Only inside Lambda does that header come from
	// AWS rather than from the client.
	Lambda bool
	// Version is the service.version resource attribute ("": none).
	Version string
	// QueueSize bounds the spans waiting for export. Zero: 2048, the
	// OpenTelemetry SDK's default.
	QueueSize int
	// BatchSize is the most spans one export sends. Zero: 512.
	BatchSize int
	// Interval is the longest a span waits for its batch to fill. Zero: 1s.
	Interval time.Duration
	// ExportTimeout bounds one export, and so how long a collector that
	// never answers holds the exporting goroutine. Zero: 10s.
	ExportTimeout time.Duration
	// Exporter replaces the OTLP/HTTP exporter (tests of the queue). Nil:
	// OTLP/HTTP to the config's endpoint.
	Exporter sdktrace.SpanExporter
}

// Tracer makes drawbridge's spans. It lives for the process: a reload
// keeps it (docs/tracing.md#reload).
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	batch    *batcher
	lambda   bool
	prop     propagation.TraceContext
}

// New builds the tracer for cfg and registers its counters on reg. The
// exporter connects lazily: New does no network I/O.
func New(cfg *config.Tracing, reg prometheus.Registerer, opts Options) (*Tracer, error) {
	exp := opts.Exporter
	if exp == nil {
		var err error
		if exp, err = newExporter(cfg, opts); err != nil {
			return nil, err
		}
	}
	m := newCounters()
	if reg != nil {
		for _, c := range []prometheus.Collector{m.dropped, m.exported} {
			if err := reg.Register(c); err != nil {
				if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
					// A second tracer in one process (tests): count into
					// the first one's series.
					switch c {
					case m.dropped:
						m.dropped = are.ExistingCollector.(*prometheus.CounterVec)
					case m.exported:
						m.exported = are.ExistingCollector.(prometheus.Counter)
					}
					continue
				}
				return nil, err
			}
		}
	}
	b := newBatcher(exp, m, opts)
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.ServiceName), semconv.TelemetrySDKLanguageGo, semconv.TelemetrySDKName("opentelemetry")}
	if opts.Version != "" {
		attrs = append(attrs, semconv.ServiceVersion(opts.Version))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio()))),
		sdktrace.WithSpanProcessor(b),
		sdktrace.WithResource(sdkresource.NewWithAttributes(semconv.SchemaURL, attrs...)),
	)
	return &Tracer{provider: tp, tracer: tp.Tracer("github.com/drawbridge/drawbridge"), batch: b, lambda: opts.Lambda}, nil
}

// newExporter is the OTLP/HTTP exporter to cfg's endpoint: retries off
// (a batch the collector refused is dropped and counted, never re-queued
// ahead of newer spans), each export bounded by ExportTimeout.
func newExporter(cfg *config.Tracing, opts Options) (sdktrace.SpanExporter, error) {
	u, err := url.Parse(cfg.OTLPEndpoint)
	if err != nil {
		return nil, fmt.Errorf("tracing.otlp_endpoint: %w", err)
	}
	if u.Path == "" || u.Path == "/" {
		// A base URL, as OTEL_EXPORTER_OTLP_ENDPOINT: the signal's path
		// is appended.
		u.Path = "/v1/traces"
	}
	timeout := opts.ExportTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	o := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(u.String()),
		otlptracehttp.WithTimeout(timeout),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
	}
	if h := cfg.Headers(); len(h) > 0 {
		// Otherwise the exporter reads OTEL_EXPORTER_OTLP_HEADERS itself.
		o = append(o, otlptracehttp.WithHeaders(h))
	}
	return otlptracehttp.New(context.Background(), o...)
}

// Shutdown exports what is queued, within ctx, and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Flush exports what is queued, within ctx.
func (t *Tracer) Flush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.ForceFlush(ctx)
}

// Request is one request's server span and what its children need.
type Request struct {
	t    *Tracer
	ctx  context.Context // holds span: the parent of the children
	span trace.Span
}

// Start begins the server span of r at start. trusted says whether the
// peer is a trusted proxy (client_ip.trusted_proxies): only then are its
// traceparent and tracestate continued; otherwise the request starts a new
// trace and the client's header is not passed on (the target receives the
// gateway's).
func (t *Tracer) Start(r *http.Request, trusted bool, start time.Time) *Request {
	ctx := context.Background()
	if trusted {
		ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	o := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start)}
	if t.lambda {
		o = append(o, lambdaLinks(r)...)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	o = append(o, trace.WithAttributes(
		semconv.HTTPRequestMethodKey.String(httpMethod(r.Method)),
		semconv.URLPath(r.URL.EscapedPath()),
		semconv.URLScheme(scheme),
		semconv.ServerAddress(r.Host),
		semconv.NetworkPeerAddress(peerHost(r.RemoteAddr)),
		semconv.NetworkProtocolVersion(protoVersion(r)),
	))
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		o = append(o, trace.WithAttributes(semconv.UserAgentOriginal(ua[0])))
	}
	ctx, span := t.tracer.Start(ctx, methodName(r.Method), o...)
	return &Request{t: t, ctx: ctx, span: span}
}

// IDs are the trace and span ids of the request's span, in hex, for the
// access line; "" when it has none.
func (q *Request) IDs() (traceID, spanID string) {
	sc := q.span.SpanContext()
	if !sc.IsValid() {
		return "", ""
	}
	return sc.TraceID().String(), sc.SpanID().String()
}

// Step records one guard step that decided: a child span from start to
// end named after the step, with the rule that decided and the outcome
// ("allow", or the rejection's outcome such as "throttled").
func (q *Request) Step(name, rule, outcome string, start, end time.Time) {
	attrs := [3]attribute.KeyValue{
		attribute.String("drawbridge.guard.name", name),
		attribute.String("drawbridge.guard.outcome", outcome),
	}
	n := 2
	if rule != "" {
		attrs[2], n = attribute.String("drawbridge.guard.rule", rule), 3
	}
	_, s := q.t.tracer.Start(q.ctx, "guard "+name, trace.WithTimestamp(start), trace.WithAttributes(attrs[:n]...))
	if outcome != "allow" {
		s.SetStatus(codes.Error, outcome)
	}
	s.End(trace.WithTimestamp(end))
}

// Child is a span under the request: the upstream exchange or the async
// accept.
type Child struct {
	span trace.Span
}

// Upstream begins the client span of the exchange with the target of
// method and target URL. The query is left out of url.full: it may carry
// tokens or signatures, and spans go to a third party (Traefik redacts
// query values by default for the same reason).
func (q *Request) Upstream(method, target string) *Child {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	o := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		semconv.HTTPRequestMethodKey.String(httpMethod(method)),
		semconv.URLFull(target),
	)}
	if u, err := url.Parse(target); err == nil {
		o = append(o, trace.WithAttributes(semconv.ServerAddress(u.Hostname()), semconv.ServerPort(port(u))))
	}
	_, s := q.t.tracer.Start(q.ctx, methodName(method), o...)
	return &Child{span: s}
}

// Accept begins the span of an async route's accept (persist, fsync,
// 202): a producer span, as the semantic conventions name the hand-off of
// a message that is consumed later.
func (q *Request) Accept(route string) *Child {
	_, s := q.t.tracer.Start(q.ctx, "accept "+route, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("drawbridge.route", route)))
	return &Child{span: s}
}

// TraceParent is the span's W3C traceparent, the one the target receives
// (or the stored delivery keeps for its attempts' links).
func (c *Child) TraceParent() string { return traceparent(c.span.SpanContext()) }

// TraceState is the span's tracestate (a trusted proxy's, carried on), or "".
func (c *Child) TraceState() string { return c.span.SpanContext().TraceState().String() }

// Timing is what the forwarder measured of one exchange.
type Timing struct {
	Reused    bool      // a kept-alive connection: no dial
	DialStart time.Time // zero when reused
	DialEnd   time.Time
	FirstByte time.Time // the answer's head arrived; zero: no answer
}

// EndUpstream ends the exchange's span: dial and time to first byte as
// attributes and events, the target's status (0: none), the error that
// ended it (nil: none) and its kind for error.type (the outcome, such as
// upstream_timeout).
func (c *Child) EndUpstream(tm Timing, status int, errType string, err error) {
	s := c.span
	s.SetAttributes(attribute.Bool("drawbridge.upstream.reused", tm.Reused))
	if !tm.DialStart.IsZero() {
		s.AddEvent("dial", trace.WithTimestamp(tm.DialStart))
		if !tm.DialEnd.IsZero() {
			s.AddEvent("connected", trace.WithTimestamp(tm.DialEnd))
			s.SetAttributes(attribute.Float64("drawbridge.upstream.dial_ms", ms(tm.DialEnd.Sub(tm.DialStart))))
		}
	}
	if !tm.FirstByte.IsZero() {
		s.AddEvent("first byte", trace.WithTimestamp(tm.FirstByte))
		if st := spanStart(s); !st.IsZero() {
			s.SetAttributes(attribute.Float64("drawbridge.upstream.ttfb_ms", ms(tm.FirstByte.Sub(st))))
		}
	}
	if status != 0 {
		s.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	switch {
	case err != nil:
		s.SetAttributes(semconv.ErrorTypeKey.String(errType))
		s.SetStatus(codes.Error, err.Error())
	case status >= 400:
		// A client span's 4xx is an error too (HTTP semantic conventions).
		s.SetAttributes(semconv.ErrorTypeKey.String(fmt.Sprint(status)))
		s.SetStatus(codes.Error, "")
	}
	s.End()
}

// EndAccept ends the accept span with the delivery id it stored, or the
// error that made it a 503.
func (c *Child) EndAccept(id string, duplicate bool, err error) {
	s := c.span
	if id != "" {
		s.SetAttributes(attribute.String("drawbridge.delivery.id", id), attribute.Bool("drawbridge.delivery.duplicate", duplicate))
	}
	if err != nil {
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
}

// End ends the request's span: named after the matched route's template,
// as the HTTP semantic conventions ask ("GET /users/{id}"; route "" when
// none matched), with the answer's status, the client's address and the
// outcome (docs/design.md#answers-and-outcomes). A 5xx is an error; a 4xx
// is not, on a server span.
func (q *Request) End(method, route string, status int, client, outcome, guard string, end time.Time) {
	s := q.span
	var a [6]attribute.KeyValue
	attrs := a[:0]
	if outcome != "" { // "" when the answer was aborted mid-body
		attrs = append(attrs, attribute.String("drawbridge.outcome", outcome))
	}
	if route != "" {
		s.SetName(methodName(method) + " " + route)
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	if status != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	}
	if client != "" {
		attrs = append(attrs, semconv.ClientAddress(client))
	}
	if guard != "" {
		attrs = append(attrs, attribute.String("drawbridge.guard", guard))
	}
	if status >= 500 {
		attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(status)))
		s.SetStatus(codes.Error, outcome)
	}
	s.SetAttributes(attrs...)
	s.End(trace.WithTimestamp(end))
}

// Attempt starts the span of one delivery attempt: a trace of its own,
// linked to the accepting request's span (accepted, a stored traceparent;
// "" from a delivery stored without tracing: no link). It returns the
// traceparent the target receives and the function that ends the span.
func (t *Tracer) Attempt(route, id, accepted string, attempt int) (string, func(status int, err error, state string, next time.Time)) {
	o := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("drawbridge.route", route),
		attribute.String("drawbridge.delivery.id", id),
		attribute.Int("drawbridge.delivery.attempt", attempt),
		semconv.HTTPRequestResendCount(attempt-1),
	)}
	if sc, ok := parseTraceparent(accepted); ok {
		o = append(o, trace.WithLinks(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
			attribute.String("drawbridge.link", "accepted"),
		}}))
	}
	_, s := t.tracer.Start(context.Background(), "deliver "+route, o...)
	return traceparent(s.SpanContext()), func(status int, err error, state string, next time.Time) {
		s.SetAttributes(attribute.String("drawbridge.delivery.state", state))
		if status != 0 {
			s.SetAttributes(semconv.HTTPResponseStatusCode(status))
		}
		if !next.IsZero() {
			s.SetAttributes(attribute.String("drawbridge.delivery.next_retry", next.UTC().Format(time.RFC3339Nano)))
		}
		if err != nil || status >= 400 || status == 0 {
			if err != nil {
				s.SetStatus(codes.Error, err.Error())
			} else {
				s.SetStatus(codes.Error, fmt.Sprint(status))
			}
		}
		s.End()
	}
}

// traceparent formats sc as a W3C traceparent (version 00), "" when
// invalid.
func traceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [55]byte
	copy(b[:], "00-")
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	flags := sc.TraceFlags()
	hex.Encode(b[53:55], []byte{byte(flags)})
	return string(b[:])
}

// parseTraceparent reads a traceparent this package wrote (a stored
// delivery's link) as a remote span context.
func parseTraceparent(s string) (trace.SpanContext, bool) {
	if s == "" {
		return trace.SpanContext{}, false
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": s})
	sc := trace.SpanContextFromContext(ctx)
	return sc, sc.IsValid()
}

// lambdaLinks reads API Gateway's X-Amzn-Trace-Id (Root=1-…-…;
// Parent=…;Sampled=…): X-Ray's trace and segment ids are W3C-sized, so
// the segment becomes a link to the span context they name, and the raw
// header an attribute.
func lambdaLinks(r *http.Request) []trace.SpanStartOption {
	h := r.Header.Get("X-Amzn-Trace-Id")
	if h == "" {
		return nil
	}
	o := []trace.SpanStartOption{trace.WithAttributes(attribute.String("aws.xray.trace_header", h))}
	if sc, ok := xraySpanContext(h); ok {
		o = append(o, trace.WithLinks(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
			attribute.String("drawbridge.link", "x-amzn-trace-id"),
		}}))
	}
	return o
}

// xraySpanContext converts an X-Ray trace header, as OpenTelemetry's
// X-Ray propagator does: Root 1-{8 hex epoch}-{24 hex} is the 32-hex trace
// id, Parent the span id.
func xraySpanContext(h string) (trace.SpanContext, bool) {
	var root, parent string
	sampled := false
	for part := range strings.SplitSeq(h, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Root":
			root = v
		case "Parent":
			parent = v
		case "Sampled":
			sampled = v == "1"
		}
	}
	if len(root) != 35 || root[:2] != "1-" || root[10] != '-' {
		return trace.SpanContext{}, false
	}
	tid, err := trace.TraceIDFromHex(root[2:10] + root[11:])
	if err != nil {
		return trace.SpanContext{}, false
	}
	cfg := trace.SpanContextConfig{TraceID: tid, Remote: true}
	if sid, err := trace.SpanIDFromHex(parent); err == nil {
		cfg.SpanID = sid
	} else {
		// A link needs a span id; X-Ray's root segment has none here.
		cfg.SpanID = trace.SpanID{0, 0, 0, 0, 0, 0, 0, 1}
	}
	if sampled {
		cfg.TraceFlags = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(cfg)
	return sc, sc.IsValid()
}

// method is the request method for http.request.method: a known one as
// sent, any other "_OTHER", as the semantic conventions ask (an
// attacker's made-up method must not make new values).
func httpMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// methodName is the method as a span name's first word: "HTTP" for
// "_OTHER".
func methodName(m string) string {
	if m = httpMethod(m); m == "_OTHER" {
		return "HTTP"
	}
	return m
}

func peerHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

func protoVersion(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "2"
	}
	return fmt.Sprintf("%d.%d", r.ProtoMajor, r.ProtoMinor)
}

func port(u *url.URL) int {
	if p := u.Port(); p != "" {
		var n int
		fmt.Sscan(p, &n)
		return n
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// spanStart is when s started, when the SDK says so.
func spanStart(s trace.Span) time.Time {
	if ro, ok := s.(sdktrace.ReadOnlySpan); ok {
		return ro.StartTime()
	}
	return time.Time{}
}
