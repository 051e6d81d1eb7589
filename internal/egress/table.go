package egress

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
)

// Table renders the effective egress table of rules with default Options,
// for `drawbridge check`. See (*Guard).Table.
func Table(rules []Rule) string { return New(rules, Options{}).Table() }

// Table renders what g allows, in the order Check decides: the fixed denials
// first (they win over any rule), then the rules, then the final deny. Notes
// flag rules whose reach is narrower than their prefix suggests (metadata,
// loopback, embedded IPv4). Opted-in metadata endpoints are marked WARNING.
func (g *Guard) Table() string {
	if g == nil {
		g = New(nil, Options{})
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ACTION\tDESTINATION\tPORTS\tNOTE")
	fmt.Fprintln(w, "deny\t0.0.0.0/8, ::\tany\tunspecified, this network")
	fmt.Fprintln(w, "deny\t224.0.0.0/4, ff00::/8, 255.255.255.255\tany\tmulticast, broadcast")
	for i, m := range metadata {
		if slices.Contains(g.metadataOK, m) {
			fmt.Fprintf(w, "allow*\t%s\t(rules)\tWARNING: metadata endpoint opted in: %s\n", m, metadataNames[i])
			continue
		}
		fmt.Fprintf(w, "deny\t%s\tany\tcloud metadata: %s\n", m, metadataNames[i])
	}
	if g.lambda {
		fmt.Fprintln(w, "deny\t127.0.0.0/8, ::1\tany\tLambda: the Runtime API listens on loopback")
	}
	for _, r := range g.rules {
		fmt.Fprintf(w, "allow\t%s\t%s\t%s\n", bracket(r.Prefix), portList(r.Ports), g.ruleNote(r))
	}
	for _, h := range slices.Sorted(maps.Keys(g.follow)) {
		note := "what the name resolves to when dialed; loopback only through a loopback rule"
		if meansLoopback(h) {
			note = "what the name resolves to when dialed (loopback by definition)"
		}
		fmt.Fprintf(w, "allow\t%s (name)\t%s\t%s\n", h, portList(slices.Sorted(slices.Values(g.follow[h]))), note)
	}
	fmt.Fprintln(w, "deny\teverything else\tany\t")
	fmt.Fprintln(w, "\t\t\tIPv6 addresses embedding IPv4 (NAT64, 6to4, Teredo, ::a.b.c.d, ...) also need the IPv4 address allowed")
	w.Flush()
	return b.String()
}

// Warnings lists what `drawbridge check` should print loudly: metadata
// endpoints opted in, and rules open to a whole address family.
func (g *Guard) Warnings() []string {
	if g == nil {
		return nil
	}
	var ws []string
	for _, m := range g.metadataOK {
		i := slices.Index(metadata[:], m)
		covered := false
		for _, r := range g.rules {
			covered = covered || r.Prefix.Contains(m)
		}
		if covered {
			ws = append(ws, fmt.Sprintf("egress: cloud metadata endpoint %s (%s) is reachable: whoever can reach the route can read what it serves, cloud credentials included", m, metadataNames[i]))
		} else {
			ws = append(ws, fmt.Sprintf("egress: cloud metadata endpoint %s is opted in but no egress rule covers it: still denied", m))
		}
	}
	for _, r := range g.rules {
		if r.Prefix.Bits() == 0 {
			ws = append(ws, fmt.Sprintf("egress: rule %s allows every %s address on these ports (the original security group's mistake); list the backends instead", r, family(r.Prefix)))
		}
	}
	return ws
}

func (g *Guard) ruleNote(r Rule) string {
	var notes []string
	var inside []string
	for _, m := range metadata {
		if r.Prefix.Contains(m) && !slices.Contains(g.metadataOK, m) {
			inside = append(inside, m.String())
		}
	}
	if len(inside) > 0 {
		notes = append(notes, "except metadata "+strings.Join(inside, ", "))
	}
	lo := netip.MustParsePrefix("127.0.0.0/8")
	if r.Prefix.Addr().Is6() {
		lo = netip.MustParsePrefix("::1/128")
	}
	if r.Prefix.Overlaps(lo) {
		switch {
		case g.lambda:
			notes = append(notes, "loopback denied (Lambda)")
		case !isLoopbackPrefix(r.Prefix):
			notes = append(notes, "except loopback (needs its own rule)")
		}
	}
	for _, e := range embeddingPrefixes {
		if r.Prefix.Overlaps(e) {
			notes = append(notes, "embedded IPv4 must be allowed too")
			break
		}
	}
	return strings.Join(notes, "; ")
}

// embeddingPrefixes are the IPv6 ranges whose addresses carry an IPv4
// address that Check also decodes (ISATAP identifiers can appear anywhere
// and are left out).
var embeddingPrefixes = []netip.Prefix{
	netip.MustParsePrefix("::/96"),
	netip.MustParsePrefix("::ffff:0:0:0/96"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("2001::/32"),
}

func bracket(p netip.Prefix) string {
	if p.Addr().Is6() {
		return "[" + p.String() + "]"
	}
	return p.String()
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "IPv4"
	}
	return "IPv6"
}
