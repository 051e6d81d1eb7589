package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drawbridge/drawbridge/internal/agent"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/edge"
	"github.com/drawbridge/drawbridge/internal/gateway"
	"github.com/drawbridge/drawbridge/internal/tunnel"
)

// The edge's side of agents (docs/agent.md): serve opens the agents
// listener with startAgents, hands the gateway and the delivery worker
// the tunnels' RoundTrippers, gives a reload's credentials to the
// registry, and closes it on shutdown.

// startAgents opens cfg.Agents' listener, if any: TLS always (its own
// certificate or the public listener's), behind the public listener's
// connection caps, so a flood of unauthenticated connections is shed as
// on the public side.
func (s *Server) startAgents(cfg *config.Config) error {
	a := cfg.Agents
	if a == nil {
		return nil
	}
	tcfg, err := agentsTLS(cfg)
	if err != nil {
		return err
	}
	e := tunnel.New(tunnel.Options{Log: s.log, Registerer: s.metrics.Registry, MaxHeaderBytes: int(cfg.Limits.MaxHeaderBytes)})
	if err := e.SetCredentials(a); err != nil {
		return fmt.Errorf("%s:%w", cfg.File, err)
	}
	ln, err := net.Listen("tcp", a.Listen)
	if err != nil {
		return fmt.Errorf("%s:%d: agents.listen %s: %w", cfg.File, a.Line, a.Listen, err)
	}
	eln := edge.NewListener(ln, edge.ListenerOptions{
		MaxConns: int(cfg.Limits.MaxConnections),
		MaxPerIP: int(cfg.Limits.MaxConnsPerIP),
		TLS:      true,
		OnShed:   func(reason string) { s.metrics.ConnectionsShed.WithLabelValues(reason).Inc() },
	})
	s.agents, s.agentsLn = e, ln
	go e.Serve(eln, tcfg)
	s.log.Info("agents listening", "addr", ln.Addr().String(), "credentials", len(a.Tokens))
	return nil
}

// agentsTLS is the agents listener's certificate: agents.tls, or the
// top-level tls (whose client_ca, for the public listener, does not
// apply: agents authenticate by their own credentials).
func agentsTLS(cfg *config.Config) (*tls.Config, error) {
	t := cfg.Agents.TLS
	if t == nil {
		t = cfg.TLS
	}
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: agents tls: %w", cfg.File, t.Line, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}

// agentsFor is what the gateway and the worker reach agents through: the
// registry, or nil when cfg has no agents listener (via routes then
// answer agent_unavailable).
func (s *Server) agentsFor() gateway.Agents {
	if s.agents == nil {
		return nil
	}
	return s.agents
}

// reloadAgents gives the registry a reloaded config's credentials: a
// revoked token closes its tunnels; connected agents stay otherwise. The
// listener itself (agents.listen, its certificate) needs a restart.
func (s *Server) reloadAgents(prev, cfg *config.Config) {
	if s.agents == nil {
		if cfg.Agents != nil {
			s.log.Warn("agents: a new agents block takes effect after a restart")
		}
		return
	}
	a := cfg.Agents
	if a == nil {
		a = &config.Agents{} // every credential revoked
	}
	if err := s.agents.SetCredentials(a); err != nil {
		s.log.Error("agents: reload kept the previous credentials", "error", err.Error())
	}
	if prev.Agents == nil || cfg.Agents == nil || prev.Agents.Listen != cfg.Agents.Listen || (prev.Agents.TLS == nil) != (cfg.Agents.TLS == nil) {
		s.log.Warn("agents.listen and agents.tls: changes take effect after a restart")
	}
}

// closeAgents closes the agents listener and every tunnel.
func (s *Server) closeAgents() {
	if s.agents != nil {
		s.agents.Close()
	}
}

// AgentsAddr is the agents listener's address, or "" when there is none.
func (s *Server) AgentsAddr() string {
	if s.agentsLn == nil {
		return ""
	}
	return s.agentsLn.Addr().String()
}

func runAgent(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "agent.yaml", "agent config `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.LoadAgent(*path)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	reg := prometheus.NewRegistry()
	a, err := agent.New(cfg, agent.Options{Log: logger, Registerer: reg})
	if err != nil {
		return err
	}
	var adminSrv *http.Server
	if cfg.Admin != config.AdminOff {
		ln, err := net.Listen("tcp", cfg.Admin)
		if err != nil {
			return fmt.Errorf("admin listen %s: %w", cfg.Admin, err)
		}
		adminSrv = &http.Server{Handler: a.AdminHandler(reg), ReadHeaderTimeout: 10 * time.Second}
		go adminSrv.Serve(ln)
		logger.Info("agent admin listening", "addr", ln.Addr().String())
	}
	logger.Info("agent starting", "edge", cfg.Edge, "name", cfg.Name, "connections", int(cfg.Connections))
	a.Run(ctx)
	if adminSrv != nil {
		adminSrv.Close()
	}
	logger.Info("agent stopped")
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
