package agent

import (
	"io"
	"log"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type agentMetrics struct {
	tunnels  prometheus.Gauge
	connects prometheus.Counter
	inflight prometheus.Gauge
	requests *prometheus.CounterVec // failures by reason
}

func newAgentMetrics(reg prometheus.Registerer) *agentMetrics {
	m := &agentMetrics{
		tunnels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drawbridge_agent_tunnels",
			Help: "Tunnels to the edge open now.",
		}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drawbridge_agent_connects_total",
			Help: "Tunnels opened to the edge (connects and reconnects).",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drawbridge_agent_inflight",
			Help: "Requests from the edge in flight.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_agent_failures_total",
			Help: "Requests the agent did not send to the target, by reason (egress_denied, unreachable, timeout, canceled).",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.tunnels, m.connects, m.inflight, m.requests)
	}
	return m
}

// AdminHandler serves /healthz (the process runs), /readyz (at least one
// tunnel is open) and /metrics from reg.
func (a *Agent) AdminHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if a.Connected() == 0 {
			http.Error(w, "no tunnel to the edge", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }

// bufferPool lends ReverseProxy its 32 KiB copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
