package gateway

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// route is one configured route, compiled.
type route struct {
	cfg     *config.Route
	label   string // metrics label: the configured path
	base    string // path without "/*"
	prefix  bool
	methods methodSet
	other   []string // configured methods outside methodNames (PROPFIND...)
	fwd     *forward.Forwarder
	timeout time.Duration // the request's deadline from its start
	guards  guards

	// Metric children, made once: a label lookup per request costs a hash
	// and a lock.
	counters [numMethods][numReasons + 1]prometheus.Counter
	duration prometheus.Observer
	upstream prometheus.Observer
	inflight prometheus.Gauge
}

// methodSet is a bitmask over the methods we name in metrics.
type methodSet uint16

const numMethods = 8 // GET HEAD POST PUT PATCH DELETE OPTIONS, other

var methodNames = [numMethods]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "_other"}

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "OPTIONS":
		return 6
	}
	return 7
}

// router finds the route for a path: exact routes by map, prefix routes
// longest first.
type router struct {
	exact    map[string][]*route
	prefixes []*route // longest base first
}

func newRouter(routes []*route) *router {
	rt := &router{exact: map[string][]*route{}}
	for _, r := range routes {
		if r.prefix {
			rt.prefixes = append(rt.prefixes, r)
		} else {
			rt.exact[r.base] = append(rt.exact[r.base], r)
		}
	}
	sort.SliceStable(rt.prefixes, func(i, j int) bool { return len(rt.prefixes[i].base) > len(rt.prefixes[j].base) })
	return rt
}

// match returns the route for method and decoded path, and the escaped
// rest after a prefix route's base. Paths are case-sensitive, as API
// Gateway's.
func (rt *router) match(method, path, escaped string) (*route, string) {
	mi := methodIndex(method)
	for _, r := range rt.exact[path] {
		if r.allows(mi, method) {
			return r, ""
		}
	}
	for _, r := range rt.prefixes {
		if !r.allows(mi, method) || !strings.HasPrefix(path, r.base) {
			continue
		}
		if len(path) == len(r.base) || path[len(r.base)] == '/' {
			// The rest is taken from the escaped form so that %20 and
			// friends reach the target as the client sent them. Path rules
			// have rejected encoded '/', so segment boundaries agree.
			return r, escapedRest(escaped, r.base)
		}
	}
	return nil, ""
}

func (r *route) allows(mi int, method string) bool {
	if mi == numMethods-1 {
		return slices.Contains(r.other, method)
	}
	return r.methods&(1<<mi) != 0
}

// escapedRest finds, in the escaped path, what follows the (unescaped)
// base: the same number of '/'-separated segments.
func escapedRest(escaped, base string) string {
	if escaped == base || len(escaped) >= len(base) && escaped[:len(base)] == base {
		return escaped[len(base):]
	}
	n := strings.Count(base, "/")
	i := 0
	for seen := 0; i < len(escaped); i++ {
		if escaped[i] == '/' {
			if seen == n {
				break
			}
			seen++
		}
	}
	return escaped[i:]
}

// pathOK applies the path rule (docs/hardening.md#one-path-form) to the
// escaped request path: no dot-segments
// (also encoded, %2e), no encoded '/' or '\', no backslash, no NUL, no
// empty interior segment. One rule for matching and forwarding, so
// "/hooks/../admin" can never match /hooks/* and then reach /admin.
// A trailing '/' is allowed (it is an empty rest, not a traversal).
func pathOK(escaped string) bool {
	if len(escaped) == 0 || escaped[0] != '/' {
		return false
	}
	segStart := 1
	for i := 1; i <= len(escaped); i++ {
		if i < len(escaped) {
			switch c := escaped[i]; c {
			case '\\', 0:
				return false
			case '%':
				if i+2 >= len(escaped) {
					return false
				}
				switch hexPair(escaped[i+1], escaped[i+2]) {
				case '/', '\\', 0:
					return false
				case -1:
					return false
				}
				continue
			case '/':
			default:
				continue
			}
		}
		seg := escaped[segStart:i]
		if seg == "" && i < len(escaped) {
			return false // "//"
		}
		if isDotSegment(seg) {
			return false
		}
		segStart = i + 1
	}
	return true
}

// isDotSegment reports whether an escaped segment decodes to "." or "..".
func isDotSegment(seg string) bool {
	dots := 0
	for i := 0; i < len(seg); {
		if seg[i] == '.' {
			dots++
			i++
			continue
		}
		if seg[i] == '%' && i+2 < len(seg) && hexPair(seg[i+1], seg[i+2]) == '.' {
			dots++
			i += 3
			continue
		}
		return false
	}
	return dots == 1 || dots == 2
}

func hexPair(a, b byte) int {
	h, l := unhex(a), unhex(b)
	if h < 0 || l < 0 {
		return -1
	}
	return h<<4 | l
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// newMetrics makes the route's metric children.
func (r *route) newMetrics(m *metrics.Metrics, table *[numReasons]reply) {
	for mi := range numMethods {
		if r.methods&(1<<mi) == 0 {
			continue
		}
		for rs := reason(1); rs < numReasons; rs++ {
			if rs == noRoute {
				continue
			}
			r.counters[mi][rs] = m.Requests.WithLabelValues(r.label, methodNames[mi], string(table[rs].outcome))
		}
		r.counters[mi][numReasons] = m.Requests.WithLabelValues(r.label, methodNames[mi], string(metrics.Forwarded))
	}
	r.duration = m.RequestDuration.WithLabelValues(r.label)
	r.upstream = m.UpstreamDuration.WithLabelValues(r.label)
	r.inflight = m.Inflight.WithLabelValues(r.label)
}

func methodsOf(ms []string) (methodSet, []string) {
	var s methodSet
	var other []string
	for _, m := range ms {
		i := methodIndex(m)
		s |= 1 << i
		if i == numMethods-1 {
			other = append(other, m)
		}
	}
	return s, other
}
