package egress

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		in   string
		want Rule
	}{
		{"ipv4 cidr", "10.0.0.0/8:80", Rule{p("10.0.0.0/8"), []uint16{80}}},
		{"two ports", "10.0.0.0/8:80,443", Rule{p("10.0.0.0/8"), []uint16{80, 443}}},
		{"ports sorted and deduplicated", "10.0.0.0/8:443,80,443", Rule{p("10.0.0.0/8"), []uint16{80, 443}}},
		{"spaces around", "  172.0.0.10/32:80 , 443 ", Rule{p("172.0.0.10/32"), []uint16{80, 443}}},
		{"single ipv4 address", "172.0.0.10:80", Rule{p("172.0.0.10/32"), []uint16{80}}},
		{"ipv6 cidr", "[2001:db8::/32]:443", Rule{p("2001:db8::/32"), []uint16{443}}},
		{"single ipv6 address", "[2001:db8::1]:8443", Rule{p("2001:db8::1/128"), []uint16{8443}}},
		{"ipv6 loopback", "[::1]:80", Rule{p("::1/128"), []uint16{80}}},
		{"all ipv4", "0.0.0.0/0:80,443", Rule{p("0.0.0.0/0"), []uint16{80, 443}}},
		{"all ipv6", "[::/0]:443", Rule{p("::/0"), []uint16{443}}},
		{"lowest and highest port", "10.0.0.1:1,65535", Rule{p("10.0.0.1/32"), []uint16{1, 65535}}},
		{"mapped address becomes ipv4", "[::ffff:10.0.0.1]:80", Rule{p("10.0.0.1/32"), []uint16{80}}},
		{"mapped prefix becomes ipv4", "[::ffff:10.0.0.0/104]:80", Rule{p("10.0.0.0/8"), []uint16{80}}},
		{"nat64 prefix stays ipv6", "[64:ff9b::/96]:443", Rule{p("64:ff9b::/96"), []uint16{443}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]string{tt.in})
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
			again, err := Parse([]string{got[0].String()})
			if err != nil || !reflect.DeepEqual(again[0], got[0]) {
				t.Fatalf("round trip via %q: %v, %v", got[0].String(), again, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty entry"},
		{"blank", "   ", "empty entry"},
		{"no port", "10.0.0.0/8", "missing :port"},
		{"empty port", "10.0.0.0/8:", "missing port"},
		{"empty port in list", "10.0.0.0/8:80,", "empty port"},
		{"port zero", "10.0.0.1:0", "without leading zeros"},
		{"port too big", "10.0.0.1:65536", "out of range"},
		{"port leading zero", "10.0.0.1:080", "without leading zeros"},
		{"port sign", "10.0.0.1:+80", "not a decimal number"},
		{"port negative", "10.0.0.1:-1", "not a decimal number"},
		{"port name", "10.0.0.1:http", "not a decimal number"},
		{"port range", "10.0.0.1:80-90", "not a decimal number"},
		{"port wildcard", "10.0.0.1:*", "not a decimal number"},
		{"host bits", "10.0.0.5/8:80", "host bits set"},
		{"bits too long", "10.0.0.0/33:80", "prefix length out of range"},
		{"hostname", "example.com:80", "ParseAddr"},
		{"decimal ipv4", "2130706433:80", "ParseAddr"},
		{"hex ipv4", "0x7f000001:80", "ParseAddr"},
		{"short ipv4", "127.1:80", "ParseAddr"},
		{"leading zero octet", "010.0.0.1:80", "leading zero"},
		{"ipv6 without brackets", "2001:db8::/32:443", "IPv6 must be in brackets"},
		{"unclosed bracket", "[2001:db8::/32:443", "missing ']'"},
		{"nothing after bracket", "[2001:db8::/32]", "want [IPv6/bits]:port"},
		{"ipv4 in brackets", "[10.0.0.1]:80", "brackets are for IPv6 only"},
		{"zone", "[fe80::1%eth0]:80", "has a zone"},
		{"ipv6 host bits", "[2001:db8::1/32]:443", "host bits set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]string{"10.0.0.1:80", tt.in})
			if err == nil {
				t.Fatalf("Parse(%q): no error", tt.in)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("Parse(%q) = %q, want it to contain %q", tt.in, msg, tt.want)
			}
			if !strings.Contains(msg, "egress.allow[1]") || !strings.Contains(msg, `"`+tt.in+`"`) {
				t.Errorf("Parse(%q) = %q, want it to name the entry", tt.in, msg)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	rules, err := Parse(nil)
	if err != nil || len(rules) != 0 {
		t.Fatalf("Parse(nil) = %v, %v", rules, err)
	}
}

// fakeResolver answers from a fixed table and records what it was asked.
type fakeResolver struct {
	answers map[string][]netip.Addr
	asked   []string
}

func (f *fakeResolver) resolve(host string) ([]netip.Addr, error) {
	f.asked = append(f.asked, host)
	a, ok := f.answers[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	return a, nil
}

func TestDefault(t *testing.T) {
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	res := &fakeResolver{answers: map[string][]netip.Addr{
		"backend.internal": {a("10.1.2.3"), a("::ffff:10.1.2.4"), a("2001:db8::7")},
		"empty.internal":   {},
	}}
	tests := []struct {
		name    string
		targets []string
		want    []Rule
		asked   []string
	}{
		{"ipv4 literal with port", []string{"http://172.0.0.10:80/"}, []Rule{{p("172.0.0.10/32"), []uint16{80}}}, nil},
		{"http default port", []string{"http://172.0.0.10/x"}, []Rule{{p("172.0.0.10/32"), []uint16{80}}}, nil},
		{"https default port", []string{"https://172.0.0.10/"}, []Rule{{p("172.0.0.10/32"), []uint16{443}}}, nil},
		{"ipv6 literal", []string{"https://[2001:db8::1]:8443/"}, []Rule{{p("2001:db8::1/128"), []uint16{8443}}}, nil},
		{"mapped literal is unmapped", []string{"http://[::ffff:10.0.0.1]/"}, []Rule{{p("10.0.0.1/32"), []uint16{80}}}, nil},
		{"ports of one address merge", []string{"http://10.0.0.1:8080/", "http://10.0.0.1/", "http://10.0.0.1:8080/b"},
			[]Rule{{p("10.0.0.1/32"), []uint16{80, 8080}}}, nil},
		{"hostname resolves to every address", []string{"https://backend.internal/hook"}, []Rule{
			{p("10.1.2.3/32"), []uint16{443}},
			{p("10.1.2.4/32"), []uint16{443}},
			{p("2001:db8::7/128"), []uint16{443}},
		}, []string{"backend.internal"}},
		{"sorted ipv4 first", []string{"http://[2001:db8::1]/", "http://10.0.0.2/", "http://10.0.0.1/"}, []Rule{
			{p("10.0.0.1/32"), []uint16{80}},
			{p("10.0.0.2/32"), []uint16{80}},
			{p("2001:db8::1/128"), []uint16{80}},
		}, nil},
		{"no targets allow nothing", nil, []Rule{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res.asked = nil
			got, err := Default(tt.targets, res.resolve)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Default(%q) = %v, want %v", tt.targets, got, tt.want)
			}
			if !reflect.DeepEqual(res.asked, tt.asked) {
				t.Errorf("resolver asked %q, want %q", res.asked, tt.asked)
			}
		})
	}
}

func TestDefaultErrors(t *testing.T) {
	res := &fakeResolver{answers: map[string][]netip.Addr{"empty.internal": {}}}
	tests := []struct {
		name, target, want string
	}{
		// A legacy notation is a config error
		// (docs/hardening.md#legacy-ipv4-notations), not a question for
		// whichever resolver happens to run.
		{"decimal ipv4", "http://2130706433/", "legacy notation"},
		{"hex ipv4", "http://0x7f000001/", "legacy notation"},
		{"octal ipv4", "http://017700000001/", "legacy notation"},
		{"short ipv4", "http://127.1/", "legacy notation"},
		{"leading zero octets", "http://010.0.0.1/", "legacy notation"},
		{"dotted hex", "http://0xa9.0xfe.0xa9.0xfe/", "legacy notation"},
		{"trailing dot", "http://169.254.169.254./", "legacy notation"},
		{"numeric last label", "http://metadata.123/", "legacy notation"},
		{"unknown host", "http://nowhere.internal/", "no such host"},
		{"no addresses", "http://empty.internal/", "no addresses"},
		{"no host", "http:///x", "no host"},
		{"bad scheme", "ftp://10.0.0.1/", "no default port"},
		{"bad port", "http://10.0.0.1:0/", "leading zeros"},
		{"zone", "http://[fe80::1%25eth0]/", "has a zone"},
		{"unparsable", "http://[::1/", "missing ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Default([]string{"http://10.0.0.1/", tt.target}, res.resolve)
			if err == nil {
				t.Fatalf("Default(%q): no error", tt.target)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.target) {
				t.Errorf("Default(%q) = %q, want it to name the target and contain %q", tt.target, err, tt.want)
			}
		})
	}
}
