package cli

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/edge"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// egressGuard compiles cfg's egress table (resolving target names now, so
// a reload follows DNS) and logs its warnings loudly.
func egressGuard(cfg *config.Config, opts egress.Options, logger *slog.Logger) (*egress.Guard, error) {
	g, err := egress.Compile(cfg, opts, nil)
	if err != nil {
		return nil, err
	}
	for _, w := range g.Warnings() {
		logger.Warn("WARNING: " + w)
	}
	return g, nil
}

// listen opens the public listener with the edge's connection caps and
// framing scanner below net/http.
func (s *Server) listen(cfg *config.Config, srv *http.Server) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	var exempt []netip.Prefix
	for _, p := range cfg.ClientIP.TrustedProxies {
		if pr, err := config.ParsePrefix(p); err == nil {
			exempt = append(exempt, pr)
		}
	}
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_connections_shed_total",
		Help: "Client connections refused at accept (503 and close), by the limit that was reached.",
	}, []string{"reason"})
	s.metrics.Registry.Register(shed)
	return edge.NewListener(ln, edge.ListenerOptions{
		MaxConns:       int(cfg.Limits.MaxConnections),
		MaxPerIP:       int(cfg.Limits.MaxConnsPerIP),
		Exempt:         exempt,
		ScanFraming:    true,
		MaxHeaderBytes: int(cfg.Limits.MaxHeaderBytes),
		OnShed:         func(reason string) { shed.WithLabelValues(reason).Inc() },
	}), nil
}

// edgeHandler puts the edge's request checks in front of the gateway;
// what it refuses is counted as the gateway counts unrouted requests.
func (s *Server) edgeHandler(cfg *config.Config, next http.Handler) http.Handler {
	return edge.NewHandler(next, edge.HandlerOptions{
		MaxInflight:     int(cfg.Limits.MaxInflight),
		MaxHeaders:      int(cfg.Limits.MaxHeaders),
		MaxForwardedFor: int(cfg.Limits.MaxForwardedFor),
		OnReject: func(r *http.Request, _ int, outcome string) {
			s.metrics.Requests.WithLabelValues(metrics.NoRouteLabel, methodLabel(r.Method), outcome).Inc()
		},
	})
}

// methodLabel bounds the method label as the gateway does.
func methodLabel(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return m
	}
	return "_other"
}

// warnEdgeRestart says which edge settings a reload cannot change.
func warnEdgeRestart(prev, cfg *config.Config, logger *slog.Logger) {
	if prev.Limits.MaxConnections != cfg.Limits.MaxConnections || prev.Limits.MaxConnsPerIP != cfg.Limits.MaxConnsPerIP ||
		prev.Limits.MaxInflight != cfg.Limits.MaxInflight || prev.Limits.MaxHeaders != cfg.Limits.MaxHeaders ||
		prev.Limits.MaxForwardedFor != cfg.Limits.MaxForwardedFor {
		logger.Warn("limits.max_connections, max_conns_per_ip, max_inflight, max_headers and max_forwarded_for: changes take effect after a restart")
	}
}
