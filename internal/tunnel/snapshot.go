package tunnel

import (
	"cmp"
	"maps"
	"slices"
	"sync/atomic"
	"time"
)

// nameStats are one agent name's totals since the edge started. They
// outlive its tunnels (a reconnect keeps counting) and, like the
// drawbridge_agent* series, exist only for names a route's via or an
// authenticated tunnel brought in, so they stay bounded by the config.
type nameStats struct {
	connects, requests, sent, received atomic.Uint64
}

// statsFor is name's totals, made on first use.
func (e *Edge) statsFor(name string) *nameStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statsLocked(name)
}

func (e *Edge) statsLocked(name string) *nameStats {
	s := e.stats[name]
	if s == nil {
		s = &nameStats{}
		e.stats[name] = s
	}
	return s
}

// AgentStatus is one agent name as the edge sees it, for the console. It
// carries no credential, not even a digest.
type AgentStatus struct {
	Name string
	// Configured: the agents: block in force lists a credential for the
	// name. A name that is not is shown only while its tunnels close.
	Configured bool
	Tunnels    []TunnelStatus // connected, oldest first
	// Totals since the edge started, across every tunnel the name had:
	// tunnels accepted (connects and reconnects), requests sent (streams
	// opened: a request retried on another tunnel counts twice), and
	// body bytes sent to and received from the agent.
	Connects, Requests, Sent, Received uint64
}

// TunnelStatus is one connected tunnel.
type TunnelStatus struct {
	ID       uint64
	Remote   string // the agent's address as the edge sees it
	Since    time.Time
	Streams  int64         // requests in flight
	Requests uint64        // streams opened on it
	RTT      time.Duration // last PING round trip; 0 until the first one
}

// Snapshot is every configured agent name, connected or not, and any name
// still connected that no longer is, sorted by name. It takes the
// registry's lock once, briefly; the counters are read without it, so the
// figures of one row may be a few requests apart.
func (e *Edge) Snapshot() []AgentStatus {
	keys := e.creds.Load().keys
	e.mu.Lock()
	names := map[string]bool{}
	for n := range keys {
		names[n] = true
	}
	conns := map[string][]*tunnel{}
	for n, ts := range e.byName {
		names[n] = true
		conns[n] = slices.Clone(ts)
	}
	stats := maps.Clone(e.stats)
	e.mu.Unlock()

	out := make([]AgentStatus, 0, len(names))
	for _, n := range slices.Sorted(maps.Keys(names)) {
		a := AgentStatus{Name: n, Configured: len(keys[n]) > 0}
		if s := stats[n]; s != nil {
			a.Connects, a.Requests = s.connects.Load(), s.requests.Load()
			a.Sent, a.Received = s.sent.Load(), s.received.Load()
		}
		for _, t := range conns[n] {
			a.Tunnels = append(a.Tunnels, TunnelStatus{ID: t.id, Remote: t.remote, Since: t.since,
				Streams: t.inflight.Load(), Requests: t.requests.Load(), RTT: time.Duration(t.rtt.Load())})
		}
		slices.SortFunc(a.Tunnels, func(x, y TunnelStatus) int { return cmp.Compare(x.ID, y.ID) })
		out = append(out, a)
	}
	return out
}
