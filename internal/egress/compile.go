package egress

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/config"
)

// Compile builds the Guard a config asks for: its egress.allow rules, or,
// without any, the default list: each target named by IP address allowed
// on its port, and each target named by host name followed (see
// Options.Follow): whatever the name resolves to when dialed, on its port.
// No name is resolved here, so a name that does not resolve yet is not an
// error (the route answers 502 until it does). Routes with allow_metadata
// opt their target's metadata address in (see Options.AllowMetadata); opts
// adds to that.
//
// Serve calls it at start and on every reload. The Lambda adapter passes
// Options{Lambda: true}.
//
// Errors are FILE:LINE: message, one per line.
func Compile(cfg *config.Config, opts Options) (*Guard, error) {
	var problems []string
	at := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: ", cfg.File, line)+fmt.Sprintf(format, args...))
	}
	opts.AllowMetadata = slices.Clone(opts.AllowMetadata)
	opts.Follow = slices.Clone(opts.Follow)
	for _, r := range cfg.Routes {
		if u := r.TargetURL(); u != nil && legacyIPv4(u.Hostname()) {
			// Refused with explicit rules too: which address such a host
			// means depends on the resolver (docs/hardening.md#legacy-ipv4-notations).
			at(r.Line, "route %s: target host %q looks like an IPv4 address in a legacy notation; write it as dotted decimal (a.b.c.d)", r.Path, u.Hostname())
		}
		if !r.AllowMetadata {
			continue
		}
		a, ok := metadataTarget(r.TargetURL())
		if !ok {
			at(r.Line, "route %s: allow_metadata needs a target naming a metadata endpoint by IP address (%s), not %q",
				r.Path, metadataList(), r.Target)
			continue
		}
		opts.AllowMetadata = append(opts.AllowMetadata, a)
	}
	var rules []Rule
	if len(cfg.Egress.Allow) > 0 {
		for i, e := range cfg.Egress.Allow {
			r, err := parseRule(e)
			if err != nil {
				line := 0
				if i < len(cfg.Egress.Lines) {
					line = cfg.Egress.Lines[i]
				}
				at(line, "egress.allow[%d] %q: %v", i, e, err)
				continue
			}
			rules = append(rules, r)
		}
	} else {
		for _, r := range cfg.RoutesPerTarget() {
			if r.Via != "" {
				continue // an agent dials it, under its own egress rules
			}
			u := r.TargetURL()
			if u == nil {
				at(r.Line, "route %s: egress default: target %q: not a URL", r.Path, r.Target)
				continue
			}
			if host := u.Hostname(); host != "" && !legacyIPv4(host) {
				if _, err := netip.ParseAddr(host); err != nil {
					port, err := targetPort(u)
					if err != nil {
						at(r.Line, "route %s: egress default: target %q: %v", r.Path, r.Target, err)
						continue
					}
					opts.Follow = append(opts.Follow, Name{Host: host, Port: port})
					continue
				}
			}
			// One target at a time, so an error names its route.
			rs, err := targetRules(r.Target, u, nil)
			if err != nil {
				at(r.Line, "route %s: %v", r.Path, err)
				continue
			}
			rules = append(rules, rs...)
		}
		for _, e := range cfg.AuthorizerEndpoints() {
			// An authorizer's URL is the operator's choice as a target's
			// is: allowed the same way (docs/authorizers.md#egress).
			u, err := url.Parse(e.URL)
			if err != nil || u.Host == "" {
				continue // the config's validation reports it
			}
			if host := u.Hostname(); !legacyIPv4(host) {
				if _, err := netip.ParseAddr(host); err != nil {
					if port, err := targetPort(u); err == nil {
						opts.Follow = append(opts.Follow, Name{Host: host, Port: port})
					}
					continue
				}
			}
			rs, err := targetRules(e.URL, u, nil)
			if err != nil {
				at(e.Line, "%s: %v", e.What, err)
				continue
			}
			rules = append(rules, rs...)
		}
		rules = merge(rules)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	return New(rules, opts), nil
}

// metadataTarget returns the metadata address a target URL names as an IP
// literal.
func metadataTarget(u *url.URL) (netip.Addr, bool) {
	if u == nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	return a, isMetadata(a)
}

func metadataList() string {
	s := make([]string, len(metadata))
	for i, m := range metadata {
		s[i] = m.String()
	}
	return strings.Join(s, ", ")
}

// legacyIPv4 reports whether host is not an IP literal netip accepts but
// ends in a number, as 2130706433, 0x7f000001, 017700000001 and 127.1 do.
func legacyIPv4(host string) bool {
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	return endsInNumber(host)
}
