// Package gateway is drawbridge's request path: one http.Handler that
// normalises, routes, runs the guards cheapest-first and dispatches, the
// same whether net/http or the Lambda adapter calls it
// (docs/design.md#one-request-end-to-end).
//
// Build compiles a config once (route table, policy matcher, keys and
// buckets, error bodies as ready bytes, metric children); ServeHTTP then
// reads the clock once, fills one call and walks it through the flat step
// list of guards.go, the one place the guard order is written. The first
// rejection goes to render, the only place that writes an error; one
// deferred finish records metrics and the access line. Explain
// (explain.go) runs the same steps in a dry call.
package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/accesslog"
	"github.com/drawbridge/drawbridge/internal/authorizer"
	"github.com/drawbridge/drawbridge/internal/body"
	"github.com/drawbridge/drawbridge/internal/clientip"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/policy"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/tracing"
	"github.com/prometheus/client_golang/prometheus"
)

// Deps are what a Gateway needs from outside its config.
type Deps struct {
	Metrics *metrics.Metrics // required; lives across reloads
	Log     *slog.Logger     // nil: discard
	// Now is the clock the guards see (throttle refills, quota periods,
	// policy aws:CurrentTime, signature timestamps), for tests that move
	// time by hand. Nil: the request's start. Deadlines and durations
	// always use the real clock.
	Now func() time.Time
	// Egress checks every upstream dial and resolves target host names
	// (forward.Options.Egress). Nil: none.
	Egress *egress.Guard
	// Store holds throttle buckets, quota counters and concurrency leases.
	// It outlives reloads (limits carry over) and is closed by its opener.
	// Required when any guard keeps state (the account throttle always
	// does, unless configured away).
	Store store.Store
	// IPSets are local copies of built-in ip sets (`drawbridge ipsets
	// update`), used unless the config's ip_sets names the same set.
	IPSets map[string][]string
	// Queue persists async routes' requests (docs/delivery.md). Nil: they answer
	// 503 (check builds without one).
	Queue Enqueuer
	// Bodies is the memory budget request bodies share. It outlives
	// reloads, so that requests under the old and the new config count
	// against one limit; its owner sets the limit. Nil: Build makes one of
	// limits.max_body_memory.
	Bodies *body.Budget
	// Agents carries the requests of routes with via: one RoundTripper
	// per agent name (internal/tunnel). Nil: no agent is ever connected
	// (Lambda, check, explain: docs/agent.md).
	Agents Agents
	// Tracer makes the request's spans (tracing.go). Nil: tracing off,
	// which costs one nil check per request.
	Tracer *tracing.Tracer
}

// Agents gives the RoundTripper that reaches the agents of one name.
type Agents interface {
	Transport(name string) http.RoundTripper
}

// noAgents is the way to the agents of a command that has no agents
// listener: none is connected.
type noAgents struct{}

func (noAgents) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, forward.ErrAgentUnavailable
}

// Gateway is a compiled config serving requests. It is immutable after
// Build; a reload builds a new one and swaps it in.
type Gateway struct {
	cfg       *config.Config
	api       config.API
	router    *router
	routes    []*route
	replies   [numReasons]reply
	clientIP  *clientip.Resolver
	maxBody   int64
	maxHeader int64
	bodies    *body.Budget
	bodyTime  time.Duration // server.read_body_timeout; 0: the route timeout alone
	log       *slog.Logger
	access    *accesslog.Handler // log's handler when it has the access-line fast path
	now       func() time.Time
	clock     func() time.Time // Deps.Now when injected, else nil: guards use c.start
	stage     string
	cors      bool // some route has cors: OPTIONS requests may be preflights (cors.go)

	steps       []step
	store       store.Store
	failOpen    bool // state.on_error: open lets throttles pass when the store fails
	storeErrors prometheus.Counter
	id          policy.Identity
	policy      *policy.Policy // nil: no resource policy
	account     store.Bucket
	hasAccount  bool
	plans       map[string]*plan
	keys        map[[32]byte]*key      // by SHA-256 of the key
	async       map[*route]*asyncRoute // delivery.mode: async routes
	authorizers map[string]authorizer.Authorizer
	rejects     *rejectLog      // log.rejections (rejectlog.go)
	tracer      *tracing.Tracer // nil: tracing off

	noRoute         [numMethods]prometheus.Counter
	noRouteDuration prometheus.Observer
	recent          metrics.Recorder // the console's view (recent.go); nil: none
}

// Build compiles cfg. Errors name the route; they are config problems the
// loader cannot see (such as a feature this build does not have).
func Build(cfg *config.Config, deps Deps) (*Gateway, error) {
	g := &Gateway{
		cfg:       cfg,
		api:       cfg.API,
		replies:   replies(cfg.API),
		maxBody:   int64(cfg.Limits.MaxBodyBytes),
		maxHeader: int64(cfg.Limits.MaxHeaderBytes),
		log:       deps.Log,
		stage:     cfg.Stage,
		store:     deps.Store,
		failOpen:  cfg.State.OnError == config.OnErrorOpen,
		bodies:    deps.Bodies,
		bodyTime:  time.Duration(cfg.Server.ReadBodyTimeout),
		recent:    deps.Metrics.Recent,
		tracer:    deps.Tracer,
	}
	if g.bodies == nil {
		g.bodies = body.NewBudget(int64(cfg.Limits.MaxBodyMemory))
	}
	g.storeErrors = deps.Metrics.StoreErrors
	g.steps = g.newSteps()
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.access = accessHandler(g.log)
	g.now, g.clock = time.Now, deps.Now
	g.clientIP = clientip.New(cfg.ClientIP.Prefixes())

	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		opts := forward.Options{Egress: deps.Egress, Lean: cfg.Server.Forwarder == config.ForwarderLean}
		if rc.Response == config.ResponseEnvelope {
			opts.Response = forward.Envelope
		}
		if rc.Via != "" {
			opts.Transport = noAgents{}
			if deps.Agents != nil {
				opts.Transport = deps.Agents.Transport(rc.Via)
			}
		}
		lanes, err := buildLanes(cfg, rc, opts, deps.Metrics)
		if err != nil {
			return nil, err
		}
		r := &route{
			cfg:     rc,
			label:   rc.Path,
			base:    rc.Base(),
			prefix:  rc.Prefix(),
			fwd:     lanes[0].fwd,
			timeout: time.Duration(rc.Timeout),
		}
		r.routing.lanes = lanes
		if rc.Delivery == nil || rc.Delivery.Mode != config.DeliveryAsync {
			r.timeout = lanes[0].timeout // a sync route's one target may set its own
		}
		if rc.Template() {
			r.tmpl, r.base = compileTemplate(rc.Path)
		}
		r.methods, r.other = methodsOf(rc.Methods)
		r.newMetrics(deps.Metrics, &g.replies)
		if r.guards.cors = compileCORS(cfg, r, deps.Metrics); r.guards.cors != nil {
			g.cors = true
		}
		g.routes = append(g.routes, r)
	}
	g.router = newRouter(g.routes)
	compileRouting(g.routes)
	if err := g.compileAuthorizers(cfg, deps.Egress); err != nil {
		return nil, err
	}
	if err := g.compileGuards(cfg, deps.IPSets); err != nil {
		return nil, err
	}
	if g.store == nil && g.needsStore() {
		return nil, errors.New("gateway: guards need a state store (Deps.Store)")
	}
	g.async = buildAsync(g.routes, deps)
	g.rejects = newRejectLog(&cfg.Log.Rejections, g.routes, &g.replies, g.log, g.now())
	for mi := range numMethods {
		g.noRoute[mi] = deps.Metrics.Requests.WithLabelValues(metrics.NoRouteLabel, methodNames[mi], string(metrics.NoRoute))
	}
	g.noRouteDuration = deps.Metrics.RequestDuration.WithLabelValues(metrics.NoRouteLabel)
	return g, nil
}

// Close releases idle upstream connections and writes the rejection
// log's last summary; call it on the Gateway a reload replaced.
func (g *Gateway) Close() {
	g.rejects.close()
	for _, r := range g.routes {
		r.fwd.Close()
		r.closeLanes()
	}
	for _, a := range g.authorizers {
		a.Close()
	}
}

// call is one request on its way through the gateway.
type call struct {
	rec   recorder // in the call: one allocation less per request
	w     *recorder
	r     *http.Request
	route *route
	rest  string // escaped path after a prefix or template route's base
	path  string // the request's escaped path, for the log
	id    string
	idHdr []string // id as a header value (requestid.go: made with it, never written again)
	short []string // REST's x-amz-apigw-id, likewise
	start time.Time

	client     netip.Addr
	body       []byte
	bodyHeld   int64 // memory the body holds from the budget, released by finish
	bodyDone   bool  // body read to the end (or there was none)
	retryAfter int   // seconds, for 429

	status   int
	outcome  metrics.Outcome
	reason   reason
	cause    error // private: why, for the log only
	upstream time.Duration

	match       matchState      // what the match step learnt (match.go)
	key         *key            // the request's API key, once step api_key passed
	adm         admission       // steps 4-6's one store call and its result (guards.go)
	reply       *reply          // overrides replies[reason] (policy denials name the ARN)
	guard       string          // the step that rejected, for the log
	rule        string          // the rule that decided (statement, bucket, quota), for the log
	decision    policy.Decision // the resource policy's, when it denied
	hasDecision bool

	dry  bool   // explain: read state, consume none, write nothing
	note string // explain: why the current step decided as it did

	probe     bool // Early: read state, consume none; answer only a rejection
	undecided bool // Early: a step could not decide without serving; nothing written

	dispatched bool             // handed to dispatch (or panicked): finish does not recycle it
	trace      *tracing.Request // the request's span; nil: tracing off
}

// notef adds to the explain note of the current step. Call it only when
// c.dry: formatting allocates, and the hot path must not.
func (c *call) notef(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if c.note != "" {
		s = c.note + "; " + s
	}
	c.note = s
}

// ServeHTTP runs one request through the pipeline of
// docs/design.md#one-request-end-to-end.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.serve(w, r, (*Gateway).dispatch)
}

// Early answers r into w, below net/http (edge.Early), when the answer is
// a rejection that takes no state to give: the steps run as in
// ServeHTTP, reading the store without writing it, and the call stops
// with nothing written or recorded at the first step that might let the
// request on or whose refusal would change state (a quota, an
// authorizer, a signature, the target). Net/http then serves r from the
// start, as if Early had never seen it. Traced gateways answer nothing
// early: their spans are made by ServeHTTP alone.
func (g *Gateway) Early(w http.ResponseWriter, r *http.Request) bool {
	if g.tracer != nil || g.cors && r.Method == http.MethodOptions {
		return false // a preflight is answered by serving alone too
	}
	return g.serve(w, r, nil)
}

// serve is ServeHTTP with the dispatch step as a parameter, so that
// BenchmarkGuards measures everything but the forwarding. A nil dispatch
// is Early's probe; serve reports whether it answered.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, dispatch func(*Gateway, *call)) bool {
	c := calls.Get().(*call) // recycled by finish when never dispatched (callpool.go)
	c.r, c.start, c.probe = r, g.now(), dispatch == nil
	g.setIDs(c)
	if g.tracer != nil {
		g.startTrace(c)
	}
	c.rec.ResponseWriter = w
	c.w = &c.rec
	defer g.finish(c)

	escaped := r.URL.EscapedPath()
	c.path = escaped
	if !pathOK(escaped) {
		g.reject(c, noRoute)
		return true
	}
	preflight, routed := false, false
	if g.cors && r.Method == http.MethodOptions {
		c.route, c.rest, routed = g.matchPreflight(r, escaped)
		preflight = c.route != nil
	}
	if !preflight {
		c.route, c.rest = g.router.match(r.Method, r.URL.Path, escaped)
	}
	if c.route == nil {
		g.reject(c, noRoute)
		return true
	}
	c.route.inflight.Inc()
	defer c.route.inflight.Dec()
	c.client = g.clientIP.ClientIP(r.RemoteAddr, r.Header["X-Forwarded-For"])
	if cr := c.route.guards.cors; cr != nil {
		if preflight {
			g.preflight(c, routed)
			return true
		}
		// Every other answer of the route, forwarded or not, gets its
		// CORS headers as it is written.
		c.rec.cors, c.rec.origin = cr, cr.allowOrigin(r)
	}
	defer g.release(c)
	now := c.start
	if g.clock != nil {
		now = g.clock() // an injected clock for the guards; deadlines stay real
	}
	for i := range g.steps {
		s := &g.steps[i]
		var t0 time.Time
		if c.trace != nil {
			t0 = time.Now()
		}
		v := s.run(c, now)
		if c.trace != nil && !v.skip {
			g.traceStep(c, s.name, v, t0)
		}
		if c.undecided || v.reason != pass {
			if !c.undecided {
				c.guard = s.name
				g.reject(c, v.reason)
			}
			// Five returns at most: with three defers, more would stop
			// the compiler open-coding them (≈ 300 instructions a call).
			return !c.undecided
		}
	}
	if c.undecided = c.probe; !c.probe {
		c.dispatched = true
		dispatch(g, c)
	}
	return !c.undecided
}

func (g *Gateway) reject(c *call, rs reason) {
	c.reason = rs
	rp := &g.replies[rs]
	if c.reply != nil {
		rp = c.reply
	}
	g.render(c, rp)
}

// aLongTimeAgo is a read deadline that has already passed: setting it
// stops a read at once.
var aLongTimeAgo = time.Unix(1, 0)

// readBody is guard step 7: the whole body, bounded by max_body_bytes, by
// the memory budget all bodies share and by a deadline, is read before
// dispatch, so the target never sees a partial or malformed body
// (docs/hardening.md). Its buffers grow with the bytes that arrive, never
// with the declared length alone.
func (g *Gateway) readBody(c *call, _ time.Time) verdict {
	if c.dry {
		return g.bodyDry(c)
	}
	r := c.r
	if !hasBody(r) {
		c.bodyDone = true
		return allowed
	}
	limit := c.route.timeout
	if g.bodyTime > 0 && g.bodyTime < limit {
		limit = g.bodyTime
	}
	deadline := c.start.Add(limit)
	rc := http.NewResponseController(c.w)
	rc.SetReadDeadline(deadline)
	var err error
	c.body, c.bodyHeld, err = g.bodies.Read(r.Body, r.ContentLength, g.maxBody, deadline)
	if err != nil {
		switch {
		case errors.Is(err, body.ErrTooLarge):
			c.rule = "limits.max_body_bytes"
			return deny(tooLarge)
		case errors.Is(err, body.ErrNoMemory):
			// Load shed before the rest of the body is read: render closes
			// the connection.
			c.rule, c.cause = "limits.max_body_memory", err
			return deny(unavailable)
		}
		c.cause = err
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return deny(upstreamTimeout)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return deny(upstreamTimeout)
		}
		return deny(badRequest)
	}
	c.bodyDone = true
	// Clear the deadline: net/http's background read after the body would
	// otherwise cancel the request context when it fires, turning a 504
	// into a 502.
	rc.SetReadDeadline(time.Time{})
	if len(r.TransferEncoding) > 0 {
		// A chunked request may have carried a Content-Length that net/http
		// dropped (docs/hardening.md, framing): parse nothing more from
		// this connection.
		c.w.Header()["Connection"] = closeHdr
	}
	return allowed
}

// dispatch sends the request to the route's target.
func (g *Gateway) dispatch(c *call) {
	fr := &forward.Request{
		Rest:         c.rest,
		Body:         c.body,
		ForwardedFor: g.forwardedFor(c),
		RequestID:    c.id,
		Deadline:     c.start.Add(c.route.timeout),
		WebSocket:    c.route.cfg.WebSocket,
	}
	if a := g.async[c.route]; a != nil {
		g.accept(c, a, fr)
		return
	}
	if l := c.route.routing.lanes[0]; l.sign != nil {
		fr.Sign = func(h http.Header, body []byte) { l.sign.Sign(h, c.id, body, g.clockNow()) }
	}
	// API Gateway tags every answer with its request id; the target got
	// the same id as X-Request-Id.
	g.idHeaders(c.w.Header(), c)
	var up *upstreamTrace
	if c.trace != nil {
		up = g.traceUpstream(c, fr)
		defer up.abandon(c) // a client gone mid-answer panics out of Forward
	}
	t0 := time.Now()
	err := c.route.fwd.Forward(c.w, c.r, fr)
	c.upstream = time.Since(t0)
	if up != nil {
		up.end(c, err)
	}
	c.route.upstream.Observe(c.upstream.Seconds())
	if err == nil {
		c.outcome = metrics.Forwarded
		c.status = c.w.status
		return
	}
	c.cause = err
	rs := upstreamError
	var fe *forward.Error
	if errors.As(err, &fe) {
		switch fe.Kind {
		case forward.Timeout:
			rs = upstreamTimeout
		case forward.Denied:
			rs = egressDenied
		case forward.NoAgent:
			rs = agentUnavailable
		}
	}
	if c.w.status != 0 {
		// Headers are out (a failure mid-body): nothing more can be said.
		c.reason, c.outcome, c.status = rs, g.replies[rs].outcome, c.w.status
		return
	}
	g.reject(c, rs)
}

// forwardedFor is the X-Forwarded-For sent upstream: the chain as our
// trusted proxies passed it plus the peer, or just the peer when the peer
// is not trusted (a client's own X-Forwarded-For is never passed on).
// With no peer address (a Lambda event that names no source, such as an
// ALB's without ALB peer configured) it is "unknown", as Squid sends and
// RFC 7239 spells an unidentified node: the target always gets the
// header, and a value no parser mistakes for an address
// (docs/lambda.md#forwarded-headers).
func (g *Gateway) forwardedFor(c *call) string {
	peer := c.r.RemoteAddr
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		peer = ap.Addr().Unmap().String()
	} else if h, _, err := net.SplitHostPort(peer); err == nil {
		peer = h
	}
	if peer == "" {
		return unknownPeer
	}
	if xff := c.r.Header["X-Forwarded-For"]; len(xff) > 0 {
		if a, err := netip.ParseAddr(peer); err == nil && g.clientIP.Trusted(a) {
			return strings.Join(xff, ", ") + ", " + peer
		}
	}
	return peer
}

// unknownPeer is the X-Forwarded-For value for a client without address.
const unknownPeer = "unknown"

// finish records the request in metrics and the access log, and turns a
// panic into a 502 so none reaches the client as a dropped connection.
func (g *Gateway) finish(c *call) {
	if p := recover(); p != nil {
		if p == http.ErrAbortHandler {
			// The answer broke off mid-body (the target's side or the
			// client's) and net/http closes the connection. It is still
			// the mid-body failure dispatch counts when Forward returns
			// one, and the body's memory still goes back to the budget
			// (kept, it would shrink limits.max_body_memory for good).
			c.reason, c.outcome, c.status = upstreamError, g.replies[upstreamError].outcome, c.w.status
			if c.cause == nil {
				c.cause = errAnswerAborted
			}
			g.tally(c)
			panic(p) // c stays out of the pool: net/http is not done with it
		}
		if c.probe {
			return // Early answers nothing: serving meets the panic and answers it
		}
		c.dispatched = true // whatever panicked may hold the call: not recycled
		c.cause = fmt.Errorf("panic: %v", p)
		g.log.Error("panic serving request", "request_id", c.id, "panic", fmt.Sprint(p))
		if c.w.status == 0 {
			g.reject(c, upstreamError)
		}
	}
	if c.undecided {
		recycle(c) // Early left it to serving: nothing to record
		return
	}
	g.tally(c)
	if !c.dispatched {
		recycle(c)
	}
}

// errAnswerAborted is the reason logged for an answer that broke off
// mid-body without an error of its own.
var errAnswerAborted = errors.New("the answer broke off mid-body")

// tally gives the body's memory back to the budget and records the
// request in metrics, the recent view, its trace and the access log.
func (g *Gateway) tally(c *call) {
	if c.bodyHeld != 0 {
		// After dispatch: the target has had the body, or the queue has
		// stored it.
		g.bodies.Release(c.bodyHeld)
	}
	end := g.now()
	d := end.Sub(c.start)
	mi := methodIndex(c.r.Method)
	label := metrics.NoRouteLabel
	if c.route == nil {
		g.noRoute[mi].Inc()
		g.noRouteDuration.Observe(d.Seconds())
	} else {
		label = c.route.label
		idx := int(c.reason)
		if c.outcome == metrics.Forwarded {
			idx = int(numReasons)
		}
		if ctr := c.route.counters[mi][idx]; ctr != nil {
			ctr.Inc()
		}
		c.route.duration.Observe(d.Seconds())
	}
	g.record(c, end, label)
	if c.trace != nil {
		g.endTrace(c, end)
	}
	g.logRequest(c, end, label, d)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}

// recorder remembers the status and size of what was written, for
// metrics and the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	cors   *corsRule // the route's cors: its headers join the answer's
	origin []string  // Access-Control-Allow-Origin; nil: none allowed
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		if r.cors != nil {
			r.cors.addTo(r.ResponseWriter.Header(), r.origin)
		}
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		if r.cors != nil {
			r.cors.addTo(r.ResponseWriter.Header(), r.origin)
		}
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushes) through the recorder.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
