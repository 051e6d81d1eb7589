package gateway

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/routepath"
	"github.com/prometheus/client_golang/prometheus"
)

// route is one configured route, compiled.
type route struct {
	cfg     *config.Route
	label   string // metrics label: the configured path
	base    string // path without "/*"; a template's literals before its first parameter
	prefix  bool
	tmpl    []tseg // a template route's segments; nil for exact and prefix routes
	methods methodSet
	other   []string // configured methods outside methodNames (PROPFIND...)
	fwd     *forward.Forwarder
	timeout time.Duration // the request's deadline from its start
	guards  guards
	routing routing // match, siblings and lanes (match.go)

	// Metric children, made once: a label lookup per request costs a hash
	// and a lock.
	counters [numMethods][numReasons + 1]prometheus.Counter
	duration prometheus.Observer
	upstream prometheus.Observer
	inflight prometheus.Gauge

	logKey int // the route's first key in the rejection log's sampler (rejectlog.go)
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

// router finds the route for a path: exact routes by map, then prefix
// and template routes, most specific first.
type router struct {
	exact    map[string][]*route
	patterns []*route // prefix and template routes, by specificity
}

// tseg is one segment of a template route's path.
type tseg struct {
	kind segKind
	lit  string // the literal, for kind literal
}

type segKind uint8

// The order is the precedence: where two paths first differ in kind, the
// lower kind is tried first, as API Gateway prefers /items/new to
// /items/{id} and /items/{id} to /items/{proxy+}.
const (
	literal segKind = iota
	param           // {name}: one non-empty segment
	greedy          // {name+} or a prefix route's "/*": the rest
)

// compileTemplate splits a template path into segments and returns its
// base: the literal segments before the first parameter, which matching
// strips as it strips a prefix route's base.
func compileTemplate(path string) ([]tseg, string) {
	var segs []tseg
	base, inBase := "", true
	for _, s := range strings.Split(path[1:], "/") {
		_, plus, ok := routepath.Param(s)
		switch {
		case !ok:
			segs = append(segs, tseg{kind: literal, lit: s})
			if inBase {
				base += "/" + s
			}
			continue
		case plus:
			segs = append(segs, tseg{kind: greedy})
		default:
			segs = append(segs, tseg{kind: param})
		}
		inBase = false
	}
	return segs, base
}

// shape is the route's segment kinds, for ordering: a prefix route is its
// base's literals and a greedy rest.
func (r *route) shape() []segKind {
	var k []segKind
	if r.tmpl != nil {
		for _, s := range r.tmpl {
			k = append(k, s.kind)
		}
		return k
	}
	if r.base != "" {
		for range strings.Count(r.base[1:], "/") + 1 {
			k = append(k, literal)
		}
	}
	return append(k, greedy)
}

// moreSpecific orders pattern routes: segment by segment, a literal before
// a parameter before a greedy rest. Two routes that differ first in their
// literals can never match one path, so their order does not matter; for
// prefix routes alone this is the longest base first.
func moreSpecific(a, b []segKind) bool {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) > len(b)
}

func newRouter(routes []*route) *router {
	rt := &router{exact: map[string][]*route{}}
	for _, r := range routes {
		if r.prefix || r.tmpl != nil {
			rt.patterns = append(rt.patterns, r)
		} else {
			rt.exact[r.base] = append(rt.exact[r.base], r)
		}
	}
	shapes := map[*route][]segKind{}
	for _, r := range rt.patterns {
		shapes[r] = r.shape()
	}
	sort.SliceStable(rt.patterns, func(i, j int) bool {
		return moreSpecific(shapes[rt.patterns[i]], shapes[rt.patterns[j]])
	})
	return rt
}

// match returns the route for method and decoded path, and the escaped
// rest after a prefix or template route's base. Paths are case-sensitive,
// as API Gateway's.
func (rt *router) match(method, path, escaped string) (*route, string) {
	mi := methodIndex(method)
	for _, r := range rt.exact[path] {
		if r.allows(mi, method) {
			return r, ""
		}
	}
	for _, r := range rt.patterns {
		if !r.allows(mi, method) {
			continue
		}
		if r.tmpl != nil {
			if r.matchTemplate(path) {
				return r, escapedRest(escaped, r.base)
			}
			continue
		}
		if !strings.HasPrefix(path, r.base) {
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

// matchTemplate reports whether the decoded path fits the template: each
// literal segment equal, each {name} a non-empty segment, a last {name+}
// a non-empty rest. The path rules (pathOK) ran first, so no segment is
// a dot-segment and no encoded '/' hides a boundary.
func (r *route) matchTemplate(path string) bool {
	i := 1 // start of the current segment
	for _, s := range r.tmpl {
		if i > len(path) {
			return false
		}
		if s.kind == greedy {
			return i < len(path)
		}
		end := strings.IndexByte(path[i:], '/')
		if end < 0 {
			end = len(path)
		} else {
			end += i
		}
		seg := path[i:end]
		if s.kind == literal && seg != s.lit || s.kind == param && seg == "" {
			return false
		}
		i = end + 1
	}
	return i == len(path)+1
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
			if rs == noRoute || authorizerReason(rs) && r.cfg.Authorizer == "" {
				continue // no series a route cannot have
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
