package clientip

import (
	"net/netip"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestClientIP(t *testing.T) {
	// 10.0.0.0/8 are our load balancers, 2001:db8:ffff::/48 an IPv6 LB tier.
	r := New(prefixes("10.0.0.0/8", "2001:db8:ffff::/48", "::ffff:172.16.0.0/108"))
	long := strings.Repeat("10.1.1.1, ", 999) + "10.2.2.2"
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string // "" = invalid (unknown client)
	}{
		// The peer itself.
		{"untrusted peer no xff", "203.0.113.5:4242", nil, "203.0.113.5"},
		{"I6 untrusted peer xff ignored", "203.0.113.5:4242", []string{"192.30.252.1"}, "203.0.113.5"},
		{"I6 untrusted peer garbage xff ignored", "203.0.113.5:4242", []string{"garbage"}, "203.0.113.5"},
		{"untrusted v6 peer", "[2001:db8::1]:443", []string{"192.30.252.1"}, "2001:db8::1"},
		{"I2 mapped peer unmapped", "[::ffff:192.30.252.1]:443", nil, "192.30.252.1"},
		{"zoned peer zone dropped", "[fe80::1%eth0]:443", nil, "fe80::1"},
		{"bare peer (no port)", "198.51.100.1", nil, "198.51.100.1"},
		{"bad peer", "not-an-ip:80", nil, ""},
		{"empty peer", "", []string{"1.2.3.4"}, ""},
		{"peer with hostname", "localhost:80", nil, ""},

		// Trusted peer: walk XFF from the right.
		{"trusted peer no xff", "10.0.0.1:1", nil, "10.0.0.1"},
		{"trusted peer blank xff line", "10.0.0.1:1", []string{"  "}, "10.0.0.1"},
		{"trusted peer one entry", "10.0.0.1:1", []string{"192.30.252.1"}, "192.30.252.1"},
		{"right-most untrusted wins", "10.0.0.1:1", []string{"6.6.6.6, 192.30.252.1, 10.9.9.9"}, "192.30.252.1"},
		{"spoofed left part ignored", "10.0.0.1:1", []string{"140.82.112.1, 203.0.113.9"}, "203.0.113.9"},
		{"several lines are one list", "10.0.0.1:1", []string{"6.6.6.6, 203.0.113.9", "10.1.1.1", "10.2.2.2"}, "203.0.113.9"},
		{"blank line in the middle skipped", "10.0.0.1:1", []string{"203.0.113.9", "", "10.2.2.2"}, "203.0.113.9"},
		{"all trusted: left-most", "10.0.0.1:1", []string{"10.3.3.3, 10.2.2.2", "10.1.1.1"}, "10.3.3.3"},
		{"spaces and tabs tolerated", "10.0.0.1:1", []string{"\t203.0.113.9 \t,  10.1.1.1 "}, "203.0.113.9"},
		{"no spaces", "10.0.0.1:1", []string{"198.51.100.1,203.0.113.9"}, "203.0.113.9"},
		{"v6 entry", "10.0.0.1:1", []string{"2606:50c0::17"}, "2606:50c0::17"},
		{"I2 mapped entry unmapped", "10.0.0.1:1", []string{"::ffff:192.30.252.1"}, "192.30.252.1"},
		{"mapped trusted entry skipped", "10.0.0.1:1", []string{"203.0.113.9, ::ffff:10.4.4.4"}, "203.0.113.9"},
		{"mapped trusted peer", "[::ffff:10.0.0.1]:1", []string{"203.0.113.9"}, "203.0.113.9"},
		{"trusted v6 peer", "[2001:db8:ffff::1]:1", []string{"203.0.113.9"}, "203.0.113.9"},
		{"trusted via mapped prefix", "172.16.0.9:1", []string{"203.0.113.9"}, "203.0.113.9"},
		{"1000 entries all trusted", "10.0.0.1:1", []string{long}, "10.1.1.1"},
		{"1000 entries client on the left", "10.0.0.1:1", []string{"203.0.113.9, " + long}, "203.0.113.9"},

		// I5: unparseable where the walk needs it -> unknown, never the proxy.
		{"I5 port", "10.0.0.1:1", []string{"1.2.3.4:5"}, ""},
		{"I5 brackets", "10.0.0.1:1", []string{"[2001:db8::1]"}, ""},
		{"I5 brackets and port", "10.0.0.1:1", []string{"[2001:db8::1]:443"}, ""},
		{"I5 zone", "10.0.0.1:1", []string{"fe80::1%eth0"}, ""},
		{"I5 unknown", "10.0.0.1:1", []string{"unknown"}, ""},
		{"I5 garbage", "10.0.0.1:1", []string{"<script>"}, ""},
		{"I5 obfuscated v4", "10.0.0.1:1", []string{"0x7f.1"}, ""},
		{"I5 leading zeros", "10.0.0.1:1", []string{"010.0.0.1"}, ""},
		{"I5 empty entry", "10.0.0.1:1", []string{"203.0.113.9,,10.1.1.1"}, ""},
		{"I5 trailing comma", "10.0.0.1:1", []string{"203.0.113.9,"}, ""},
		{"I5 garbage behind trusted", "10.0.0.1:1", []string{"junk, 10.1.1.1"}, ""},
		{"I5 1000 entries garbage at the left", "10.0.0.1:1", []string{"junk, " + long}, ""},
		{"garbage left of the answer unread", "10.0.0.1:1", []string{"junk, 203.0.113.9"}, "203.0.113.9"},
		{"garbage line left of the answer unread", "10.0.0.1:1", []string{"junk", "203.0.113.9"}, "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.ClientIP(tt.remote, tt.xff)
			if tt.want == "" {
				if got.IsValid() {
					t.Fatalf("ClientIP(%q, %q) = %v, want unknown", tt.remote, tt.xff, got)
				}
				return
			}
			if want := netip.MustParseAddr(tt.want); got != want {
				t.Fatalf("ClientIP(%q, %q) = %v, want %v", tt.remote, tt.xff, got, want)
			}
		})
	}
}

func TestNoTrustedProxies(t *testing.T) {
	for _, r := range []*Resolver{nil, {}, New(nil)} {
		if got := r.ClientIP("203.0.113.5:1", []string{"1.1.1.1"}); got != netip.MustParseAddr("203.0.113.5") {
			t.Errorf("resolver %+v: got %v, want the peer", r, got)
		}
	}
}

func TestNewCanonicalises(t *testing.T) {
	r := New([]netip.Prefix{
		netip.MustParsePrefix("10.9.9.9/8"), // host bits set
		{},                                  // invalid: dropped
	})
	if !r.Trusted(netip.MustParseAddr("10.200.0.1")) {
		t.Error("10.9.9.9/8 should trust 10.200.0.1")
	}
	if r.Trusted(netip.Addr{}) {
		t.Error("invalid address trusted")
	}
	if len(r.trusted) != 1 {
		t.Errorf("trusted = %v, want one prefix", r.trusted)
	}
}

// reference is the obvious, allocating implementation of the same rule.
func reference(r *Resolver, remote string, xff []string) netip.Addr {
	peer := parsePeer(remote)
	if !peer.IsValid() || !r.Trusted(peer) {
		return peer
	}
	var entries []string
	for _, line := range xff {
		if strings.TrimLeft(line, " \t") == "" {
			continue
		}
		entries = append(entries, strings.Split(line, ",")...)
	}
	if len(entries) == 0 {
		return peer
	}
	for i := len(entries) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.Trim(entries[i], " \t"))
		if err != nil || a.Zone() != "" {
			return netip.Addr{}
		}
		a = a.Unmap()
		if !r.Trusted(a) {
			return a
		}
		if i == 0 {
			return a
		}
	}
	panic("unreachable")
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1:80", "203.0.113.9, 10.1.1.1", "")
	f.Add("10.0.0.1:80", "1.2.3.4:5", "10.2.2.2")
	f.Add("[::ffff:10.0.0.1]:80", "::ffff:1.2.3.4", "")
	f.Add("203.0.113.5:1", "10.0.0.1", "garbage")
	f.Add("10.0.0.1:80", "fe80::1%eth0", " , ")
	f.Add("10.0.0.1", "", "\t")
	r := New(prefixes("10.0.0.0/8", "2001:db8::/32"))
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string) {
		xff := []string{xff1, xff2}
		got := r.ClientIP(remote, xff)
		if want := reference(r, remote, xff); got != want {
			t.Fatalf("ClientIP(%q, %q) = %v, reference says %v", remote, xff, got, want)
		}
		if got.IsValid() && (got.Is4In6() || got.Zone() != "") {
			t.Fatalf("result %v is mapped or zoned", got)
		}
		// A trusted proxy's address is returned only when it is the peer or
		// every hop is trusted; never when an untrusted hop was present.
		if got.IsValid() && r.Trusted(got) {
			for _, line := range xff {
				for _, e := range strings.Split(line, ",") {
					if a, err := netip.ParseAddr(strings.Trim(e, " \t")); err == nil && a.Zone() == "" && !r.Trusted(a) {
						t.Fatalf("returned trusted %v although %v is untrusted", got, a)
					}
				}
			}
		}
	})
}

func BenchmarkClientIP(b *testing.B) {
	r := New(prefixes("10.0.0.0/8", "172.16.0.0/12"))
	long := strings.Repeat("10.1.1.1, ", 999) + "10.2.2.2"
	for _, bc := range []struct {
		name   string
		remote string
		xff    []string
	}{
		{"no-xff-untrusted-peer", "203.0.113.5:51234", nil},
		{"xff-untrusted-peer", "203.0.113.5:51234", []string{"1.2.3.4"}},
		{"one-hop", "10.0.0.1:51234", []string{"203.0.113.9"}},
		{"three-hops", "10.0.0.1:51234", []string{"6.6.6.6, 203.0.113.9, 10.9.9.9"}},
		{"v6-peer-mapped", "[::ffff:10.0.0.1]:51234", []string{"2606:50c0::17"}},
		{"1000-trusted-entries", "10.0.0.1:51234", []string{long}},
		{"1000-entries-garbage-left", "10.0.0.1:51234", []string{"junk, " + long}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.ClientIP(bc.remote, bc.xff)
			}
		})
	}
}

// TestPeer4: the fast path takes Go's own "a.b.c.d:port" and gives what
// netip.ParseAddrPort gives; what it leaves, the general path decides.
func TestPeer4(t *testing.T) {
	for _, s := range []string{
		"203.0.113.5:4242", "0.0.0.0:0", "255.255.255.255:65535", "1.2.3.4:0080", "10.0.0.1:1",
		"256.1.1.1:80", "01.2.3.4:80", "1.2.3.4:65536", "1.2.3.4:", "1.2.3.4", ":80", "1.2.3.4:80x",
		"1.2.3:80", "1.2.3.4.5:80", "1..3.4:80", "1234.1.1.1:80", "1.2.3.4:123456", "[1.2.3.4]:80",
		"::ffff:1.2.3.4", "[::ffff:1.2.3.4]:80", "1.2.3.4:+80", "",
	} {
		checkPeer4(t, s)
	}
	if _, ok := peer4("192.168.100.200:51234"); !ok {
		t.Fatal("the usual form missed the fast path")
	}
}

func FuzzPeer4(f *testing.F) {
	for _, s := range []string{"203.0.113.5:4242", "1.2.3.4:0080", "01.2.3.4:80", "1.2.3.4:65536", "[::1]:80"} {
		f.Add(s)
	}
	f.Fuzz(checkPeer4)
}

func checkPeer4(t *testing.T, s string) {
	a, ok := peer4(s)
	ap, err := netip.ParseAddrPort(s)
	if ok && (err != nil || a != ap.Addr().Unmap().WithZone("")) {
		t.Fatalf("peer4(%q) = %v; netip.ParseAddrPort: %v, %v", s, a, ap, err)
	}
	// A port written with more than five digits (leading zeros) may go
	// the slow way; Go's server never writes one.
	if !ok && err == nil && ap.Addr().Is4() && len(s)-strings.LastIndexByte(s, ':') <= 6 {
		t.Fatalf("peer4(%q) left an IPv4 peer netip parses (%v) to the slow path", s, ap)
	}
}
