package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drawbridge/drawbridge/internal/accesslog"
	"github.com/drawbridge/drawbridge/internal/admin"
	"github.com/drawbridge/drawbridge/internal/body"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/console"
	"github.com/drawbridge/drawbridge/internal/edge"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/gateway"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/tracing"
	"github.com/drawbridge/drawbridge/internal/tunnel"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Access lines under load share a write(2) per millisecond (one per
	// request costs a rejection ~10 % of its throughput); flushed on exit.
	logs := accesslog.NewBuffered(stderr, time.Millisecond)
	defer logs.Flush()
	logger := slog.New(logs)
	// SIGHUP is caught before the listener opens: one that arrives as
	// the "listening" line is written must reload, not kill the process
	// (its default action).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s, err := Start(*path, logger)
	if err != nil {
		return err
	}
	for {
		select {
		case <-hup:
			if err := s.Reload(); err != nil {
				logger.Error("reload failed; still serving the previous config", "error", err.Error())
			}
		case <-ctx.Done():
			return s.Shutdown()
		}
	}
}

// Server is a running gateway: the public listener, the admin listener and
// the current compiled config, swapped atomically on reload.
type Server struct {
	path    string
	log     *slog.Logger
	metrics *metrics.Metrics
	current atomic.Pointer[gateway.Gateway]
	cfg     atomic.Pointer[config.Config]
	reload  sync.Mutex
	state   *state           // opened once, shared by every reload, closed last
	bodies  *body.Budget     // one body memory budget across reloads
	now     func() time.Time // guards' clock; nil: real time (tests inject one)
	names   *egress.Names    // target names resolved at dial time, cached
	tracer  *tracing.Tracer  // nil: tracing off; made once, kept across reloads

	agents            *tunnel.Edge // nil without an agents: block (agent.go)
	agentsLn          net.Listener
	deliveries        *deliveries // nil on the memory driver (no queue)
	public, admin     *http.Server
	publicLn, adminLn net.Listener
	done              chan error
}

// Start loads the config at path, builds the gateway and starts listening.
func Start(path string, logger *slog.Logger) (*Server, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		logger.Warn(w.String())
	}
	return start(cfg, logger, nil)
}

// targetResolver looks up target host names; nil: net.DefaultResolver.
// Only tests set it (to an in-test DNS server), before starting a server
// or running check; it is not a config key.
var targetResolver *net.Resolver

// start is Start with an injected clock for the guards (tests).
func start(cfg *config.Config, logger *slog.Logger, now func() time.Time) (*Server, error) {
	path := cfg.File
	st, err := openState(cfg, serving)
	if err != nil {
		return nil, err
	}
	logDurability(st, logger)
	s := &Server{path: path, log: logger, metrics: metrics.New(), done: make(chan error, 2), state: st, now: now,
		bodies: body.NewBudget(int64(cfg.Limits.MaxBodyMemory)), names: egress.NewNames(targetResolver, now)}
	s.metrics.Recent = console.NewRecent() // before Build: the gateway records into it
	watchStateHealth(st.store, logger, s.metrics)
	if s.tracer, err = newTracer(cfg, s.metrics, false); err != nil {
		st.close()
		return nil, err
	}
	if err := s.startAgents(cfg); err != nil {
		st.close()
		return nil, err
	}
	deps, err := s.deps(cfg)
	if err != nil {
		s.closeAgents()
		st.close()
		return nil, err
	}
	// The delivery worker dials through the same egress guard as the
	// sync path.
	s.deliveries = startDeliveries(cfg, st, s.metrics, logger, deps.Egress, s.tracer)
	if s.deliveries != nil && s.agents != nil {
		s.deliveries.worker.SetAgents(s.agents.Transport)
	}
	g, err := gateway.Build(cfg, deps)
	if err != nil {
		s.deliveries.stop()
		s.closeAgents()
		st.close()
		return nil, err
	}
	s.current.Store(g)
	s.cfg.Store(cfg)

	eh := s.edgeHandler(cfg, http.HandlerFunc(s.serveHTTP))
	s.public = &http.Server{
		Handler:           eh,
		ConnState:         edge.ConnState,
		ReadHeaderTimeout: time.Duration(cfg.Server.ReadHeaderTimeout),
		IdleTimeout:       time.Duration(cfg.Server.IdleTimeout),
		WriteTimeout:      time.Duration(cfg.Server.WriteTimeout),
		MaxHeaderBytes:    int(cfg.Limits.MaxHeaderBytes),
		ErrorLog:          log.New(&serverLog{logger}, "", 0),
	}
	if s.publicLn, err = s.listen(cfg, s.public, eh.Early(s.early)); err != nil {
		s.deliveries.stop()
		s.closeAgents()
		st.close()
		return nil, err
	}
	go func() { s.done <- s.public.Serve(s.publicLn) }()
	attrs := []any{"addr", s.publicLn.Addr().String(), "config", path, "routes", len(cfg.Routes)}
	if cfg.Admin != config.AdminOff {
		s.admin = &http.Server{
			Handler:           s.withConsole(admin.Handler(s.metrics.Registry, s.ready, st.history)),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          log.New(&serverLog{logger}, "", 0), // admin_tls handshake failures
		}
		if s.adminLn, err = listenAdmin(cfg); err != nil {
			s.publicLn.Close()
			s.deliveries.stop()
			s.closeAgents()
			st.close()
			return nil, fmt.Errorf("admin listen %s: %w", cfg.Admin, err)
		}
		go func() { s.done <- s.admin.Serve(s.adminLn) }()
		attrs = append(attrs, "admin", s.adminLn.Addr().String())
	}
	logger.Info("listening", attrs...)
	return s, nil
}

// deps are the gateway's dependencies for cfg, at start and on each
// reload: the egress table is compiled afresh, its warnings logged
// loudly. Target names are resolved at dial time through s.names, one
// cache for the process (a reload need not resolve anything).
func (s *Server) deps(cfg *config.Config) (gateway.Deps, error) {
	eg, err := egress.Compile(cfg, egress.Options{Names: s.names})
	if err != nil {
		return gateway.Deps{}, err
	}
	for _, w := range eg.Warnings() {
		s.log.Warn("WARNING: " + w)
	}
	deps := gatewayDeps(cfg, wiring{state: s.state, metrics: s.metrics, log: s.log, egress: eg, now: s.now, bodies: s.bodies, tracer: s.tracer})
	deps.Agents = s.agentsFor()
	return deps, nil
}

// serveHTTP hands each request to the gateway current at its start; a
// reload never changes the rules under a request in flight.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.current.Load().ServeHTTP(w, r)
}

// early answers below net/http what the current config rejects without
// state (gateway.Gateway.Early).
func (s *Server) early(w http.ResponseWriter, r *http.Request) bool {
	return s.current.Load().Early(w, r)
}

// Addr is the public listener's address (useful with listen: 127.0.0.1:0).
func (s *Server) Addr() string { return s.publicLn.Addr().String() }

// AdminAddr is the admin listener's address, or "" when it is off.
func (s *Server) AdminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

func (s *Server) ready(ctx context.Context) error {
	if s.current.Load() == nil {
		return errors.New("no config loaded")
	}
	if err := s.state.store.Ready(ctx); err != nil {
		return fmt.Errorf("state store: %w", err)
	}
	return nil
}

// Reload reads the config file again and swaps it in. A config that fails
// to load or build leaves the running one in place. Listener addresses,
// header limits and server timeouts need a restart.
func (s *Server) Reload() error {
	s.reload.Lock()
	defer s.reload.Unlock()
	cfg, err := loadConfig(s.path)
	if err != nil {
		return err
	}
	deps, err := s.deps(cfg)
	if err != nil {
		return err
	}
	g, err := gateway.Build(cfg, deps)
	if err != nil {
		return err
	}
	s.deliveries.reload(cfg)
	s.reloadAgents(s.cfg.Load(), cfg)
	s.bodies.SetLimit(int64(cfg.Limits.MaxBodyMemory))
	old := s.current.Swap(g)
	prev := s.cfg.Swap(cfg)
	if prev.State != cfg.State {
		s.log.Warn("state: changes take effect after a restart; still using the store opened at start")
	}
	ps, cs := prev.Server, cfg.Server
	ps.ReadBodyTimeout, cs.ReadBodyTimeout = 0, 0 // the gateway's: a reload applies it
	if prev.Listen != cfg.Listen || prev.Admin != cfg.Admin || prev.Limits.MaxHeaderBytes != cfg.Limits.MaxHeaderBytes || ps != cs {
		s.log.Warn("listen, admin, limits.max_header_bytes and server: changes take effect after a restart")
	}
	warnEdgeRestart(prev, cfg, s.log)
	warnTracingRestart(prev, cfg, s.log)
	for _, w := range cfg.Warnings {
		s.log.Warn(w.String())
	}
	old.Close()
	s.log.Info("config reloaded", "config", s.path, "routes", len(cfg.Routes))
	return nil
}

// Shutdown stops accepting, lets requests in flight finish (up to
// server.shutdown_timeout), then closes everything.
func (s *Server) Shutdown() error {
	cfg := s.cfg.Load()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Server.ShutdownTimeout))
	defer cancel()
	s.log.Info("shutting down: draining requests in flight")
	err := s.public.Shutdown(ctx)
	if s.admin != nil {
		s.admin.Shutdown(ctx)
	}
	s.closeAgents()
	s.current.Load().Close()
	// After the drain: no Enqueue is in flight. Before the state file
	// closes: the worker must stop using it first.
	if derr := s.deliveries.stop(); derr != nil {
		s.log.Error("close delivery queue", "error", derr.Error())
	}
	// Last: requests still finishing release their leases into it, and
	// the embedded driver writes its final quota counts on Close.
	cerr := s.state.close()
	stopTracer(s.tracer, s.log)
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("close state store: %w", cerr)
	}
	s.log.Info("stopped")
	return nil
}

// serverLog sends net/http's own messages (TLS handshake errors, panics
// it recovered) to slog.
type serverLog struct{ l *slog.Logger }

func (w *serverLog) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.l.Warn("http server", "message", msg)
	return len(p), nil
}
