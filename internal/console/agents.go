package console

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

// AgentSource is what the agents page reads: in serve, the tunnel
// registry (docs/agent.md), adapted in internal/cli so that the console
// knows nothing of tunnels but these figures.
type AgentSource interface {
	Agents() []Agent
}

// Agent is one agent name at the edge. It never holds a credential.
type Agent struct {
	Name string
	// Configured: the agents: block in force has a credential for it
	// (an unconfigured name shows only while its tunnels close).
	Configured bool
	Tunnels    []AgentTunnel
	// Since the edge started: tunnels accepted (connects and
	// reconnects), requests sent, body bytes sent to and received from
	// the agent.
	Connects, Requests, Sent, Received uint64
}

// AgentTunnel is one connected tunnel of an agent.
type AgentTunnel struct {
	ID       uint64
	Remote   string
	Since    time.Time
	Streams  int64 // in flight
	Requests uint64
	RTT      time.Duration // last ping; 0: not measured yet
}

type agentsData struct {
	Agents []agentRow
	// Restart: the config has an agents: block but this process opened
	// no agents listener (the block came with a reload).
	Restart   bool
	Connected int // tunnels, over every agent
	Now       time.Time
}

type agentRow struct {
	Agent
	Streams int64    // in flight over all its tunnels
	Routes  []string // paths of the routes with via: this name
}

func (c *Console) agents(w http.ResponseWriter, r *http.Request) {
	cfg := c.d.Config()
	d := agentsData{Now: c.d.Now()}
	var as []Agent
	switch {
	case c.d.Agents != nil:
		as = c.d.Agents.Agents()
	case cfg.Agents != nil:
		d.Restart = true
		for _, t := range cfg.Agents.Tokens {
			if !slices.ContainsFunc(as, func(a Agent) bool { return a.Name == t.Name }) {
				as = append(as, Agent{Name: t.Name, Configured: true})
			}
		}
		slices.SortFunc(as, func(x, y Agent) int { return strings.Compare(x.Name, y.Name) })
	}
	for _, a := range as {
		row := agentRow{Agent: a, Routes: viaRoutes(cfg, a.Name)}
		for _, t := range a.Tunnels {
			row.Streams += t.Streams
		}
		d.Connected += len(a.Tunnels)
		d.Agents = append(d.Agents, row)
	}
	c.render(w, r, http.StatusOK, "agents", page{Title: "Agents", Nav: "agents", Data: d})
}

func viaRoutes(cfg *config.Config, name string) []string {
	var out []string
	for _, r := range cfg.Routes {
		if r.Via == name {
			out = append(out, r.Path)
		}
	}
	return out
}

// byteTotal is byteSize for totals that may pass what a body can hold.
func byteTotal(n uint64) string {
	if n < 1<<30 {
		return byteSize(int(n))
	}
	return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
}
