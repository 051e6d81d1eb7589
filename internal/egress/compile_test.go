package egress

import (
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
)

func compileText(t *testing.T, text string, resolve Resolver) (*Guard, error) {
	t.Helper()
	cfg, err := config.Parse("d.yaml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return Compile(cfg, Options{}, resolve)
}

// TestCompileDefault: without egress.allow the guard allows exactly the
// targets' addresses and ports, names resolved at each Compile (a reload
// follows DNS).
func TestCompileDefault(t *testing.T) {
	text := "routes:\n  - path: /a\n    target: http://10.0.0.5:8080/x\n  - path: /b\n    target: https://backend.internal/\n  - path: /c\n    target: http://10.0.0.5/\n"
	answer := "10.1.1.1"
	resolve := func(host string) ([]netip.Addr, error) {
		if host != "backend.internal" {
			t.Errorf("resolved %q", host)
		}
		return []netip.Addr{netip.MustParseAddr(answer)}, nil
	}
	g, err := compileText(t, text, resolve)
	if err != nil {
		t.Fatal(err)
	}
	for addr, ok := range map[string]bool{"10.0.0.5:8080": true, "10.0.0.5:80": true, "10.0.0.5:443": false,
		"10.1.1.1:443": true, "10.1.1.1:80": false, "10.1.1.2:443": false} {
		if got := g.Check(netip.MustParseAddrPort(addr)) == nil; got != ok {
			t.Errorf("%s allowed = %v, want %v", addr, got, ok)
		}
	}
	if tab := g.Table(); !regexp.MustCompile(`allow +10.0.0.5/32 +80,8080`).MatchString(tab) {
		t.Errorf("ports of one address not merged:\n%s", tab)
	}
	answer = "10.2.2.2" // DNS moved; a reload compiles again
	g, err = compileText(t, text, resolve)
	if err != nil {
		t.Fatal(err)
	}
	if g.Check(netip.MustParseAddrPort("10.2.2.2:443")) != nil || g.Check(netip.MustParseAddrPort("10.1.1.1:443")) == nil {
		t.Error("recompiled guard does not follow the new DNS answer")
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"bad rule names its line", "egress:\n  allow:\n    - 10.0.0.0/8:80\n    - 10.0.0.5/8:80\nroutes:\n  - path: /a\n    target: http://10.0.0.1/\n",
			`d.yaml:4: egress.allow[1] "10.0.0.5/8:80": 10.0.0.5/8 has host bits set`},
		{"legacy notation", "routes:\n  - path: /a\n    target: http://0x7f000001/\n", `d.yaml:2: route /a: target host "0x7f000001" looks like an IPv4 address in a legacy notation`},
		{"unresolvable", "routes:\n  - path: /a\n    target: http://nowhere.invalid/\n", `d.yaml:2: route /a: egress default: target "http://nowhere.invalid/": resolve "nowhere.invalid": no`},
		{"metadata opt-in by name", "routes:\n  - path: /a\n    target: http://metadata.internal/\n    allow_metadata: true\n", `d.yaml:2: route /a: allow_metadata needs a target naming a metadata endpoint by IP address`},
	}
	resolve := func(host string) ([]netip.Addr, error) { return nil, nil }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileText(t, tt.text, resolve)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCompileMetadataOptIn: allow_metadata opens exactly the target's
// metadata address, and only if a rule covers it.
func TestCompileMetadataOptIn(t *testing.T) {
	g, err := compileText(t, "routes:\n  - path: /a\n    target: http://169.254.170.2/v2/credentials\n    allow_metadata: true\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Check(netip.MustParseAddrPort("169.254.170.2:80")); err != nil {
		t.Errorf("opted-in endpoint denied: %v", err)
	}
	if err := g.Check(netip.MustParseAddrPort("169.254.169.254:80")); err == nil {
		t.Error("another metadata endpoint allowed")
	}
	if len(g.Warnings()) != 1 {
		t.Errorf("warnings = %q", g.Warnings())
	}
}

// TestCompileLambda: in Lambda mode loopback is refused even when the
// default list was built from a loopback target (the Runtime API listens
// there), and other targets still pass.
func TestCompileLambda(t *testing.T) {
	cfg, err := config.Parse("d.yaml", []byte("routes:\n  - path: /a\n    target: http://127.0.0.1:9001/\n  - path: /b\n    target: http://10.0.0.1/\n"),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g, err := Compile(cfg, Options{Lambda: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var de *DeniedError
	if err := g.Check(netip.MustParseAddrPort("127.0.0.1:9001")); !errors.As(err, &de) || de.Reason != Loopback {
		t.Errorf("runtime API in Lambda: %v", err)
	}
	if err := g.Check(netip.MustParseAddrPort("10.0.0.1:80")); err != nil {
		t.Errorf("target in Lambda: %v", err)
	}
	if !strings.Contains(g.Table(), "Lambda: the Runtime API listens on loopback") {
		t.Errorf("table lacks the Lambda row:\n%s", g.Table())
	}
}
