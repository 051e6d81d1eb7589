// Package admin serves the operator's endpoints on the admin listener
// (loopback by default): liveness, readiness, Prometheus metrics and the
// delivery queue's operator API (deliveries.go). The listener has no
// authentication of its own: keep it on loopback or a private network.
package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Ready reports whether the gateway can serve: config loaded, state store
// reachable. A nil error means ready.
type Ready func(ctx context.Context) error

// Handler returns the admin mux: /healthz (the process answers),
// /readyz (Ready says yes, checked within one second), /metrics, and
// /deliveries when deliveries is not nil.
func Handler(reg *prometheus.Registry, ready Ready, deliveries delivery.Ops) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if deliveries != nil {
		deliveryRoutes(mux, deliveries)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
