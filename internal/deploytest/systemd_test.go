package deploytest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// maxExposure is the `systemd-analyze security` score (0 = fully
// sandboxed, 10 = not at all) a unit may not exceed. The units score 1.1 (the low-port variant 1.4):
// what is left open is what a network service needs (internet sockets, the
// host's network, no IP allow list) plus running in the host's root file
// system. A change that loosens the sandbox noticeably fails here.
const maxExposure = 1.5

// TestSystemdUnits runs `systemd-analyze verify` on each unit in
// deploy/systemd, and on the gateway's low-port variant that its comments
// describe, and logs the `systemd-analyze security` exposure score.
// systemd-analyze reports most mistakes (an unknown key, a value it cannot
// parse) as warnings with exit status 0, so any output fails the test.
func TestSystemdUnits(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	root := repoRoot(t)
	dir := t.TempDir()
	// verify checks that ExecStart's program exists and is executable, so
	// the copies point at a freshly built binary instead of /usr/bin.
	bin := buildDrawbridge(t, dir)

	units := map[string]string{}
	for _, name := range []string{"drawbridge.service", "drawbridge-agent.service"} {
		b, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		units[name] = string(b)
	}
	lowPort, err := lowPortVariant(units["drawbridge.service"])
	if err != nil {
		t.Fatal(err)
	}
	units["drawbridge-lowport.service"] = lowPort

	for name, text := range units {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(text, "ExecStart=/usr/bin/drawbridge ") {
				t.Fatal("ExecStart does not run /usr/bin/drawbridge")
			}
			for _, want := range []string{
				"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
				"ProtectHome=yes", "PrivateTmp=yes", "MemoryDenyWriteExecute=yes",
				"LockPersonality=yes", "SystemCallFilter=@system-service",
			} {
				if !hasLine(text, want) {
					t.Errorf("missing %s", want)
				}
			}
			path := filepath.Join(dir, name)
			text = strings.ReplaceAll(text, "/usr/bin/drawbridge", bin)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errs := run(t, time.Minute, dir, nil, analyze, "verify", path)
			if out+errs != "" {
				t.Errorf("systemd-analyze verify %s:\n%s%s", name, out, errs)
			}
			out, _ = run(t, time.Minute, dir, nil, analyze, "security", "--offline=yes", "--no-pager", path)
			m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no exposure level in:\n%s", out)
			}
			score, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("systemd-analyze security --offline=yes %s: exposure %s %s", name, m[1], m[2])
			if score > maxExposure {
				t.Errorf("exposure %.1f > %.1f:\n%s", score, maxExposure, out)
			}
		})
	}

	t.Run("gateway", func(t *testing.T) {
		u := units["drawbridge.service"]
		for _, want := range []string{
			"StateDirectory=drawbridge",
			"CapabilityBoundingSet=",
			"AmbientCapabilities=",
			"ExecReload=/bin/kill -HUP $MAINPID",
			"ExecStart=/usr/bin/drawbridge serve -c /etc/drawbridge/drawbridge.yaml",
		} {
			if !hasLine(u, want) {
				t.Errorf("missing %s", want)
			}
		}
		if !hasLine(lowPort, "CapabilityBoundingSet=CAP_NET_BIND_SERVICE") || hasLine(lowPort, "CapabilityBoundingSet=") {
			t.Errorf("low-port variant:\n%s", lowPort)
		}
	})
}

// hasLine reports whether text has a line that is exactly line.
func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// lowPortVariant applies what drawbridge.service's comment tells an
// operator to do for a port below 1024: drop the empty capability lines and
// uncomment the three alternatives.
func lowPortVariant(unit string) (string, error) {
	var out []string
	found := 0
	for _, l := range strings.Split(unit, "\n") {
		switch {
		case l == "CapabilityBoundingSet=" || l == "AmbientCapabilities=":
			continue
		case l == "#CapabilityBoundingSet=CAP_NET_BIND_SERVICE" || l == "#AmbientCapabilities=CAP_NET_BIND_SERVICE" || l == "#PrivateUsers=no":
			l = l[1:]
			found++
		case l == "PrivateUsers=yes":
			continue
		}
		out = append(out, l)
	}
	if found != 3 {
		return "", fmt.Errorf("drawbridge.service has %d of the 3 commented low-port lines", found)
	}
	return strings.Join(out, "\n"), nil
}
