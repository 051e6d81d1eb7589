package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustParse(t testing.TB, entries ...string) []Rule {
	t.Helper()
	rules, err := Parse(entries)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func TestCheck(t *testing.T) {
	typical := mustParse(t,
		"10.0.0.0/24:80,443",
		"172.0.0.10:8080",
		"[2001:db8::/64]:443",
		"127.0.0.1:9000",
		"[::1]:9000",
	)
	open := mustParse(t, "0.0.0.0/0:80,443,9000", "[::/0]:80,443,9000")
	everything := mustParse(t,
		"0.0.0.0/0:80,443,9000", "[::/0]:80,443,9000",
		"127.0.0.0/8:80,443,9000", "[::1]:80,443,9000",
	)
	meta := netip.MustParseAddr("169.254.169.254")
	tests := []struct {
		name   string
		rules  []Rule
		opts   Options
		addr   string
		reason Reason // 0: allowed
	}{
		// CIDR edges and ports.
		{"first address of cidr", typical, Options{}, "10.0.0.0:80", 0},
		{"last address of cidr", typical, Options{}, "10.0.0.255:443", 0},
		{"just below cidr", typical, Options{}, "9.255.255.255:80", NotAllowed},
		{"just above cidr", typical, Options{}, "10.0.1.0:80", NotAllowed},
		{"allowed address, other port", typical, Options{}, "10.0.0.7:8080", PortNotAllowed},
		{"allowed address, port 0", typical, Options{}, "10.0.0.7:0", PortNotAllowed},
		{"single address", typical, Options{}, "172.0.0.10:8080", 0},
		{"next to single address", typical, Options{}, "172.0.0.11:8080", NotAllowed},
		{"single address, other port", typical, Options{}, "172.0.0.10:80", PortNotAllowed},
		{"ipv6 first", typical, Options{}, "[2001:db8::]:443", 0},
		{"ipv6 last", typical, Options{}, "[2001:db8::ffff:ffff:ffff:ffff]:443", 0},
		{"ipv6 above", typical, Options{}, "[2001:db8:0:1::]:443", NotAllowed},
		{"ipv6 other port", typical, Options{}, "[2001:db8::1]:80", PortNotAllowed},
		{"mapped form of allowed ipv4", typical, Options{}, "[::ffff:10.0.0.1]:80", 0},
		{"zone is ignored", typical, Options{}, "[2001:db8::1%eth0]:443", 0},
		{"ipv4 rule does not cover ipv6", typical, Options{}, "[::a00:1]:80", NotAllowed},

		// Loopback.
		{"named loopback", typical, Options{}, "127.0.0.1:9000", 0},
		{"named ipv6 loopback", typical, Options{}, "[::1]:9000", 0},
		{"other loopback address", typical, Options{}, "127.0.0.2:9000", NotAllowed},
		{"loopback under 0.0.0.0/0", open, Options{}, "127.0.0.1:80", LoopbackNotNamed},
		{"ipv6 loopback under ::/0", open, Options{}, "[::1]:80", LoopbackNotNamed},
		{"named loopback, lambda", typical, Options{Lambda: true}, "127.0.0.1:9000", Loopback},
		{"named ipv6 loopback, lambda", typical, Options{Lambda: true}, "[::1]:9000", Loopback},
		{"runtime api, lambda", everything, Options{Lambda: true}, "127.0.0.1:9000", Loopback},
		{"other loopback, lambda", everything, Options{Lambda: true}, "127.255.255.254:80", Loopback},
		{"non-loopback, lambda", typical, Options{Lambda: true}, "10.0.0.1:80", 0},

		// Metadata, denied whatever the rules say (docs/hardening.md#cloud-metadata-endpoints).
		{"imds under 0.0.0.0/0", open, Options{}, "169.254.169.254:80", Metadata},
		{"imds under its own rule", mustParse(t, "169.254.169.254:80"), Options{}, "169.254.169.254:80", Metadata},
		{"imds mapped", open, Options{}, "[::ffff:169.254.169.254]:80", Metadata},
		{"imds ipv6", open, Options{}, "[fd00:ec2::254]:80", Metadata},
		{"ecs credentials", open, Options{}, "169.254.170.2:80", Metadata},
		{"eks pod identity", open, Options{}, "169.254.170.23:80", Metadata},
		{"eks pod identity ipv6", open, Options{}, "[fd00:ec2::23]:80", Metadata},
		{"alibaba", open, Options{}, "100.100.100.200:80", Metadata},
		{"next to imds", open, Options{}, "169.254.169.253:80", 0},
		{"imds opted in", mustParse(t, "169.254.169.254:80"), Options{AllowMetadata: []netip.Addr{meta}}, "169.254.169.254:80", 0},
		{"imds opted in, mapped opt-in", mustParse(t, "169.254.169.254:80"), Options{AllowMetadata: []netip.Addr{netip.MustParseAddr("::ffff:169.254.169.254")}}, "169.254.169.254:80", 0},
		{"imds opted in but no rule", typical, Options{AllowMetadata: []netip.Addr{meta}}, "169.254.169.254:80", NotAllowed},
		{"imds opted in, other metadata still denied", open, Options{AllowMetadata: []netip.Addr{meta}}, "169.254.170.2:80", Metadata},
		{"imds opted in, nat64 form still denied", open, Options{AllowMetadata: []netip.Addr{meta}}, "[64:ff9b::a9fe:a9fe]:80", Metadata},

		// Embedded IPv4 (docs/hardening.md#embedded-ipv4): decoded, and must pass on its own.
		{"compatible imds", open, Options{}, "[::169.254.169.254]:80", Metadata},
		{"compatible loopback", open, Options{}, "[::127.0.0.1]:80", LoopbackNotNamed},
		{"translated imds", open, Options{}, "[::ffff:0:169.254.169.254]:80", Metadata},
		{"nat64 imds", open, Options{}, "[64:ff9b::a9fe:a9fe]:80", Metadata},
		{"nat64 loopback", open, Options{}, "[64:ff9b::7f00:1]:80", LoopbackNotNamed},
		{"nat64 loopback, lambda", everything, Options{Lambda: true}, "[64:ff9b::7f00:1]:80", Loopback},
		{"nat64 allowed ipv4", open, Options{}, "[64:ff9b::a00:1]:443", 0},
		{"nat64 prefix rule alone", mustParse(t, "[64:ff9b::/96]:443"), Options{}, "[64:ff9b::a00:1]:443", NotAllowed},
		{"nat64 prefix rule and ipv4 rule", mustParse(t, "[64:ff9b::/96]:443", "10.0.0.0/8:443"), Options{}, "[64:ff9b::a00:1]:443", 0},
		{"nat64 ipv4 rule, other port", mustParse(t, "[64:ff9b::/96]:443", "10.0.0.0/8:80"), Options{}, "[64:ff9b::a00:1]:443", PortNotAllowed},
		{"nat64 local-use /96 imds", open, Options{}, "[64:ff9b:1::a9fe:a9fe]:80", Metadata},
		{"nat64 local-use /48 imds", open, Options{}, "[64:ff9b:1:a9fe:a9:fe00::]:80", Metadata},
		{"nat64 local-use /64 imds", open, Options{}, "[64:ff9b:1:0:a9:fea9:fe00:0]:80", Metadata},
		{"6to4 imds", open, Options{}, "[2002:a9fe:a9fe::1]:80", Metadata},
		{"6to4 loopback", open, Options{}, "[2002:7f00:1::]:80", LoopbackNotNamed},
		{"6to4 unspecified", open, Options{}, "[2002::1]:80", Unspecified},
		{"teredo client imds", open, Options{}, "[2001:0:a00:1:0:0:5601:5601]:80", Metadata},
		{"teredo server imds", open, Options{}, "[2001:0:a9fe:a9fe::f5ff:fffe]:80", Metadata},
		{"isatap imds", open, Options{}, "[2001:db8::5efe:a9fe:a9fe]:80", Metadata},
		{"isatap global imds", open, Options{}, "[2001:db8::200:5efe:a9fe:a9fe]:80", Metadata},
		{"plain ipv6 not decoded", open, Options{}, "[2001:db8::a9fe:a9fe]:80", 0},

		// Never destinations.
		{"unspecified ipv4", open, Options{}, "0.0.0.0:80", Unspecified},
		{"this network", open, Options{}, "0.1.2.3:80", Unspecified},
		{"unspecified ipv6", open, Options{}, "[::]:80", Unspecified},
		{"unspecified mapped", open, Options{}, "[::ffff:0.0.0.0]:80", Unspecified},
		{"multicast ipv4", open, Options{}, "224.0.0.1:80", Multicast},
		{"multicast ipv4 top", open, Options{}, "239.255.255.255:80", Multicast},
		{"multicast ipv6", open, Options{}, "[ff02::1]:80", Multicast},
		{"broadcast", open, Options{}, "255.255.255.255:80", Broadcast},
		{"reserved below broadcast is up to rules", open, Options{}, "255.255.255.254:80", 0},
		{"no rules", nil, Options{}, "10.0.0.1:80", NotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New(tt.rules, tt.opts)
			ap := netip.MustParseAddrPort(tt.addr)
			err := g.Check(ap)
			if tt.reason == 0 {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want allowed", tt.addr, err)
				}
				return
			}
			if !errors.Is(err, ErrDenied) {
				t.Fatalf("Check(%s) = %v, want a denial", tt.addr, err)
			}
			var de *DeniedError
			if !errors.As(err, &de) || de.Reason != tt.reason {
				t.Fatalf("Check(%s) = %v, want reason %q", tt.addr, err, tt.reason)
			}
			if !strings.Contains(err.Error(), ap.String()) {
				t.Errorf("error %q does not name the address %s", err, ap)
			}
		})
	}
}

func TestCheckNilGuard(t *testing.T) {
	var g *Guard
	if err := g.Check(netip.MustParseAddrPort("10.0.0.1:80")); !errors.Is(err, ErrDenied) {
		t.Fatalf("nil guard allowed: %v", err)
	}
	if err := g.Control("tcp4", "10.0.0.1:80", nil); !errors.Is(err, ErrDenied) {
		t.Fatalf("nil guard allowed: %v", err)
	}
}

func TestCheckInvalid(t *testing.T) {
	g := New(mustParse(t, "0.0.0.0/0:80"), Options{})
	var de *DeniedError
	if err := g.Check(netip.AddrPort{}); !errors.As(err, &de) || de.Reason != Invalid {
		t.Fatalf("Check(zero) = %v, want Invalid", err)
	}
}

func TestEmbeddedError(t *testing.T) {
	g := New(mustParse(t, "[::/0]:80"), Options{})
	err := g.Check(netip.MustParseAddrPort("[64:ff9b::a9fe:a9fe]:80"))
	want := "egress denied: [64:ff9b::a9fe:a9fe]:80: 169.254.169.254 embedded (NAT64): cloud metadata or credential endpoint"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestControl(t *testing.T) {
	g := New(mustParse(t, "10.0.0.0/8:80", "[2001:db8::/32]:443"), Options{})
	tests := []struct {
		name, network, address string
		reason                 Reason
	}{
		{"tcp4 allowed", "tcp4", "10.1.2.3:80", 0},
		{"tcp allowed", "tcp", "10.1.2.3:80", 0},
		{"tcp6 allowed", "tcp6", "[2001:db8::1]:443", 0},
		{"tcp6 zone allowed", "tcp6", "[2001:db8::1%lo]:443", 0},
		{"tcp4 denied", "tcp4", "10.1.2.3:81", PortNotAllowed},
		{"udp denied", "udp4", "10.1.2.3:80", Network},
		{"unix denied", "unix", "/run/x.sock", Network},
		{"hostname is not an address", "tcp", "example.com:80", Invalid},
		{"no port", "tcp4", "10.1.2.3", Invalid},
		{"empty", "tcp4", "", Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := g.Control(tt.network, tt.address, nil)
			if tt.reason == 0 {
				if err != nil {
					t.Fatalf("Control(%s, %s) = %v", tt.network, tt.address, err)
				}
				return
			}
			var de *DeniedError
			if !errors.Is(err, ErrDenied) || !errors.As(err, &de) || de.Reason != tt.reason {
				t.Fatalf("Control(%s, %s) = %v, want %q", tt.network, tt.address, err, tt.reason)
			}
		})
	}
}

// TestNewCopiesRules: a Guard is immutable even if the caller reuses the
// rule slice it was built from.
func TestNewCopiesRules(t *testing.T) {
	rules := mustParse(t, "10.0.0.0/8:80")
	g := New(rules, Options{})
	rules[0].Ports[0] = 22
	rules[0].Prefix = netip.MustParsePrefix("192.168.0.0/16")
	if err := g.Check(netip.MustParseAddrPort("10.0.0.1:80")); err != nil {
		t.Fatal(err)
	}
	if err := g.Check(netip.MustParseAddrPort("10.0.0.1:22")); err == nil {
		t.Fatal("guard followed a change to the caller's rules")
	}
}

// TestNewNormalises: rules built by hand (not through Parse) are masked,
// unmapped and sorted like parsed ones.
func TestNewNormalises(t *testing.T) {
	g := New([]Rule{
		{Prefix: netip.MustParsePrefix("10.0.0.7/8"), Ports: []uint16{443, 80}},
		{Prefix: netip.MustParsePrefix("::ffff:192.168.0.0/112"), Ports: []uint16{80}},
		{Prefix: netip.Prefix{}, Ports: []uint16{80}},
	}, Options{})
	for _, s := range []string{"10.9.9.9:80", "10.9.9.9:443", "192.168.3.4:80"} {
		if err := g.Check(netip.MustParseAddrPort(s)); err != nil {
			t.Errorf("Check(%s) = %v", s, err)
		}
	}
}

func TestTable(t *testing.T) {
	rules := mustParse(t, "0.0.0.0/0:80,443", "10.0.0.0/8:8080", "[64:ff9b::/96]:443", "127.0.0.1:9000")
	got := New(rules, Options{Lambda: true, AllowMetadata: []netip.Addr{netip.MustParseAddr("169.254.170.2")}}).Table()
	for _, want := range []string{
		"ACTION",
		"deny    169.254.169.254",
		"allow*  169.254.170.2",
		"WARNING: metadata endpoint opted in",
		"deny    127.0.0.0/8, ::1",
		"allow   0.0.0.0/0",
		"80,443",
		"except metadata 169.254.169.254, 169.254.170.23, 100.100.100.200",
		"loopback denied (Lambda)",
		"allow   [64:ff9b::/96]",
		"embedded IPv4 must be allowed too",
		"deny    everything else",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if plain := Table(mustParse(t, "0.0.0.0/0:80")); !strings.Contains(plain, "except loopback (needs its own rule)") {
		t.Errorf("table lacks the loopback note:\n%s", plain)
	}
	t.Logf("\n%s", got)
}

func TestWarnings(t *testing.T) {
	meta := []netip.Addr{netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("169.254.170.2")}
	ws := New(mustParse(t, "169.254.169.254:80", "[::/0]:443"), Options{AllowMetadata: meta}).Warnings()
	if len(ws) != 3 {
		t.Fatalf("warnings = %q, want 3", ws)
	}
	for i, want := range []string{"169.254.169.254 (AWS IMDS", "169.254.170.2 is opted in but no egress rule covers it", "[::/0]:443 allows every IPv6 address"} {
		if !strings.Contains(ws[i], want) {
			t.Errorf("warning %d = %q, want %q", i, ws[i], want)
		}
	}
	if ws := New(mustParse(t, "10.0.0.1:80"), Options{}).Warnings(); len(ws) != 0 {
		t.Errorf("warnings for a tight list: %q", ws)
	}
}

// TestCheckAllocs: the dial-time check allocates nothing for an allowed
// address, embedded IPv4 included.
func TestCheckAllocs(t *testing.T) {
	g := New(mustParse(t, "10.0.0.0/8:80", "[64:ff9b::/96]:80"), Options{})
	v4 := netip.MustParseAddrPort("10.1.2.3:80")
	nat := netip.MustParseAddrPort("[64:ff9b::a01:203]:80")
	if n := testing.AllocsPerRun(100, func() {
		if g.Check(v4) != nil || g.Check(nat) != nil {
			t.Fatal("denied")
		}
	}); n != 0 {
		t.Fatalf("Check allocates %v times", n)
	}
}

func BenchmarkCheck(b *testing.B) {
	g := New(mustParse(b, "10.0.0.0/8:80,443", "172.16.0.0/12:8080", "[2001:db8::/32]:443"), Options{})
	ap := netip.MustParseAddrPort("172.20.0.9:8080")
	b.ReportAllocs()
	for b.Loop() {
		if g.Check(ap) != nil {
			b.Fatal("denied")
		}
	}
}
