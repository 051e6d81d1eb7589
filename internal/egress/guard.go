package egress

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrDenied is wrapped by every refusal (a *DeniedError), so that the
// forwarder, which sees it through net.OpError and url.Error, can tell an
// egress denial (502, outcome egress_denied) from an unreachable target with
// errors.Is.
var ErrDenied = errors.New("egress denied")

// Reason says why an address was refused. It goes to the log, never to the
// client.
type Reason uint8

const (
	// NotAllowed: no rule covers the address.
	NotAllowed Reason = iota + 1
	// PortNotAllowed: a rule covers the address, but none on this port.
	PortNotAllowed
	// Metadata: a cloud metadata or credential endpoint (see MetadataAddrs),
	// refused whatever the rules say unless Options.AllowMetadata names it.
	Metadata
	// Loopback: in Lambda, where the Runtime API listens on loopback.
	Loopback
	// LoopbackNotNamed: loopback is covered only by a broad rule such as
	// 0.0.0.0/0. Loopback services (the admin listener, sidecars) are
	// reachable only through a rule whose prefix is itself loopback.
	LoopbackNotNamed
	// Unspecified: 0.0.0.0/8 or ::. Connecting to 0.0.0.0 reaches the local
	// host on Linux, and the rest of 0.0.0.0/8 ("this network") is never a
	// destination.
	Unspecified
	// Multicast: 224.0.0.0/4 or ff00::/8.
	Multicast
	// Broadcast: 255.255.255.255.
	Broadcast
	// Network: not a TCP dial; every rule is a TCP port.
	Network
	// Invalid: the dialer's address did not parse as IP:port.
	Invalid
)

var reasonText = [...]string{
	NotAllowed:       "no egress rule covers the address",
	PortNotAllowed:   "no egress rule allows this port for the address",
	Metadata:         "cloud metadata or credential endpoint",
	Loopback:         "loopback is never dialed in Lambda (the Runtime API listens there)",
	LoopbackNotNamed: "loopback needs a rule naming a loopback prefix (a wider prefix does not count)",
	Unspecified:      "unspecified or this-network address",
	Multicast:        "multicast address",
	Broadcast:        "broadcast address",
	Network:          "not a TCP dial",
	Invalid:          "dial address is not IP:port",
}

func (r Reason) String() string {
	if int(r) < len(reasonText) && reasonText[r] != "" {
		return reasonText[r]
	}
	return "reason " + strconv.Itoa(int(r))
}

// DeniedError is one refused dial. Its text is for the log only: the client
// gets a plain 502.
type DeniedError struct {
	// Addr is the address checked, as given to Check (from Control: as the
	// dialer reported it, already unmapped by the dialer).
	Addr netip.AddrPort
	// Reason is why it was refused.
	Reason Reason
	// Inner is the IPv4 address embedded in an IPv6 Addr that was refused
	// (for example 169.254.169.254 in 64:ff9b::a9fe:a9fe); zero when Addr
	// itself was refused. Via names the embedding.
	Inner netip.Addr
	Via   string
	// Network and Address are what Control received, set when it refused
	// the dial before Check (Reason Network or Invalid).
	Network, Address string
}

func (e *DeniedError) Error() string {
	s := "egress denied: "
	switch {
	case e.Addr.IsValid():
		s += e.Addr.String()
	case e.Address != "":
		s += strconv.Quote(e.Address)
	default:
		s += "invalid address"
	}
	if e.Network != "" {
		s += " (" + e.Network + ")"
	}
	if e.Inner.IsValid() {
		s += ": " + e.Inner.String() + " embedded (" + e.Via + ")"
	}
	return s + ": " + e.Reason.String()
}

// Unwrap makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Unwrap() error { return ErrDenied }

// MetadataAddrs are the cloud metadata and credential endpoints refused even
// when a rule covers them: a forwarder that can be pointed at one of them
// hands out the host's cloud credentials.
//
//   - 169.254.169.254: AWS IMDS, and GCP, Azure and Oracle metadata
//   - fd00:ec2::254: AWS IMDS over IPv6 (Nitro)
//   - 169.254.170.2: ECS task metadata and credentials
//   - 169.254.170.23, fd00:ec2::23: EKS Pod Identity agent
//   - 100.100.100.200: Alibaba Cloud metadata (docs/hardening.md#cloud-metadata-endpoints)
func MetadataAddrs() []netip.Addr { return slices.Clone(metadata[:]) }

var metadata = [...]netip.Addr{
	netip.AddrFrom4([4]byte{169, 254, 169, 254}),
	netip.AddrFrom4([4]byte{169, 254, 170, 2}),
	netip.AddrFrom4([4]byte{169, 254, 170, 23}),
	netip.AddrFrom4([4]byte{100, 100, 100, 200}),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("fd00:ec2::23"),
}

var metadataNames = [len(metadata)]string{
	"AWS IMDS; GCP, Azure, Oracle metadata",
	"ECS task metadata and credentials",
	"EKS Pod Identity agent",
	"Alibaba Cloud metadata",
	"AWS IMDS (IPv6)",
	"EKS Pod Identity agent (IPv6)",
}

func isMetadata(a netip.Addr) bool {
	for _, m := range metadata {
		if a == m {
			return true
		}
	}
	return false
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// Options change what a Guard refuses. The zero value: not Lambda, no
// metadata endpoint reachable.
type Options struct {
	// Lambda refuses loopback (127.0.0.0/8, ::1) whatever the rules say:
	// the Lambda Runtime API (AWS_LAMBDA_RUNTIME_API, typically
	// 127.0.0.1:9001) lives there, and a forwarder that reaches it can
	// read or answer other invocations.
	Lambda bool
	// AllowMetadata lifts the metadata ban for these exact addresses (a
	// route that really targets a metadata endpoint; `check` warns loudly).
	// It only lifts the ban: a rule must still cover the address and port.
	// It is exact: opting in 169.254.169.254 does not open its NAT64 or 6to4
	// forms, and opting in an address that is not in MetadataAddrs does
	// nothing.
	AllowMetadata []netip.Addr
	// Follow lists the target host names whose dial-time answers are
	// allowed without a rule, each on its target's port (Compile fills it
	// when egress.allow is absent): the operator chose the name, so
	// whatever it resolves to when dialed is the target. The fixed denials
	// still apply, and a loopback answer still needs a rule naming a
	// loopback prefix, unless the name is localhost or *.localhost, which
	// mean loopback by definition (RFC 6761).
	Follow []Name
	// Names resolves target host names at dial time (Guard.Lookup). Nil:
	// a cache of the guard's own over net.DefaultResolver.
	Names *Names
}

// Name is a target host name and the port its target URL dials.
type Name struct {
	Host string
	Port uint16
}

// Guard is a compiled allow list. It is immutable and safe for concurrent
// use; a reload builds a new one. A nil *Guard refuses everything.
type Guard struct {
	v4, v6     []Rule
	rules      []Rule
	lambda     bool
	metadataOK []netip.Addr
	follow     map[string][]uint16 // canonical name -> ports
	names      *Names
}

// New compiles rules and opts into a Guard. The rules are copied.
func New(rules []Rule, opts Options) *Guard {
	g := &Guard{lambda: opts.Lambda, names: opts.Names}
	if g.names == nil {
		g.names = NewNames(nil, nil)
	}
	for _, n := range opts.Follow {
		if g.follow == nil {
			g.follow = map[string][]uint16{}
		}
		h := canonicalName(n.Host)
		if !slices.Contains(g.follow[h], n.Port) {
			g.follow[h] = append(g.follow[h], n.Port)
		}
	}
	for _, r := range rules {
		r = Rule{Prefix: r.Prefix.Masked(), Ports: slices.Compact(slices.Sorted(slices.Values(r.Ports)))}
		if a := r.Prefix.Addr(); a.Is4In6() && r.Prefix.Bits() >= 96 {
			r.Prefix = netip.PrefixFrom(a.Unmap(), r.Prefix.Bits()-96)
		}
		if !r.Prefix.IsValid() {
			continue
		}
		g.rules = append(g.rules, r)
		if r.Prefix.Addr().Is4() {
			g.v4 = append(g.v4, r)
		} else {
			g.v6 = append(g.v6, r)
		}
	}
	for _, a := range opts.AllowMetadata {
		a = a.WithZone("").Unmap()
		if isMetadata(a) && !slices.Contains(g.metadataOK, a) {
			g.metadataOK = append(g.metadataOK, a)
		}
	}
	return g
}

// Control is a net.Dialer.Control hook. The dialer calls it after name
// resolution, with the socket created but not yet connected, once per
// address it tries; a non-nil error stops that attempt before any packet is
// sent. Only TCP dials pass.
//
// The dialer hands over the address it will connect to: a host name has
// become its resolved address, and an IPv4-mapped literal such as
// [::ffff:169.254.169.254] arrives unmapped as tcp4 169.254.169.254.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := dialAddr(network, address)
	if err != nil {
		return err
	}
	return g.Check(ap)
}

// dialAddr is the address a dial is about to connect to, or the denial
// of a dial that is not TCP or whose address is not an IP literal.
func dialAddr(network, address string) (netip.AddrPort, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return netip.AddrPort{}, &DeniedError{Reason: Network, Network: network, Address: address}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return netip.AddrPort{}, &DeniedError{Reason: Invalid, Network: network, Address: address}
	}
	return ap, nil
}

// ControlContext is Control for net.Dialer.ControlContext: a dial that
// Follow marked as following a name the guard follows (on this port) is
// decided by the fixed denials and the loopback rule alone (followed);
// every other dial by Check.
func (g *Guard) ControlContext(ctx context.Context, network, address string, c syscall.RawConn) error {
	host, _ := ctx.Value(followKey{}).(string)
	if host == "" || g == nil || g.follow == nil {
		return g.Control(network, address, c)
	}
	ap, err := dialAddr(network, address)
	if err != nil {
		return err
	}
	if !slices.Contains(g.follow[host], ap.Port()) {
		return g.Check(ap)
	}
	return g.followed(ap, host)
}

// Lookup resolves a target host name through the guard's Names cache.
func (g *Guard) Lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if g == nil {
		return NewNames(nil, nil).Lookup(ctx, host)
	}
	return g.names.Lookup(ctx, host)
}

// Follows reports whether the guard allows host's dial-time answers
// without a rule (Options.Follow): a name the default allow list names.
func (g *Guard) Follows(host string) bool {
	return g != nil && g.follow[canonicalName(host)] != nil
}

// followed decides an address that a followed name resolved to: every
// address passes but the fixed denials (as in Check, embedded IPv4
// addresses included) and loopback, which still needs a rule naming a
// loopback prefix unless the name means loopback (localhost).
func (g *Guard) followed(ap netip.AddrPort, host string) error {
	port := ap.Port()
	loopbackName := meansLoopback(host)
	return judge(ap, func(a netip.Addr, optIn bool) Reason {
		r := g.verdict(a, port, optIn)
		switch {
		case r == 0:
			return 0
		case r == NotAllowed || r == PortNotAllowed:
			if a.IsLoopback() && !loopbackName {
				return LoopbackNotNamed
			}
			return 0
		case r == LoopbackNotNamed && loopbackName:
			return 0
		}
		return r
	})
}

// judge decides ap with decide: the address itself (unmapped, its zone
// dropped, optIn true) and then every IPv4 address embedded in it (optIn
// false: an opt-in is for the exact address only, so an embedding of an
// opted-in metadata endpoint is still a denial). The most severe refusal
// of an embedded address is the one reported.
func judge(ap netip.AddrPort, decide func(a netip.Addr, optIn bool) Reason) error {
	a := ap.Addr().Unmap().WithZone("")
	if r := decide(a, true); r != 0 {
		return &DeniedError{Addr: ap, Reason: r}
	}
	var in [maxInner]inner
	n := embedded(a, &in)
	var worst *inner
	var why Reason
	for i := range in[:n] {
		r := decide(in[i].addr, false)
		if r != 0 && (worst == nil || severity(r) > severity(why)) {
			worst, why = &in[i], r
		}
	}
	if worst != nil {
		return &DeniedError{Addr: ap, Reason: why, Inner: worst.addr, Via: worst.via}
	}
	return nil
}

// meansLoopback reports whether a (canonical) host name is localhost or
// under it: such names resolve to loopback by definition (RFC 6761 §6.3),
// so a target written that way asked for loopback.
func meansLoopback(host string) bool {
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// Check decides one destination. It is what Control runs after parsing, and
// what tests and `explain` call directly. It allocates nothing when the
// address is allowed.
//
// The address is unmapped and its zone dropped first (netip.Prefix.Contains
// matches neither a mapped nor a zoned address). It is refused if it is
// unspecified, multicast or broadcast; a metadata endpoint not opted in; in
// Lambda, loopback; or not covered by a rule on this port. Then every IPv4
// address embedded in it (see below) must pass the same test: an address
// that carries another one is allowed only if a rule covers the embedded
// IPv4 address on this port too. So [64:ff9b::/96]:443 alone lets nothing
// through; add the IPv4 ranges the NAT64 gateway may reach.
//
// Embeddings decoded (a gateway, tunnel or translator on the path could
// deliver to the IPv4 address):
//
//   - IPv4-mapped ::ffff:a.b.c.d (by the Unmap above)
//   - IPv4-compatible ::a.b.c.d (deprecated; all of ::/96 but :: and ::1)
//   - IPv4-translated (SIIT) ::ffff:0:a.b.c.d
//   - NAT64 well-known prefix 64:ff9b::/96
//   - NAT64 local-use prefix 64:ff9b:1::/48: the operator picks the prefix
//     length, so every RFC 6052 position that fits (/48, /56, /64, /96) is
//     decoded and each must pass. In practice this refuses local-use
//     addresses altogether (their unused positions decode to 0.x.x.x, never
//     a destination): fail closed, and target the IPv4 address instead.
//   - 6to4 2002:a.b.c.d::/48
//   - Teredo 2001:0::/32: the server and the (inverted) client address
//   - ISATAP interface identifiers ::0:5efe:a.b.c.d and ::200:5efe:a.b.c.d
func (g *Guard) Check(ap netip.AddrPort) error {
	if g == nil {
		return &DeniedError{Addr: ap, Reason: NotAllowed}
	}
	port := ap.Port()
	return judge(ap, func(a netip.Addr, optIn bool) Reason { return g.verdict(a, port, optIn) })
}

// severity ranks reasons for the log when several embedded addresses are
// refused (the NAT64 local-use positions of one address decode to several
// IPv4 addresses, most of them 0.x.x.x): the metadata endpoint is what an
// operator needs to see, not the incidental "unspecified".
func severity(r Reason) int {
	switch r {
	case Metadata:
		return 3
	case Loopback, LoopbackNotNamed:
		return 2
	case Unspecified:
		return 0
	}
	return 1
}

// verdict is Check for one address without embeddings: 0 means allowed.
// optIn says whether Options.AllowMetadata applies (only to the address
// dialed itself, never to one embedded in it).
func (g *Guard) verdict(a netip.Addr, port uint16, optIn bool) Reason {
	switch {
	case !a.IsValid():
		return Invalid
	case a.IsUnspecified() || a.Is4() && a.As4()[0] == 0:
		return Unspecified
	case a.IsMulticast():
		return Multicast
	case a == broadcast:
		return Broadcast
	case isMetadata(a) && !(optIn && slices.Contains(g.metadataOK, a)):
		return Metadata
	case g.lambda && a.IsLoopback():
		return Loopback
	}
	rules := g.v6
	if a.Is4() {
		rules = g.v4
	}
	r := NotAllowed
	loop := a.IsLoopback()
	for i := range rules {
		if rules[i].Prefix.Contains(a) {
			if loop && !isLoopbackPrefix(rules[i].Prefix) {
				if r == NotAllowed {
					r = LoopbackNotNamed
				}
				continue
			}
			if rules[i].allows(port) {
				return 0
			}
			r = PortNotAllowed
		}
	}
	return r
}

// isLoopbackPrefix reports whether every address in p is loopback.
func isLoopbackPrefix(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return p.Bits() >= 8 && p.Addr().As4()[0] == 127
	}
	return p.Bits() == 128 && p.Addr().IsLoopback()
}

// maxInner bounds the embedded addresses one IPv6 address can carry here:
// four NAT64 local-use positions and an ISATAP identifier.
const maxInner = 6

type inner struct {
	addr netip.Addr
	via  string
}

// embedded writes the IPv4 addresses embedded in a (an unmapped IPv6
// address) to out and returns how many. It allocates nothing.
func embedded(a netip.Addr, out *[maxInner]inner) int {
	if !a.Is6() {
		return 0
	}
	b := a.As16()
	n := 0
	add := func(via string, x, y, z, w byte) {
		out[n] = inner{netip.AddrFrom4([4]byte{x, y, z, w}), via}
		n++
	}
	switch {
	case zero(b[:12]):
		// ::a.b.c.d, but :: and ::1 are the IPv6 unspecified and loopback
		// addresses, checked as such.
		if !zero(b[12:15]) || b[15] > 1 {
			add("IPv4-compatible", b[12], b[13], b[14], b[15])
		}
	case zero(b[:8]) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0:
		add("IPv4-translated", b[12], b[13], b[14], b[15])
	case b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zero(b[4:12]):
		add("NAT64", b[12], b[13], b[14], b[15])
	case b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1:
		// RFC 6052 §2.2: bits 64-71 (b[8]) are always skipped.
		add("NAT64 local-use /48", b[6], b[7], b[9], b[10])
		add("NAT64 local-use /56", b[7], b[9], b[10], b[11])
		add("NAT64 local-use /64", b[9], b[10], b[11], b[12])
		add("NAT64 local-use /96", b[12], b[13], b[14], b[15])
	case b[0] == 0x20 && b[1] == 0x02:
		add("6to4", b[2], b[3], b[4], b[5])
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0:
		add("Teredo server", b[4], b[5], b[6], b[7])
		add("Teredo client", ^b[12], ^b[13], ^b[14], ^b[15])
	}
	if b[8]&0xfc == 0 && b[9] == 0 && b[10] == 0x5e && b[11] == 0xfe {
		add("ISATAP", b[12], b[13], b[14], b[15])
	}
	return n
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
