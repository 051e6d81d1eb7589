// Package agent is `drawbridge agent`: the private side of a tunnel
// (docs/agent.md). It dials the edge, keeps its tunnels open, and serves
// the edge's requests by sending each to its private target through its
// own egress guard: whatever the edge asks, the agent dials only what its
// egress.allow lists.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/tunnel"
)

// Options tune an Agent. The zero value is usable.
type Options struct {
	Log *slog.Logger // nil: discard
	// Registerer gets the agent's collectors. Nil: none.
	Registerer prometheus.Registerer
	// Backoff is the first reconnect delay, doubled per failure up to
	// MaxBackoff; each wait is drawn from [d/2, d) so that agents cut off
	// together do not return together. Zero: 250ms and 4s.
	Backoff, MaxBackoff time.Duration
	// Rand draws from [0, n); nil: math/rand/v2.
	Rand func(n int64) int64
	// Egress replaces the guard compiled from the config (tests that
	// need loopback targets use the config too; this is for a guard with
	// a test resolver). Nil: from cfg.Egress.
	Egress *egress.Guard
	// Drain bounds how long requests in flight may finish once Run's
	// context ends. Zero: 30s.
	Drain time.Duration
}

// Agent is a running agent.
type Agent struct {
	cfg    *config.AgentConfig
	opts   Options
	log    *slog.Logger
	tls    *tls.Config
	host   string                 // edge host:port
	proxy  *httputil.ReverseProxy // requests with a body
	client *forward.Client
	relay  *forward.Relay // requests without one (relay.go)
	h2     *http2.Server
	base   *http.Server // only for its Shutdown: GOAWAY on every tunnel
	m      *agentMetrics

	connected atomic.Int64
}

// New prepares an agent from cfg (validated by config.ParseAgent).
func New(cfg *config.AgentConfig, opts Options) (*Agent, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 4 * time.Second
	}
	if opts.Rand == nil {
		opts.Rand = rand.Int64N
	}
	if opts.Drain <= 0 {
		opts.Drain = 30 * time.Second
	}
	u, err := url.Parse(cfg.Edge)
	if err != nil {
		return nil, fmt.Errorf("%s: edge: %w", cfg.File, err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	tc := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("%s: ca: %w", cfg.File, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: ca %s holds no PEM certificate", cfg.File, cfg.CA)
		}
	}
	if cfg.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("%s: cert: %w", cfg.File, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	guard := opts.Egress
	if guard == nil {
		rules, err := egress.Parse(cfg.Egress.Allow)
		if err != nil {
			return nil, fmt.Errorf("%s: egress.allow: %w", cfg.File, err)
		}
		guard = egress.New(rules, egress.Options{Names: egress.NewNames(nil, nil)})
	}
	a := &Agent{cfg: cfg, opts: opts, log: opts.Log, tls: tc, host: host, m: newAgentMetrics(opts.Registerer)}
	// Up to 64 idle connections per target on either path: enough for a
	// busy edge's concurrent streams to find one kept alive instead of
	// dialing for each burst.
	a.client = forward.NewClient(forward.Options{Egress: guard, MaxIdlePerHost: 64})
	a.relay = forward.NewRelay(forward.Options{Egress: guard, MaxIdlePerHost: 64})
	a.proxy = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    a.client,
		ErrorHandler: a.failed,
		BufferPool:   bufferPool{},
	}
	a.proxy.ErrorLog = discardLog()
	// Only the agent says it did not reach the target: a target's own
	// header of that name must not make the edge answer 502.
	a.proxy.ModifyResponse = func(res *http.Response) error {
		res.Header.Del(tunnel.ErrorHeader)
		return nil
	}
	a.h2 = &http2.Server{
		MaxConcurrentStreams: 1000,
		// Flow-control windows large enough for a stream to fill a
		// link with some latency, small enough to bound what one
		// stream can make the agent hold.
		MaxUploadBufferPerConnection: 8 << 20,
		MaxUploadBufferPerStream:     1 << 20,
	}
	// ConfigureServer ties the HTTP/2 server's connections to base, whose
	// Shutdown then sends each tunnel a GOAWAY: the edge stops opening
	// streams on it and sends new requests through other tunnels, while
	// those in flight finish.
	a.base = &http.Server{}
	if err := http2.ConfigureServer(a.base, a.h2); err != nil {
		return nil, err
	}
	return a, nil
}

// rewrite sends the request where the edge planned it: :scheme (TLS when
// https), :authority and :path as received, headers as received (the
// edge already applied the plan: hop-by-hop and protected headers out,
// X-Forwarded-* and X-Request-Id in).
func rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	out.URL.Scheme = "http"
	if in.TLS != nil {
		out.URL.Scheme = "https"
	}
	out.URL.Host = in.Host
	out.Host = in.Host
	// ReverseProxy re-encodes queries with ';' before Rewrite; the raw
	// query goes on byte for byte, as on the edge.
	out.URL.RawQuery = in.URL.RawQuery
	// ReverseProxy drops X-Forwarded-* before Rewrite; here they are the
	// edge's own, part of its plan.
	for _, k := range forwardedHeaders {
		if v := in.Header[k]; v != nil {
			out.Header[k] = v
		}
	}
}

var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// failed answers a request the agent could not send: a marked answer
// the edge turns into its own 502 or 504 (the reason stays in the logs).
func (a *Agent) failed(w http.ResponseWriter, r *http.Request, err error) {
	code, status := tunnel.ErrUnreachable, http.StatusBadGateway
	var ne net.Error
	switch {
	case r.Context().Err() != nil:
		a.m.requests.WithLabelValues("canceled").Inc()
		a.log.Info("agent request canceled by the edge", "target", r.Host, "path", r.URL.Path)
		return // the edge is gone: nobody reads an answer
	case errors.Is(err, egress.ErrDenied):
		code = tunnel.ErrEgressDenied
	case errors.As(err, &ne) && ne.Timeout():
		code, status = tunnel.ErrTimeout, http.StatusGatewayTimeout
	}
	a.m.requests.WithLabelValues(code).Inc()
	a.log.Warn("agent could not reach the target", "target", r.Host, "path", r.URL.Path, "reason", code, "error", err.Error())
	w.Header().Set(tunnel.ErrorHeader, code)
	w.WriteHeader(status)
}

// ServeHTTP serves one stream of a tunnel.
func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.m.inflight.Inc()
	defer a.m.inflight.Dec()
	if r.Header[tunnel.UpgradeHeader] != nil {
		a.upgrade(w, r) // upgrade.go
		return
	}
	if r.ContentLength != 0 {
		// A body streams through http.Transport, which reads the answer
		// while it still writes the body (a target may answer early).
		a.proxy.ServeHTTP(w, r)
		return
	}
	a.relayOne(w, r)
}

// Run keeps cfg.Connections tunnels open until ctx ends, then lets the
// requests in flight finish (up to Options.Drain) before it returns.
func (a *Agent) Run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { a.base.Shutdown(context.Background()) })
	defer stop()
	var wg sync.WaitGroup
	for i := range int(a.cfg.Connections) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.keep(ctx, i)
		}()
	}
	wg.Wait()
	a.client.Close()
	a.relay.Close()
}

// Connected is how many tunnels are open now.
func (a *Agent) Connected() int { return int(a.connected.Load()) }

// keep holds one tunnel open, reconnecting with jittered exponential
// backoff.
func (a *Agent) keep(ctx context.Context, slot int) {
	fails := 0
	for ctx.Err() == nil {
		c, err := a.dial(ctx)
		if err == nil {
			fails = 0
			a.connected.Add(1)
			a.m.tunnels.Set(float64(a.connected.Load()))
			a.m.connects.Inc()
			a.log.Info("agent connected to the edge", "edge", a.host, "name", a.cfg.Name, "slot", slot)
			// Requests must not end with ctx (their context derives from
			// ServeConn's): the GOAWAY from Run lets them finish, and the
			// connection is closed only after the drain bound.
			stop := context.AfterFunc(ctx, func() { time.AfterFunc(a.opts.Drain, func() { c.Close() }) })
			a.h2.ServeConn(c, &http2.ServeConnOpts{Context: context.WithoutCancel(ctx), Handler: a, BaseConfig: a.base})
			stop()
			c.Close()
			a.connected.Add(-1)
			a.m.tunnels.Set(float64(a.connected.Load()))
			if ctx.Err() != nil {
				return
			}
			err = errors.New("tunnel closed")
		}
		d := min(a.opts.MaxBackoff, a.opts.Backoff<<min(fails, 20))
		wait := d/2 + time.Duration(a.opts.Rand(int64(d/2)+1))
		fails++
		a.log.Warn("agent reconnecting", "edge", a.host, "slot", slot, "error", err.Error(), "in_ms", wait.Milliseconds(), "failures", fails)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// dial opens one tunnel: TCP, TLS verified against cfg.CA or the system
// roots, and the hello.
func (a *Agent) dial(ctx context.Context) (*tunnel.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 30 * time.Second}, Config: a.tls}
	c, err := d.DialContext(dctx, "tcp", a.host)
	if err != nil {
		return nil, err
	}
	tc, err := tunnel.Hello(c.(*tls.Conn), a.host, a.cfg.Name, a.cfg.Token, 10*time.Second)
	if err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}
