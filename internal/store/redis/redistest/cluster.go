package redistest

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of real redis-server processes on loopback,
// made by redis-cli --cluster create and killed when the test ends.
type Cluster struct {
	Primaries []*Server
	Replicas  []*Server // Replicas[i] replicates some primary (redis-cli picks)
	t         testing.TB
}

// StartCluster starts primaries cluster nodes, each with replicas
// replicas, and waits until every node reports cluster_state:ok. The
// node timeout is 1 s, so a killed primary's replica takes over within
// about 2 s.
func StartCluster(t testing.TB, primaries, replicas int, opts Options) *Cluster {
	t.Helper()
	cli := Require(t, "redis-cli")
	opts.Config = append([]string{"cluster-enabled yes", "cluster-config-file nodes.conf",
		"cluster-node-timeout 1000", "cluster-replica-validity-factor 0"}, opts.Config...)
	var all []*Server
	for i := 0; i < primaries*(1+replicas); i++ {
		all = append(all, Start(t, opts))
	}
	args := []string{"--cluster", "create"}
	for _, s := range all {
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", fmt.Sprint(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c := &Cluster{t: t}
	deadline := time.Now().Add(startTimeout)
	for _, s := range all {
		for {
			info, _ := exec.Command(cli, "-h", "127.0.0.1", "-p", s.port(), "cluster", "info").Output()
			if strings.Contains(string(info), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster not ok after %v: node %s says\n%s", startTimeout, s.Addr, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		role, _ := exec.Command(cli, "-h", "127.0.0.1", "-p", s.port(), "role").Output()
		if strings.HasPrefix(string(role), "master") {
			c.Primaries = append(c.Primaries, s)
		} else {
			c.Replicas = append(c.Replicas, s)
		}
	}
	if len(c.Primaries) != primaries {
		t.Fatalf("redis cluster: %d primaries, want %d", len(c.Primaries), primaries)
	}
	return c
}

// Addrs are every node's host:port.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, s := range append(append([]*Server(nil), c.Primaries...), c.Replicas...) {
		a = append(a, s.Addr)
	}
	return a
}

// URL is the cluster as a state.url (every node listed).
func (c *Cluster) URL() string { return "redis+cluster://" + strings.Join(c.Addrs(), ",") }

// Server is the node listening on addr (nil: none).
func (c *Cluster) Server(addr string) *Server {
	for _, s := range append(append([]*Server(nil), c.Primaries...), c.Replicas...) {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

func (s *Server) port() string {
	_, p, _ := strings.Cut(s.Addr, ":")
	return p
}
