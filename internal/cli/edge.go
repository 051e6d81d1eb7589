package cli

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/edge"
	"github.com/drawbridge/drawbridge/internal/metrics"
)

// listen opens the public listener: the edge's connection caps and its
// framing scanner below net/http, and TLS with HTTP/2 when cfg.TLS is set
// (the scanner then runs above TLS, on HTTP/1.x connections). h2c is
// never offered.
//
// On plain HTTP, early (may be nil) answers frozen rejections below
// net/http (edge.Early); srv's ConnState hook must then be
// edge.ConnState.
func (s *Server) listen(cfg *config.Config, srv *http.Server, early edge.Early) (net.Listener, error) {
	var tcfg *tls.Config
	if cfg.TLS != nil {
		var err error
		if tcfg, err = tlsConfig(cfg); err != nil {
			return nil, err
		}
		configureHTTP2(srv, cfg.TLS)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	eln := edge.NewListener(ln, edge.ListenerOptions{
		MaxConns:       int(cfg.Limits.MaxConnections),
		MaxPerIP:       int(cfg.Limits.MaxConnsPerIP),
		Exempt:         cfg.ClientIP.Prefixes(),
		ScanFraming:    true,
		TLS:            tcfg != nil,
		MaxHeaderBytes: int(cfg.Limits.MaxHeaderBytes),
		OnShed:         func(reason string) { s.metrics.ConnectionsShed.WithLabelValues(reason).Inc() },
		Early:          early,
		IdleTimeout:    cmp.Or(srv.IdleTimeout, srv.ReadTimeout), // as net/http falls back
		WriteTimeout:   srv.WriteTimeout,
		HeaderTimeout:  cmp.Or(srv.ReadHeaderTimeout, srv.ReadTimeout), // likewise
	})
	if tcfg != nil {
		srv.ConnContext = edge.ConnContext
		return eln.TLS(tcfg, edge.TLSOptions{
			HandshakeTimeout: handshakeTimeout(srv),
			OnHandshakeError: func(remote net.Addr, reason string) {
				if srv.ErrorLog != nil {
					srv.ErrorLog.Printf("http: TLS handshake error from %s: %v", remote, reason)
				}
			},
		}), nil
	}
	return eln, nil
}

// handshakeTimeout is the bound net/http itself puts on a TLS handshake:
// the shortest of its read, write and header timeouts.
func handshakeTimeout(srv *http.Server) time.Duration {
	var d time.Duration
	for _, t := range []time.Duration{srv.ReadTimeout, srv.WriteTimeout, srv.ReadHeaderTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	return d
}

// tlsConfig loads the listener's certificate and, for mutual TLS, the
// client CAs. Errors carry the tls block's line.
func tlsConfig(cfg *config.Config) (*tls.Config, error) {
	t := cfg.TLS
	at := func(err error) error { return fmt.Errorf("%s:%d: tls: %w", cfg.File, t.Line, err) }
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, at(err)
	}
	c := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if t.ClientCA != "" {
		pem, err := os.ReadFile(t.ClientCA)
		if err != nil {
			return nil, at(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, at(fmt.Errorf("client_ca %s: no PEM certificates", t.ClientCA))
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// configureHTTP2 offers HTTP/2 over TLS only, with Envoy's edge limits
// rather than Go's roomier defaults (docs/hardening.md).
func configureHTTP2(srv *http.Server, t *config.TLS) {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	srv.Protocols = &p
	srv.HTTP2 = &http.HTTP2Config{
		MaxConcurrentStreams:          int(t.MaxConcurrentStreams),
		MaxReadFrameSize:              16 << 10, // the RFC 9113 default; Go advertises 1 MiB
		MaxDecoderHeaderTableSize:     4 << 10,
		MaxEncoderHeaderTableSize:     4 << 10,
		MaxReceiveBufferPerStream:     64 << 10,
		MaxReceiveBufferPerConnection: 1 << 20,
		SendPingTimeout:               30 * time.Second,
		PingTimeout:                   15 * time.Second,
		WriteByteTimeout:              30 * time.Second,
	}
}

// edgeHandler puts the edge's request checks in front of the gateway;
// what it refuses is counted as the gateway counts unrouted requests.
func (s *Server) edgeHandler(cfg *config.Config, next http.Handler) *edge.Handler {
	return edge.NewHandler(next, edge.HandlerOptions{
		MaxInflight:     int(cfg.Limits.MaxInflight),
		MaxHeaders:      int(cfg.Limits.MaxHeaders),
		MaxForwardedFor: int(cfg.Limits.MaxForwardedFor),
		TLS:             cfg.TLS != nil,
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
		prev.Limits.MaxForwardedFor != cfg.Limits.MaxForwardedFor || (prev.TLS == nil) != (cfg.TLS == nil) ||
		prev.TLS != nil && *prev.TLS != *cfg.TLS {
		logger.Warn("limits.max_connections, max_conns_per_ip, max_inflight, max_headers, max_forwarded_for and tls: changes take effect after a restart")
	}
}
