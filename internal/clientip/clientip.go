// Package clientip decides which address a request comes from: the TCP
// peer, or, when the peer is a configured trusted proxy, the right-most
// X-Forwarded-For entry that is not itself a trusted proxy (the rule of
// Traefik's PoolStrategy).
//
// Everything left of that entry was written by the client and can be
// forged; everything right of it was appended by proxies we trust. An entry
// that cannot be parsed where the walk needs it yields the invalid
// netip.Addr ("unknown"), never the proxy's own address: a proxy is often
// inside an allow list, and falling back to it would let any garbage header
// through (docs/hardening.md#unmapped-addresses). Callers deny unknown
// clients on IP-restricted routes.
//
// The resolver allocates nothing and walks the header from the right
// without splitting it, so a hostile 1,000-entry header costs microseconds.
package clientip

import (
	"net/netip"
)

// Resolver resolves client addresses. It is immutable after New and safe
// for concurrent use. A nil or zero Resolver trusts no proxy.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes X-Forwarded-For only from peers in
// trusted. Prefixes are canonicalised (host bits cleared, IPv4-mapped IPv6
// prefixes turned into IPv4 ones) because addresses are unmapped before
// every check and netip.Prefix.Contains never matches across families.
// Invalid prefixes are dropped; the config loader reports them.
func New(trusted []netip.Prefix) *Resolver {
	r := &Resolver{}
	for _, p := range trusted {
		if !p.IsValid() {
			continue
		}
		a := p.Addr()
		if a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	return r
}

// Trusted reports whether addr (unmapped first) is a trusted proxy.
func (r *Resolver) Trusted(addr netip.Addr) bool {
	if r == nil || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range r.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientIP returns the client address for a request whose TCP peer is
// remoteAddr (http.Request.RemoteAddr: "ip:port", "[ipv6]:port", or a bare
// address as some Lambda adapters leave it) and whose X-Forwarded-For
// header lines are xff (r.Header.Values, in arrival order; several lines
// are one comma-separated list).
//
//   - The peer, when it is not trusted (its XFF is ignored entirely) or
//     when no XFF line carries an address.
//   - Otherwise the right-most XFF entry that is not trusted; if every entry
//     is trusted, the left-most one.
//   - The invalid Addr when the peer or any entry reached by the walk is
//     unparseable. XFF entries must be bare addresses with optional
//     surrounding spaces or tabs: a port ("1.2.3.4:5"), brackets, a zone
//     ("fe80::1%eth0"), "unknown" or an empty entry between commas is
//     unparseable. Entries left of the one chosen are never looked at.
//
// The result is always unmapped (::ffff:1.2.3.4 becomes 1.2.3.4) and has no
// zone.
func (r *Resolver) ClientIP(remoteAddr string, xff []string) netip.Addr {
	peer := parsePeer(remoteAddr)
	if !peer.IsValid() || !r.Trusted(peer) {
		return peer
	}
	var leftmost netip.Addr
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		if isBlank(line) {
			// A present-but-empty header line carries no hop.
			continue
		}
		end := len(line)
		for {
			start := lastComma(line[:end]) + 1
			a, ok := parseEntry(line[start:end])
			if !ok {
				return netip.Addr{}
			}
			if !r.Trusted(a) {
				return a
			}
			leftmost = a
			if start == 0 {
				break
			}
			end = start - 1
		}
	}
	if leftmost.IsValid() {
		return leftmost
	}
	return peer
}

func lastComma(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ',' {
			return i
		}
	}
	return -1
}

func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\t' {
			return false
		}
	}
	return true
}

// parsePeer parses RemoteAddr. Go's server always writes "ip:port"; the
// bare form is accepted for adapters that have no port. A zone is dropped:
// the link-local address it qualifies is what policies name.
func parsePeer(s string) netip.Addr {
	if a, ok := peer4(s); ok {
		return a
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// peer4 parses the form Go's server writes for an IPv4 peer, "a.b.c.d:port",
// as netip.ParseAddrPort does (decimal octets up to 255 without leading
// zeros, a port up to 65535), in a tenth of its instructions: this runs
// for every request. Anything else it leaves to parsePeer's general path
// (ok false), which decides alone what it does not accept.
func peer4(s string) (a netip.Addr, ok bool) {
	var ip [4]byte
	k, v, n := 0, 0, 0 // octet index, its value, its digits
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c-'0' <= 9 {
			if n == 1 && v == 0 {
				return a, false // a leading zero
			}
			v, n = v*10+int(c-'0'), n+1
			continue
		}
		if n == 0 || v > 255 {
			return a, false
		}
		ip[k&3] = byte(v)
		if c == ':' && k == 3 {
			break
		}
		if c != '.' || k == 3 {
			return a, false
		}
		k, v, n = k+1, 0, 0
	}
	if i == len(s) {
		return a, false // no port
	}
	port := s[i+1:]
	if len(port) == 0 || len(port) > 5 {
		return a, false
	}
	p := 0
	for j := 0; j < len(port); j++ {
		c := port[j] - '0'
		if c > 9 {
			return a, false
		}
		p = p*10 + int(c)
	}
	if p > 65535 {
		return a, false
	}
	return netip.AddrFrom4(ip), true
}

// parseEntry parses one XFF entry: a bare IPv4 or IPv6 address, optionally
// surrounded by spaces or tabs.
func parseEntry(s string) (netip.Addr, bool) {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	a, err := netip.ParseAddr(s[i:j])
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
