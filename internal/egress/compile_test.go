package egress

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
)

func compileText(t *testing.T, text string) (*Guard, error) {
	t.Helper()
	cfg, err := config.Parse("d.yaml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return Compile(cfg, Options{})
}

// followed is what the forwarder's dial to addr, resolved from the target
// name host, meets in the guard.
func followed(g *Guard, host, addr string) error {
	return g.ControlContext(Follow(context.Background(), host), "tcp", addr, nil)
}

// TestCompileDefault: without egress.allow the guard allows exactly the
// IP-literal targets' addresses and ports, and follows each target host
// name on its port: whatever it resolves to when dialed, but the fixed
// denials and loopback. Nothing is resolved at compile time.
func TestCompileDefault(t *testing.T) {
	text := "routes:\n  - path: /a\n    target: http://10.0.0.5:8080/x\n  - path: /b\n    target: https://Backend.Internal./\n  - path: /c\n    target: http://10.0.0.5/\n" +
		"  - path: /d\n    target: http://nowhere.invalid/\n  - path: /e\n    target: http://api.localhost:9000/\n"
	g, err := compileText(t, text)
	if err != nil {
		t.Fatal(err)
	}
	for addr, ok := range map[string]bool{"10.0.0.5:8080": true, "10.0.0.5:80": true, "10.0.0.5:443": false, "10.1.1.1:443": false} {
		if got := g.Check(netip.MustParseAddrPort(addr)) == nil; got != ok {
			t.Errorf("%s allowed = %v, want %v", addr, got, ok)
		}
	}
	if tab := g.Table(); !regexp.MustCompile(`allow +10.0.0.5/32 +80,8080`).MatchString(tab) ||
		!regexp.MustCompile(`allow +backend.internal \(name\) +443 +what the name resolves to`).MatchString(tab) {
		t.Errorf("table:\n%s", tab)
	}
	tests := []struct {
		host, addr string
		want       Reason // 0: allowed
	}{
		{"backend.internal", "10.1.1.1:443", 0},
		{"BACKEND.internal.", "[2001:db8::1]:443", 0},
		{"backend.internal", "10.1.1.1:80", NotAllowed}, // not the name's port: the rules decide
		{"other.internal", "10.1.1.1:443", NotAllowed},  // not a configured name
		{"backend.internal", "169.254.169.254:443", Metadata},
		{"backend.internal", "[64:ff9b::a9fe:a9fe]:443", Metadata},
		{"backend.internal", "0.0.0.0:443", Unspecified},
		{"backend.internal", "224.0.0.1:443", Multicast},
		{"backend.internal", "127.0.0.1:443", LoopbackNotNamed},
		{"backend.internal", "[::1]:443", LoopbackNotNamed},
		{"nowhere.invalid", "10.9.9.9:80", 0},
		{"api.localhost", "127.0.0.1:9000", 0}, // localhost names loopback itself
		{"api.localhost", "169.254.170.2:9000", Metadata},
	}
	for _, tt := range tests {
		err := followed(g, tt.host, tt.addr)
		var de *DeniedError
		switch {
		case tt.want == 0 && err != nil:
			t.Errorf("%s -> %s: %v, want allowed", tt.host, tt.addr, err)
		case tt.want != 0 && (!errors.As(err, &de) || de.Reason != tt.want):
			t.Errorf("%s -> %s: %v, want %v", tt.host, tt.addr, err, tt.want)
		}
	}
	// Without the mark a dial is checked on the rules alone: the name's
	// answer is followed only for the forwarder's own dial of that name.
	if err := g.ControlContext(context.Background(), "tcp", "10.1.1.1:443", nil); err == nil {
		t.Error("unmarked dial to a followed address allowed")
	}
}

// TestCompileExplicitDoesNotFollow: with egress.allow, a target name's
// answer is checked on the rules like any address (rebinding stays
// caught), and a loopback answer passes a loopback rule.
func TestCompileExplicitDoesNotFollow(t *testing.T) {
	g, err := compileText(t, "egress:\n  allow: [\"127.0.0.0/8:8080\", \"10.0.0.0/8:443\"]\nroutes:\n  - path: /b\n    target: https://backend.internal/\n")
	if err != nil {
		t.Fatal(err)
	}
	if g.Follows("backend.internal") {
		t.Error("explicit rules follow a name")
	}
	for addr, ok := range map[string]bool{"10.1.1.1:443": true, "192.168.1.1:443": false, "127.0.0.2:8080": true, "169.254.169.254:443": false} {
		if got := followed(g, "backend.internal", addr) == nil; got != ok {
			t.Errorf("%s allowed = %v, want %v", addr, got, ok)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"bad rule names its line", "egress:\n  allow:\n    - 10.0.0.0/8:80\n    - 10.0.0.5/8:80\nroutes:\n  - path: /a\n    target: http://10.0.0.1/\n",
			`d.yaml:4: egress.allow[1] "10.0.0.5/8:80": 10.0.0.5/8 has host bits set`},
		{"legacy notation", "routes:\n  - path: /a\n    target: http://0x7f000001/\n", `d.yaml:2: route /a: target host "0x7f000001" looks like an IPv4 address in a legacy notation`},
		{"metadata opt-in by name", "routes:\n  - path: /a\n    target: http://metadata.internal/\n    allow_metadata: true\n", `d.yaml:2: route /a: allow_metadata needs a target naming a metadata endpoint by IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileText(t, tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCompileMetadataOptIn: allow_metadata opens exactly the target's
// metadata address, and only if a rule covers it.
func TestCompileMetadataOptIn(t *testing.T) {
	g, err := compileText(t, "routes:\n  - path: /a\n    target: http://169.254.170.2/v2/credentials\n    allow_metadata: true\n")
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
	g, err := Compile(cfg, Options{Lambda: true})
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

// TestCompileDefaultFanOut: a fan-out route's every target is in the
// default rules, addresses and names alike.
func TestCompileDefaultFanOut(t *testing.T) {
	g, err := compileText(t, "routes:\n  - path: /h\n    targets:\n      - {target: \"http://10.0.0.5:8080/ci\"}\n      - {target: \"http://10.0.0.6:9000/chat\"}\n      - {target: \"http://chat.internal:7000/\"}\n    delivery: {mode: async}\n")
	if err != nil {
		t.Fatal(err)
	}
	for addr, ok := range map[string]bool{"10.0.0.5:8080": true, "10.0.0.6:9000": true, "10.0.0.6:8080": false} {
		if got := g.Check(netip.MustParseAddrPort(addr)) == nil; got != ok {
			t.Errorf("%s allowed = %v, want %v", addr, got, ok)
		}
	}
	if err := followed(g, "chat.internal", "10.1.1.1:7000"); err != nil {
		t.Errorf("the third target's name: %v", err)
	}
}
