// Package egress decides which addresses the forwarder may dial: the
// security group drawbridge replaces, enforced by drawbridge itself.
//
// The decision is made in net.Dialer.Control (see Guard.Control), on the
// address the dialer is about to connect to, after name resolution. Checking
// the URL or the host name instead would be defeated by DNS rebinding (a
// name that resolves to an allowed address at check time and a forbidden one
// at dial time), by alternate notations of the same address (2130706433,
// 0x7f000001, 127.1, ::ffff:127.0.0.1, ...) and by names that simply resolve
// to forbidden addresses. At dial time there is only one notation left: the
// socket address.
//
// An allow list is a list of Rules, "CIDR:port[,port]" in config (Parse).
// Without one, the allow list is exactly the configured targets' own
// addresses and ports, and target host names are followed: whatever they
// resolve to when dialed (Compile, Options.Follow, Names). Some addresses are refused whatever the
// rules say (see Guard.Check): cloud metadata and credential endpoints,
// unspecified, multicast and broadcast addresses, and, in Lambda, loopback.
//
// Only Compile knows the config; the rest imports nothing from drawbridge.
// Denials wrap ErrDenied, which the forwarder recognises with errors.Is.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Rule allows dialing any address in Prefix on any of Ports.
type Rule struct {
	// Prefix is masked (no host bits). An IPv4-mapped IPv6 prefix of /96 or
	// longer is stored as the IPv4 prefix it denotes, because the guard
	// checks unmapped addresses and a mapped rule could never match.
	Prefix netip.Prefix
	// Ports are sorted and unique. An empty list allows no port: there is
	// deliberately no "any port" rule.
	Ports []uint16
}

// String formats r as Parse reads it: "10.0.0.0/8:80,443",
// "[2001:db8::/32]:443". Parse(r.String()) gives r back.
func (r Rule) String() string {
	var b strings.Builder
	if r.Prefix.Addr().Is6() {
		b.WriteByte('[')
		b.WriteString(r.Prefix.String())
		b.WriteByte(']')
	} else {
		b.WriteString(r.Prefix.String())
	}
	b.WriteByte(':')
	b.WriteString(portList(r.Ports))
	return b.String()
}

func portList(ports []uint16) string {
	var b strings.Builder
	for i, p := range ports {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(p)))
	}
	return b.String()
}

// allows reports whether port is in r.Ports (sorted, so a binary search;
// lists are short and this allocates nothing).
func (r *Rule) allows(port uint16) bool {
	_, ok := slices.BinarySearch(r.Ports, port)
	return ok
}

// Parse reads egress.allow entries, each "CIDR:port[,port...]":
//
//	10.0.0.0/8:80,443
//	172.0.0.10:80            a single address: /32 (or /128)
//	[2001:db8::/32]:443      IPv6 in brackets
//	[2001:db8::1]:8443
//
// Ports are decimal 1-65535 without leading zeros or signs. A prefix with
// host bits set ("10.0.0.5/8") is an error rather than silently widened to
// 10.0.0.0/8: in an allow list a typo should fail loudly. Zones
// ("fe80::1%eth0") are refused: a zone names a local interface, not a
// destination. Errors name the entry. The rules keep the order given.
func Parse(entries []string) ([]Rule, error) {
	rules := make([]Rule, 0, len(entries))
	for i, e := range entries {
		r, err := parseRule(e)
		if err != nil {
			return nil, fmt.Errorf("egress.allow[%d] %q: %w", i, e, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseRule(s string) (Rule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Rule{}, errors.New("empty entry")
	}
	var host, ports string
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Rule{}, errors.New("missing ']' after IPv6 prefix")
		}
		host, ports = s[1:end], s[end+1:]
		if !strings.HasPrefix(ports, ":") {
			return Rule{}, errors.New("want [IPv6/bits]:port after ']'")
		}
		ports = ports[1:]
		if !strings.Contains(host, ":") {
			return Rule{}, errors.New("brackets are for IPv6 only")
		}
	} else {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return Rule{}, errors.New("missing :port (want CIDR:port[,port])")
		}
		host, ports = s[:i], s[i+1:]
		if strings.Contains(host, ":") {
			return Rule{}, errors.New("IPv6 must be in brackets: [2001:db8::/32]:443")
		}
	}
	p, err := parsePrefix(host)
	if err != nil {
		return Rule{}, err
	}
	ps, err := parsePorts(ports)
	if err != nil {
		return Rule{}, err
	}
	return Rule{Prefix: p, Ports: ps}, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.ContainsRune(s, '%') {
		return netip.Prefix{}, fmt.Errorf("address %q has a zone", s)
	}
	var p netip.Prefix
	if strings.IndexByte(s, '/') >= 0 {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, err
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Errorf("%s has host bits set (did you mean %s or %s/%d?)",
				s, m, p.Addr(), p.Addr().BitLen())
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

func parsePorts(s string) ([]uint16, error) {
	if s == "" {
		return nil, errors.New("missing port (want CIDR:port[,port])")
	}
	var ps []uint16
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		p, err := parsePort(f)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return slices.Compact(ps), nil
}

func parsePort(f string) (uint16, error) {
	if f == "" {
		return 0, errors.New("empty port")
	}
	for i := 0; i < len(f); i++ {
		if f[i] < '0' || f[i] > '9' {
			return 0, fmt.Errorf("port %q is not a decimal number", f)
		}
	}
	if f[0] == '0' {
		return 0, fmt.Errorf("port %q: ports are 1-65535 without leading zeros", f)
	}
	n, err := strconv.ParseUint(f, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q out of range 1-65535", f)
	}
	return uint16(n), nil
}

// Resolver maps a host name to its addresses, as net.Resolver.LookupNetIP
// does. Tests inject a fixed one.
type Resolver func(host string) ([]netip.Addr, error)

// Default builds the allow list used when egress.allow is absent: exactly
// the targets' own addresses, each on its own port (the URL's port, else 80
// for http and 443 for https), as the blog's security group allowed only the
// backend's IP and port.
//
// Host names are resolved now, through resolve (nil: net.DefaultResolver),
// and every address they resolve to is allowed: a list fixed at one moment,
// for uses that need addresses (export's security group). The guard serve
// runs follows names at dial time instead (Compile, Options.Follow).
//
// A host that is neither a valid IP literal nor a plausible DNS name but
// ends in a number ("2130706433", "0x7f000001", "127.1", "010.0.0.1") is an
// error: such strings are IPv4 addresses in legacy inet_aton notations that
// netip refuses but some resolvers (glibc) accept, and which address they
// mean would depend on the resolver. The WHATWG URL standard reads them the
// same way (its "ends in a number" rule).
//
// Rules come out sorted by address, IPv4 first, with the ports of targets
// sharing an address merged.
func Default(targets []string, resolve Resolver) ([]Rule, error) {
	var rules []Rule
	for _, t := range targets {
		u, err := url.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("egress default: target %q: %w", t, err)
		}
		rs, err := targetRules(t, u, resolve)
		if err != nil {
			return nil, err
		}
		rules = append(rules, rs...)
	}
	return merge(rules), nil
}

// targetRules allows target, parsed as u (nil: it did not parse), at
// its port on each address its host resolves to.
func targetRules(target string, u *url.URL, resolve Resolver) ([]Rule, error) {
	if u == nil {
		return nil, fmt.Errorf("egress default: target %q: not a URL", target)
	}
	if resolve == nil {
		resolve = func(host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
		}
	}
	port, err := targetPort(u)
	if err != nil {
		return nil, fmt.Errorf("egress default: target %q: %w", target, err)
	}
	addrs, err := targetAddrs(u.Hostname(), resolve)
	if err != nil {
		return nil, fmt.Errorf("egress default: target %q: %w", target, err)
	}
	rules := make([]Rule, 0, len(addrs))
	for _, a := range addrs {
		rules = append(rules, Rule{Prefix: netip.PrefixFrom(a, a.BitLen()), Ports: []uint16{port}})
	}
	return rules, nil
}

// merge joins the ports of rules with the same prefix and sorts the rules
// by address, IPv4 first, then by prefix length.
func merge(rules []Rule) []Rule {
	ports := map[netip.Prefix][]uint16{}
	for _, r := range rules {
		ports[r.Prefix] = append(ports[r.Prefix], r.Ports...)
	}
	out := make([]Rule, 0, len(ports))
	for p, ps := range ports {
		slices.Sort(ps)
		out = append(out, Rule{Prefix: p, Ports: slices.Compact(ps)})
	}
	slices.SortFunc(out, func(x, y Rule) int {
		if c := x.Prefix.Addr().Compare(y.Prefix.Addr()); c != 0 {
			return c
		}
		return x.Prefix.Bits() - y.Prefix.Bits()
	})
	return out
}

func targetPort(u *url.URL) (uint16, error) {
	if p := u.Port(); p != "" {
		return parsePort(p)
	}
	switch u.Scheme {
	case "http":
		return 80, nil
	case "https":
		return 443, nil
	}
	return 0, fmt.Errorf("scheme %q has no default port (want http or https)", u.Scheme)
}

func targetAddrs(host string, resolve Resolver) ([]netip.Addr, error) {
	if host == "" {
		return nil, errors.New("no host")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return nil, fmt.Errorf("address %q has a zone", host)
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	if endsInNumber(host) {
		return nil, fmt.Errorf("host %q looks like an IPv4 address in a legacy notation; write it as dotted decimal (a.b.c.d)", host)
	}
	addrs, err := resolve(host)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %q: no addresses", host)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.WithZone("").Unmap())
	}
	return out, nil
}

// endsInNumber reports whether host's last label (ignoring one trailing dot)
// is a number in decimal, octal or 0x-hex: no top-level domain is numeric,
// so such a host can only be an address in some inet_aton notation.
func endsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		for i := 2; i < len(last); i++ {
			c := last[i] | 0x20
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}
