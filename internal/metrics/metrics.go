// Package metrics holds drawbridge's Prometheus registry and the names of
// request outcomes (docs/design.md#answers-and-outcomes).
//
// One Metrics lives for the whole process and outlives config reloads, so
// counters keep counting across SIGHUP. It uses a private registry, never
// the global default, so tests can build as many as they like.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"time"
)

// Outcome is how a request ended. The strings are part of the user-facing
// contract (docs/design.md#answers-and-outcomes): dashboards and alerts match on them.
type Outcome string

const (
	Forwarded         Outcome = "forwarded"
	Accepted          Outcome = "accepted"
	NoRoute           Outcome = "no_route"
	BadRequest        Outcome = "bad_request"
	PolicyDenied      Outcome = "policy_denied"
	KeyRejected       Outcome = "key_rejected"
	SignatureRejected Outcome = "signature_rejected"
	Throttled         Outcome = "throttled"
	QuotaExceeded     Outcome = "quota_exceeded"
	TooLarge          Outcome = "too_large"
	Unavailable       Outcome = "unavailable"
	EgressDenied      Outcome = "egress_denied"
	UpstreamError     Outcome = "upstream_error"
	UpstreamTimeout   Outcome = "upstream_timeout"
	// AgentUnavailable: a via route's agent is not connected
	// (docs/agent.md).
	AgentUnavailable Outcome = "agent_unavailable"
	// Unauthorized and Forbidden are an authorizer's refusals (401: no or
	// bad credential; 403: insufficient scope or the authorizer's deny);
	// AuthorizerError an authorizer that could not decide
	// (docs/authorizers.md).
	Unauthorized    Outcome = "unauthorized"
	Forbidden       Outcome = "forbidden"
	AuthorizerError Outcome = "authorizer_error"
	// Preflight is a browser's CORS preflight OPTIONS that the gateway
	// answered itself (docs/guards.md#cors): neither billable nor a
	// rejection.
	Preflight Outcome = "preflight"
	// Filtered is a verified request that no route's match selected
	// (docs/delivery.md#routing-on-the-event): answered 202, delivered
	// nowhere; neither billable nor a rejection.
	Filtered Outcome = "filtered"
)

// Outcomes lists every outcome: the billable ones first, then the
// rejections, then the upstream failures, then the preflights the
// gateway answered.
var Outcomes = []Outcome{Forwarded, Accepted, NoRoute, BadRequest, PolicyDenied, Unauthorized, Forbidden,
	AuthorizerError, KeyRejected, SignatureRejected, Throttled, QuotaExceeded, TooLarge, Unavailable, EgressDenied,
	UpstreamError, UpstreamTimeout, AgentUnavailable, Preflight, Filtered}

// Billable reports whether the outcome cost backend work.
func (o Outcome) Billable() bool { return o == Forwarded || o == Accepted }

// NoRouteLabel is the route label of requests that matched no route: the
// label is always a configured path, never the raw one, so a scanner
// cannot blow up the series count.
const NoRouteLabel = "_none"

// Metrics is the process's registry and drawbridge's collectors.
type Metrics struct {
	Registry         *prometheus.Registry
	Requests         *prometheus.CounterVec   // route, method, outcome
	RequestDuration  *prometheus.HistogramVec // route
	UpstreamDuration *prometheus.HistogramVec // route
	Inflight         *prometheus.GaugeVec     // route
	Deliveries       *prometheus.GaugeVec     // state
	AttemptDuration  *prometheus.HistogramVec // route: each delivery attempt
	DeliveryAttempts *prometheus.HistogramVec // route: attempts a finished delivery took
	DeliveryLatency  *prometheus.HistogramVec // route: acceptance to delivered
	DeliveryOutcomes *prometheus.CounterVec   // route (the lane: path#target), state: accepted, delivered, dead
	StoreErrors      prometheus.Counter
	StateHealthy     prometheus.Gauge       // 0 while the embedded state file is lost or cannot commit
	ConnectionsShed  *prometheus.CounterVec // reason: the edge limit that refused a connection

	// Recent, when set before the gateway is built, sees every finished
	// request (the console's recent view, recent.go). Nil: none.
	Recent Recorder
}

// New registers drawbridge's collectors and the Go and process collectors
// on a fresh registry.
func New() *Metrics {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_requests_total",
			Help: "Requests by configured route, method and outcome. Billable = forwarded + accepted.",
		}, []string{"route", "method", "outcome"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drawbridge_request_duration_seconds",
			Help:    "Time from request start to the last byte of the response, by route.",
			Buckets: buckets,
		}, []string{"route"}),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drawbridge_upstream_duration_seconds",
			Help:    "Time spent waiting on the target, by route.",
			Buckets: buckets,
		}, []string{"route"}),
		Inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drawbridge_inflight",
			Help: "Requests in flight, by route.",
		}, []string{"route"}),
		Deliveries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drawbridge_deliveries",
			Help: "Async deliveries by state: pending, delivered, dead, coalesced.",
		}, []string{"state"}),
		AttemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drawbridge_delivery_attempt_duration_seconds",
			Help:    "Duration of each async delivery attempt, by route.",
			Buckets: buckets,
		}, []string{"route"}),
		DeliveryAttempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drawbridge_delivery_attempts",
			Help:    "Attempts an async delivery took until it was delivered or dead-lettered, by route and final state.",
			Buckets: []float64{1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 150},
		}, []string{"route", "state"}),
		DeliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drawbridge_delivery_latency_seconds",
			Help:    "Time from acceptance (or the last replay) to delivery, by route.",
			Buckets: []float64{.01, .05, .25, 1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 72 * 3600},
		}, []string{"route"}),
		DeliveryOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_delivery_outcomes_total",
			Help: "Async deliveries accepted, delivered and dead-lettered, by route and target (route label path#target for a fan-out route's targets).",
		}, []string{"route", "state"}),
		StoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drawbridge_state_errors_total",
			Help: "State store operations that failed (Redis unreachable, file errors).",
		}),
		StateHealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drawbridge_state_healthy",
			Help: "0 while the embedded state file was removed or replaced under serve (restart needed) or its latest commit failed; 1 otherwise, and always on other drivers.",
		}),
		ConnectionsShed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_connections_shed_total",
			Help: "Client connections refused at accept (503 and close), by the limit that was reached.",
		}, []string{"reason"}),
	}
	m.StateHealthy.Set(1)
	m.Registry.MustRegister(m.Requests, m.RequestDuration, m.UpstreamDuration, m.Inflight,
		m.Deliveries, m.AttemptDuration, m.DeliveryAttempts, m.DeliveryLatency, m.DeliveryOutcomes, m.StoreErrors,
		m.StateHealthy, m.ConnectionsShed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveAttempt records one delivery attempt; finished is true when it
// ended the delivery (delivered or dead), with its state.
func (m *Metrics) ObserveAttempt(route string, d time.Duration, finished bool, state string, tries int, sinceAccepted time.Duration) {
	m.AttemptDuration.WithLabelValues(route).Observe(d.Seconds())
	if !finished {
		return
	}
	m.DeliveryAttempts.WithLabelValues(route, state).Observe(float64(tries))
	m.DeliveryOutcomes.WithLabelValues(route, state).Inc()
	if state == "delivered" {
		m.DeliveryLatency.WithLabelValues(route).Observe(sinceAccepted.Seconds())
	}
}

// SetDeliveries sets the drawbridge_deliveries gauge to the delivery
// queue's current counts.
func (m *Metrics) SetDeliveries(pending, delivered, dead, coalesced int) {
	m.Deliveries.WithLabelValues("pending").Set(float64(pending))
	m.Deliveries.WithLabelValues("delivered").Set(float64(delivered))
	m.Deliveries.WithLabelValues("dead").Set(float64(dead))
	m.Deliveries.WithLabelValues("coalesced").Set(float64(coalesced))
}
