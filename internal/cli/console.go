package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/console"
	"github.com/drawbridge/drawbridge/internal/tunnel"
)

// withConsole puts the web console and its guard in front of the admin
// API (docs/console.md). The recent view it reads is s.metrics.Recent,
// set in start before the first gateway is built.
func (s *Server) withConsole(api http.Handler) http.Handler {
	return console.New(console.Deps{
		Admin:      api,
		Config:     s.cfg.Load,
		Metrics:    s.metrics,
		Deliveries: s.state.history,
		Gateway:    s.current.Load,
		Agents:     s.consoleAgents(),
		Log:        s.log,
		Now:        s.now,
	})
}

// consoleAgents is the agents page's view of the tunnel registry, or nil
// without an agents listener. The console gets figures, not the registry:
// nothing there can reach a tunnel or a credential.
func (s *Server) consoleAgents() console.AgentSource {
	if s.agents == nil {
		return nil
	}
	return agentsView{s.agents}
}

type agentsView struct{ e *tunnel.Edge }

func (v agentsView) Agents() []console.Agent {
	snap := v.e.Snapshot()
	out := make([]console.Agent, 0, len(snap))
	for _, a := range snap {
		ca := console.Agent{Name: a.Name, Configured: a.Configured, Connects: a.Connects,
			Requests: a.Requests, Sent: a.Sent, Received: a.Received}
		for _, t := range a.Tunnels {
			ca.Tunnels = append(ca.Tunnels, console.AgentTunnel{ID: t.ID, Remote: t.Remote, Since: t.Since,
				Streams: t.Streams, Requests: t.Requests, RTT: t.RTT})
		}
		out = append(out, ca)
	}
	return out
}

// listenAdmin opens the admin listener, over TLS requiring a client
// certificate from admin_tls.client_ca when admin_tls is set.
func listenAdmin(cfg *config.Config) (net.Listener, error) {
	var tc *tls.Config
	if t := cfg.AdminTLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("admin_tls: %w", err)
		}
		pem, err := os.ReadFile(t.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("admin_tls: client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("admin_tls: client_ca %s holds no PEM certificate", t.ClientCA)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.Admin)
	if err != nil || tc == nil {
		return ln, err
	}
	return tls.NewListener(ln, tc), nil
}

// AdminTokenEnv holds the admin_auth token `drawbridge deliveries` sends
// to a running serve's admin listener.
const AdminTokenEnv = "DRAWBRIDGE_ADMIN_TOKEN"
