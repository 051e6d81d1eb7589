package redistest

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// SentinelMaster is the name the sentinels of StartSentinel monitor.
const SentinelMaster = "drawbridge"

// Sentinels is a replicated pair watched by three sentinels, all real
// processes on loopback, killed when the test ends.
type Sentinels struct {
	Primary, Replica *Server
	Sentinels        []*Server
	t                testing.TB
}

// StartSentinel starts a primary, one replica of it and three sentinels
// (redis-server --sentinel: Debian's redis-server package needs no
// redis-sentinel one) with a quorum of 2, and waits until every sentinel
// knows the replica and the other two. down-after-milliseconds is 1000
// and failover-timeout 3000 (defaults: 30 s and 3 min), so a killed
// primary is replaced within about 2 s. opts applies to the primary and
// the replica.
func StartSentinel(t testing.TB, opts Options) *Sentinels {
	t.Helper()
	Require(t, "redis-cli")
	s := &Sentinels{t: t}
	// Full syncs start at once (7.0 waits 5 s for more replicas by
	// default).
	opts.Config = append([]string{"repl-diskless-sync-delay 0"}, opts.Config...)
	s.Primary = Start(t, opts)
	ro := opts
	ro.Config = append(append([]string(nil), opts.Config...), "replicaof 127.0.0.1 "+s.Primary.port())
	s.Replica = Start(t, ro)
	deadline := time.Now().Add(startTimeout)
	for {
		out, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", s.Replica.port(), "info", "replication").Output()
		if strings.Contains(string(out), "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not in sync after %v:\n%s", s.Replica.Addr, startTimeout, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 3 {
		s.Sentinels = append(s.Sentinels, Start(t, Options{sentinel: true, Config: []string{
			"sentinel monitor " + SentinelMaster + " 127.0.0.1 " + s.Primary.port() + " 2",
			"sentinel down-after-milliseconds " + SentinelMaster + " 1000",
			"sentinel failover-timeout " + SentinelMaster + " 3000",
		}}))
	}
	for _, sn := range s.Sentinels {
		for {
			out, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", sn.port(), "sentinel", "master", SentinelMaster).Output()
			f := strings.Fields(string(out))
			m := map[string]string{}
			for i := 0; i+1 < len(f); i += 2 {
				m[f[i]] = f[i+1]
			}
			if m["num-slaves"] == "1" && m["num-other-sentinels"] == "2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sentinel %s not ready after %v: %s", sn.Addr, startTimeout, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return s
}

// Addrs are the sentinels' host:port.
func (s *Sentinels) Addrs() []string {
	var a []string
	for _, sn := range s.Sentinels {
		a = append(a, sn.Addr)
	}
	return a
}

// URL is the deployment as a state.url.
func (s *Sentinels) URL() string {
	return "redis+sentinel://" + strings.Join(s.Addrs(), ",") + "/" + SentinelMaster + "/0"
}

// PrimaryAddr is the primary's address once every sentinel names the
// same one (after a failover the others learn it from the one that
// promoted the replica, within a second or so); it fails the test if they
// still disagree after 5 s.
func (s *Sentinels) PrimaryAddr() string {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		seen := map[string]bool{}
		for _, sn := range s.Sentinels {
			out, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", sn.port(), "sentinel", "get-master-addr-by-name", SentinelMaster).Output()
			if f := strings.Fields(string(out)); len(f) == 2 {
				seen[f[0]+":"+f[1]] = true
			} else {
				seen[""] = true
			}
		}
		if len(seen) == 1 && !seen[""] {
			for a := range seen {
				return a
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: the sentinels disagree on the primary: %v", seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// String describes the deployment for logs.
func (s *Sentinels) String() string {
	return fmt.Sprintf("primary %s, replica %s, sentinels %v", s.Primary.Addr, s.Replica.Addr, s.Addrs())
}
