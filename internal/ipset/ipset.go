// Package ipset compiles named CIDR lists (config ip_sets, route allow_ips
// and the built-in github-hooks set) into a matcher for client addresses.
//
// Sets are compiled once, at config load, into sorted, merged address ranges
// so that Contains is a binary search with no allocation however large the
// list is (a saved AWS or GitHub range list has thousands of entries).
package ipset

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// GitHubHooks is the name of the built-in set holding GitHub's webhook
// source ranges.
const GitHubHooks = "github-hooks"

// githubHooks is the "hooks" list of https://api.github.com/meta (snapshot
// of 2026). The blog's 2021 policy listed only the first
// three IPv4 blocks; 143.55.64.0/20 and both IPv6 blocks were added later,
// which is why users can override the set from a fresh /meta download
// (see ParseGitHubMeta) without waiting for a release.
var githubHooks = []string{
	"192.30.252.0/22",
	"185.199.108.0/22",
	"140.82.112.0/20",
	"143.55.64.0/20",
	"2a0a:a440::/29",
	"2606:50c0::/32",
}

// Builtin returns the built-in named sets, as fresh copies the caller may
// modify: currently only GitHubHooks.
func Builtin() map[string][]string {
	return map[string][]string{GitHubHooks: slices.Clone(githubHooks)}
}

// GitHubHookPrefixes returns the built-in GitHub hook ranges.
func GitHubHookPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, len(githubHooks))
	for i, s := range githubHooks {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// ParseGitHubMeta reads the JSON document served by
// https://api.github.com/meta (saved to a file; drawbridge never fetches it
// on the request path) and returns its "hooks" ranges. A document without a
// hooks array, or with an empty one, is an error: loading it would make a
// github-hooks allow list deny every delivery.
func ParseGitHubMeta(data []byte) ([]netip.Prefix, error) {
	var meta struct {
		Hooks *[]string `json:"hooks"`
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("parse github meta: %w", err)
	}
	if meta.Hooks == nil {
		return nil, errors.New("parse github meta: no \"hooks\" array")
	}
	if len(*meta.Hooks) == 0 {
		return nil, errors.New("parse github meta: \"hooks\" array is empty")
	}
	out := make([]netip.Prefix, 0, len(*meta.Hooks))
	for _, s := range *meta.Hooks {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("parse github meta: hooks entry %q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParsePrefix parses a CIDR ("10.0.0.0/8", "2001:db8::/32") or a single
// address ("10.0.0.1" as /32, "2001:db8::1" as /128), as IAM's aws:SourceIp
// accepts both. Host bits are cleared ("10.0.0.1/8" is 10.0.0.0/8, as IAM
// and AWS security groups read it). An IPv4-mapped IPv6 prefix
// (::ffff:10.0.0.0/104) becomes the IPv4 prefix it names, because
// netip.Prefix.Contains never matches across families and client addresses
// are always unmapped before a check (docs/hardening.md#unmapped-addresses). Zones are
// rejected.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.IndexByte(s, '/') >= 0 {
		var err error
		p, err = netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("address %q has a zone", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return Canonical(p), nil
}

// Canonical clears host bits and turns an IPv4-mapped IPv6 prefix of at
// least /96 into the equivalent IPv4 prefix. A mapped prefix shorter than
// /96 is kept as IPv6 (it also covers non-mapped addresses).
func Canonical(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// Set is a compiled list of prefixes. The zero value (and a nil *Set)
// contains nothing.
type Set struct {
	v4       []range4
	v6       []range6
	prefixes []netip.Prefix
}

type range4 struct{ lo, hi uint32 }

type range6 struct{ lo, hi netip.Addr }

// Compile builds a Set from entries, each a CIDR, a single address or the
// name of a set. Names are looked up in named first (the config's ip_sets),
// then in the built-in sets, so a config may override github-hooks with a
// fresher list. Named sets may themselves list names; a cycle is an error.
// Every error names the entry at fault.
func Compile(entries []string, named map[string][]string) (*Set, error) {
	var c compiler
	c.named = named
	c.visiting = map[string]bool{}
	for _, e := range entries {
		if err := c.add(e, ""); err != nil {
			return nil, err
		}
	}
	return FromPrefixes(c.out), nil
}

type compiler struct {
	named    map[string][]string
	visiting map[string]bool
	out      []netip.Prefix
}

func (c *compiler) add(entry, from string) error {
	e := strings.TrimSpace(entry)
	if p, err := ParsePrefix(e); err == nil {
		c.out = append(c.out, p)
		return nil
	} else if looksLikeAddress(e) {
		if from != "" {
			return fmt.Errorf("ip set %q: bad CIDR %q: %w", from, entry, err)
		}
		return fmt.Errorf("bad CIDR %q: %w", entry, err)
	}
	list, ok := c.named[e]
	if !ok {
		if e == GitHubHooks {
			list, ok = githubHooks, true
		}
	}
	if !ok {
		if from != "" {
			return fmt.Errorf("ip set %q: unknown ip set %q (not a CIDR or a defined name)", from, entry)
		}
		return fmt.Errorf("unknown ip set %q (not a CIDR or a defined name)", entry)
	}
	if c.visiting[e] {
		return fmt.Errorf("ip set %q refers to itself", e)
	}
	c.visiting[e] = true
	defer delete(c.visiting, e)
	for _, sub := range list {
		if err := c.add(sub, e); err != nil {
			return err
		}
	}
	return nil
}

// looksLikeAddress tells a mistyped CIDR ("10.0.0.300/8", "fe80::1%eth0")
// from a set name, so the error says which one the user meant.
func looksLikeAddress(s string) bool {
	if s == "" || strings.ContainsAny(s, "/:%") {
		return true
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}

// FromPrefixes builds a Set from already parsed prefixes (canonicalised as
// by Canonical). Invalid prefixes are ignored.
func FromPrefixes(ps []netip.Prefix) *Set {
	s := &Set{}
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		p = Canonical(p)
		s.prefixes = append(s.prefixes, p)
		first := p.Addr()
		last := lastAddr(p)
		if first.Is4() {
			s.v4 = append(s.v4, range4{u32(first), u32(last)})
		} else {
			s.v6 = append(s.v6, range6{first, last})
		}
	}
	slices.SortFunc(s.v4, func(a, b range4) int { return cmp.Compare(a.lo, b.lo) })
	slices.SortFunc(s.v6, func(a, b range6) int { return a.lo.Compare(b.lo) })
	s.v4 = merge4(s.v4)
	s.v6 = merge6(s.v6)
	return s
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// lastAddr returns the highest address of p (p is masked).
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:])
		if p.Bits() < 32 {
			v |= ^uint32(0) >> p.Bits()
		}
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	bits := p.Bits()
	switch {
	case bits == 0:
		hi, lo = ^uint64(0), ^uint64(0)
	case bits < 64:
		hi |= ^uint64(0) >> bits
		lo = ^uint64(0)
	case bits < 128:
		lo |= ^uint64(0) >> (bits - 64)
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

func merge4(rs []range4) []range4 {
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (out[n-1].hi == ^uint32(0) || r.lo <= out[n-1].hi+1) {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

func merge6(rs []range6) []range6 {
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			next := prev.hi.Next() // invalid when prev.hi is the last address
			if !next.IsValid() || r.lo.Compare(next) <= 0 {
				if r.hi.Compare(prev.hi) > 0 {
					prev.hi = r.hi
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// Contains reports whether addr lies in the set. The address is unmapped
// and its zone dropped first, so ::ffff:192.30.252.1 matches
// 192.30.252.0/22 (netip.Prefix.Contains alone would say no). An invalid
// address (an unknown client) is never contained.
func (s *Set) Contains(addr netip.Addr) bool {
	if s == nil || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		v := u32(addr)
		rs := s.v4
		// First range whose hi >= v; it contains v iff its lo <= v.
		i, j := 0, len(rs)
		for i < j {
			h := int(uint(i+j) >> 1)
			if rs[h].hi < v {
				i = h + 1
			} else {
				j = h
			}
		}
		return i < len(rs) && rs[i].lo <= v
	}
	rs := s.v6
	i, j := 0, len(rs)
	for i < j {
		h := int(uint(i+j) >> 1)
		if rs[h].hi.Less(addr) {
			i = h + 1
		} else {
			j = h
		}
	}
	return i < len(rs) && rs[i].lo.Compare(addr) <= 0
}

// Prefixes returns the prefixes the set was built from, canonicalised, in
// input order (for check and explain output).
func (s *Set) Prefixes() []netip.Prefix {
	if s == nil {
		return nil
	}
	return slices.Clone(s.prefixes)
}

// Families reports whether the set holds any IPv4 and any IPv6 range, so
// check can warn that an IPv4-only list denies every IPv6 client
// (docs/hardening.md#unmapped-addresses).
func (s *Set) Families() (v4, v6 bool) {
	if s == nil {
		return false, false
	}
	return len(s.v4) > 0, len(s.v6) > 0
}

// String lists the prefixes, comma separated.
func (s *Set) String() string {
	if s == nil {
		return ""
	}
	var b strings.Builder
	for i, p := range s.prefixes {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}
