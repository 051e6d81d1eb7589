package tunnel

import "github.com/prometheus/client_golang/prometheus"

// edgeMetrics are the agent series of the edge's registry. Their name
// label is always a configured agent name: only an authenticated tunnel
// creates one, so a scanner cannot create series.
type edgeMetrics struct {
	tunnels  *prometheus.GaugeVec   // name
	streams  *prometheus.GaugeVec   // name
	bytes    *prometheus.CounterVec // name, direction
	connects *prometheus.CounterVec // name
	rtt      *prometheus.GaugeVec   // name
	refused  *prometheus.CounterVec // reason
}

func newEdgeMetrics(reg prometheus.Registerer) *edgeMetrics {
	m := &edgeMetrics{
		tunnels: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drawbridge_agents",
			Help: "Connected agent tunnels, by agent name.",
		}, []string{"name"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drawbridge_agent_streams",
			Help: "Requests in flight through agent tunnels, by agent name.",
		}, []string{"name"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_agent_bytes_total",
			Help: "Body bytes through agent tunnels, by agent name and direction (sent to the agent, received from it).",
		}, []string{"name", "direction"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_agent_connects_total",
			Help: "Agent tunnels accepted (connects and reconnects), by agent name.",
		}, []string{"name"}),
		rtt: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drawbridge_agent_rtt_seconds",
			Help: "Last HTTP/2 PING round trip to an agent, by agent name.",
		}, []string{"name"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_agent_refused_total",
			Help: "Connections to the agents listener refused, by reason (tls, hello, credential, http2).",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.tunnels, m.streams, m.bytes, m.connects, m.rtt, m.refused)
	}
	return m
}
