package egress

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics; whatever it accepts formats back to text
// that parses to the same rule, masked, unmapped and with sorted ports.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8:80,443", "[2001:db8::/32]:443", "172.0.0.10:80", "[::ffff:10.0.0.0/104]:80",
		"10.0.0.5/8:80", "0x7f000001:80", "[fe80::1%eth0]:80", "1.2.3.4:0", "[::]:65535", "1.2.3.4:80,,", " 1.2.3.4 : 80 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rules, err := Parse([]string{s})
		if err != nil {
			return
		}
		r := rules[0]
		if r.Prefix.Masked() != r.Prefix || (r.Prefix.Addr().Is4In6() && r.Prefix.Bits() >= 96) || r.Prefix.Addr().Zone() != "" {
			t.Fatalf("Parse(%q) = %v: not normalised", s, r)
		}
		for i := 1; i < len(r.Ports); i++ {
			if r.Ports[i] <= r.Ports[i-1] {
				t.Fatalf("Parse(%q) ports %v not sorted and unique", s, r.Ports)
			}
		}
		again, err := Parse([]string{r.String()})
		if err != nil || !reflect.DeepEqual(again[0], r) {
			t.Fatalf("round trip %q -> %q -> %v, %v", s, r.String(), again, err)
		}
	})
}

// FuzzCheck: for any address, Check never panics; a mapped address gets
// the same verdict as its IPv4 form; metadata endpoints and their
// embeddings are never allowed, even under ::/0 and 0.0.0.0/0.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{169, 254, 169, 254}, uint16(80))
	f.Add([]byte{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 169, 254, 169, 254}, uint16(80))
	f.Add([]byte{0x20, 0x02, 169, 254, 169, 254, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(443))
	f.Add([]byte{0x20, 0x01, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0x56, 0x01, 0x56, 0x01}, uint16(80))
	f.Add([]byte{127, 0, 0, 1}, uint16(80))
	g := New(mustParse(f, "0.0.0.0/0:80,443", "[::/0]:80,443", "127.0.0.0/8:80"), Options{})
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		var a netip.Addr
		switch len(b) {
		case 4:
			a = netip.AddrFrom4([4]byte(b))
		case 16:
			a = netip.AddrFrom16([16]byte(b))
		default:
			return
		}
		err := g.Check(netip.AddrPortFrom(a, port))
		if a.Is4() {
			mapped := netip.AddrFrom16(a.As16())
			if e2 := g.Check(netip.AddrPortFrom(mapped, port)); (err == nil) != (e2 == nil) {
				t.Fatalf("%v: %v, mapped: %v", a, err, e2)
			}
		}
		if isMetadata(a.Unmap()) && err == nil {
			t.Fatalf("metadata %v allowed", a)
		}
		var in [maxInner]inner
		for _, e := range in[:embedded(a.Unmap(), &in)] {
			if isMetadata(e.addr) && err == nil {
				t.Fatalf("%v embeds metadata %v (%s) and was allowed", a, e.addr, e.via)
			}
		}
		if err != nil && !errors.Is(err, ErrDenied) {
			t.Fatalf("error %v does not wrap ErrDenied", err)
		}
	})
}
