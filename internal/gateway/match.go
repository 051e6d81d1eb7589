package gateway

import (
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/glob"
	"github.com/drawbridge/drawbridge/internal/routepath"
)

// This file is routing on the event (docs/delivery.md#routing-on-the-event):
// a route's match, its siblings sharing its path and method, and which of
// its targets a request goes to. It runs as the step after the signature
// is verified, so a caller who cannot sign learns nothing from it.

// matcher is a compiled match: every rule must hold.
type matcher struct {
	headers []rule // canonical names
	query   []rule
	json    []rule // name: the dotted path, split in segs
}

// rule is one name with its patterns.
type rule struct {
	name string
	segs []string // json: the path's segments
	pats []string
}

func compileMatch(m *config.Match) *matcher {
	if m == nil {
		return nil
	}
	mt := &matcher{}
	for _, name := range sortedKeys(m.Header) {
		mt.headers = append(mt.headers, rule{name: config.CanonicalHeader(name), pats: m.Header[name]})
	}
	for _, name := range sortedKeys(m.Query) {
		mt.query = append(mt.query, rule{name: name, pats: m.Query[name]})
	}
	for _, p := range sortedKeys(m.JSON) {
		mt.json = append(mt.json, rule{name: p, segs: strings.Split(p, "."), pats: m.JSON[p]})
	}
	return mt
}

func sortedKeys(m map[string]config.Patterns) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// matchState is what matching learnt about the request, in the call.
type matchState struct {
	targets uint64 // lanes of c.route the request goes to (bit i: lanes[i])
	json    int8   // 0: not looked at; 1: the body is JSON; -1: it is not
}

// holds reports whether every rule of m holds for c. Headers are read
// first (a map lookup each, no allocation), then the query, then the body,
// whose validity as JSON is checked once per request and only if a rule
// needs it.
func (m *matcher) holds(c *call) bool {
	if m == nil {
		return true
	}
	for i := range m.headers {
		r := &m.headers[i]
		if !anyMatch(r.pats, c.r.Header[r.name]) {
			return false
		}
	}
	for i := range m.query {
		r := &m.query[i]
		if !queryMatch(r, c.r.URL.RawQuery) {
			return false
		}
	}
	if len(m.json) == 0 {
		return true
	}
	if !c.isJSON() {
		return false
	}
	for i := range m.json {
		r := &m.json[i]
		v, ok := jsonLookup(c.body, r.segs)
		if !ok || !jsonMatch(r.pats, v) {
			return false
		}
	}
	return true
}

// isJSON checks the body once per request: json.Valid walks it without
// allocating, and the lookups after it may then trust its syntax.
func (c *call) isJSON() bool {
	if c.match.json == 0 {
		c.match.json = -1
		if len(c.body) > 0 && json.Valid(c.body) {
			c.match.json = 1
		}
	}
	return c.match.json == 1
}

func anyMatch(pats, vals []string) bool {
	for _, v := range vals {
		if anyGlob(pats, v) {
			return true
		}
	}
	return false
}

// queryMatch finds r's parameter in the raw query; values are compared
// decoded (decoding allocates only for a value that has escapes).
func queryMatch(r *rule, raw string) bool {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(k, "%+") {
			dk, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			k = dk
		}
		if k != r.name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				continue
			}
			v = dv
		}
		if anyGlob(r.pats, v) {
			return true
		}
	}
	return false
}

// jsonMatch: a string matches by its text, a number, boolean or null by
// its JSON spelling, an array when any of its scalar elements matches.
func jsonMatch(pats []string, v []byte) bool {
	if len(v) > 0 && v[0] == '[' {
		i := skipWS(v, 1)
		if v[i] == ']' {
			return false
		}
		for {
			end := skipValue(v, i)
			if jsonScalarMatch(pats, v[i:end]) {
				return true
			}
			i = skipWS(v, end)
			if v[i] != ',' {
				return false
			}
			i = skipWS(v, i+1)
		}
	}
	return jsonScalarMatch(pats, v)
}

func jsonScalarMatch(pats []string, v []byte) bool {
	if len(v) == 0 || v[0] == '{' || v[0] == '[' {
		return false
	}
	if v[0] == '"' {
		inner := v[1 : len(v)-1]
		if hasEscape(inner) {
			// Rare: decoding allocates.
			var s string
			if json.Unmarshal(v, &s) != nil {
				return false
			}
			return anyGlob(pats, s)
		}
		return anyGlob(pats, inner)
	}
	return anyGlob(pats, v)
}

func anyGlob[S ~string | ~[]byte](pats []string, s S) bool {
	for _, p := range pats {
		if glob.Match(p, s) {
			return true
		}
	}
	return false
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// jsonPathKey is the value at a dotted path of a JSON body as order_by reads
// it: a string's text, any other value's JSON; "" when the body is not
// JSON or has no such path.
func jsonPathKey(body []byte, path string) string {
	if !json.Valid(body) {
		return ""
	}
	return jsonKey(body, strings.Split(path, "."))
}

// jsonKey is jsonPathKey on a body known to be JSON.
func jsonKey(body []byte, segs []string) string {
	v, ok := jsonLookup(body, segs)
	if !ok {
		return ""
	}
	if v[0] == '"' {
		var s string
		json.Unmarshal(v, &s)
		return s
	}
	return string(v)
}

// jsonLookup finds the value at segs in body, which json.Valid accepted:
// object members by name, array elements by a segment of digits. It
// skips what it passes over without decoding it.
func jsonLookup(b []byte, segs []string) ([]byte, bool) {
	i := skipWS(b, 0)
	for _, seg := range segs {
		switch b[i] {
		case '{':
			found := false
			i = skipWS(b, i+1)
			for b[i] != '}' {
				kEnd := skipString(b, i)
				key := b[i:kEnd]
				i = skipWS(b, kEnd)
				i = skipWS(b, i+1) // ':'
				if keyIs(key, seg) {
					found = true
					break
				}
				i = skipWS(b, skipValue(b, i))
				if b[i] == ',' {
					i = skipWS(b, i+1)
				}
			}
			if !found {
				return nil, false
			}
		case '[':
			n, ok := index(seg)
			if !ok {
				return nil, false
			}
			i = skipWS(b, i+1)
			for ; n > 0 && b[i] != ']'; n-- {
				i = skipWS(b, skipValue(b, i))
				if b[i] == ',' {
					i = skipWS(b, i+1)
				}
			}
			if b[i] == ']' {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return b[i:skipValue(b, i)], true
}

// keyIs compares a raw JSON string (quotes included) with name.
func keyIs(raw []byte, name string) bool {
	inner := raw[1 : len(raw)-1]
	if string(inner) == name { // a comparison: no copy
		return true
	}
	if hasEscape(inner) {
		var s string
		return json.Unmarshal(raw, &s) == nil && s == name
	}
	return false
}

func index(seg string) (int, bool) {
	if seg == "" || len(seg) > 9 {
		return 0, false
	}
	n := 0
	for i := range len(seg) {
		if seg[i] < '0' || seg[i] > '9' {
			return 0, false
		}
		n = n*10 + int(seg[i]-'0')
	}
	return n, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	if i == len(b) {
		return i - 1 // valid JSON never ends where a token is expected; stay in bounds
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// routing is a route's part in matching, compiled at Build.
type routing struct {
	match  *matcher
	alts   []*route // later routes sharing the path and a method, in config order
	lanes  []*lane  // where the route delivers; one for a single target
	picks  bool     // some lane has a match of its own
	active bool     // the match step has work: a match, siblings or picks
}

// compileRouting fills every route's routing: its match, its siblings
// (routes after it with the same path shape, tried in config order) and
// its lanes.
func compileRouting(routes []*route) {
	for i, r := range routes {
		r.routing.match = compileMatch(r.cfg.Match)
		if r.cfg.Match != nil {
			shape := routepath.Shape(r.cfg.Path)
			for _, o := range routes[i+1:] {
				if routepath.Shape(o.cfg.Path) == shape {
					r.routing.alts = append(r.routing.alts, o)
				}
			}
		}
		for _, l := range r.routing.lanes {
			if l.match != nil {
				r.routing.picks = true
			}
		}
		r.routing.active = r.routing.match != nil || r.routing.picks
	}
}

// matchRoute is the step after the signature: the first of the route and
// its siblings whose match holds serves the request (c.route becomes it),
// and of a fan-out route's targets those whose own match holds are chosen.
// A request that nothing matches is answered 202 Filtered, so the
// provider does not retry it.
func (g *Gateway) matchRoute(c *call, _ time.Time) verdict {
	if !c.route.routing.active {
		c.match.targets = allLanes(len(c.route.routing.lanes))
		if c.dry {
			c.notef("route has no match")
		}
		return skipped
	}
	if c.probe {
		c.undecided = true
		return allowed
	}
	mi := methodIndex(c.r.Method)
	r := c.route
	if !r.routing.match.holds(c) {
		r = nil
		for _, o := range c.route.routing.alts {
			if o.allows(mi, c.r.Method) && o.routing.match.holds(c) {
				r = o
				break
			}
		}
	}
	if r != nil {
		c.match.targets = r.pickLanes(c)
		if c.match.targets != 0 {
			if c.dry {
				c.notef("route at line %d matches", r.cfg.Line)
			}
			c.route = r
			return allowed
		}
	}
	if c.dry {
		c.notef("no route's match holds: filtered")
	}
	c.rule = "match"
	return deny(filtered)
}

// pickLanes returns the lanes whose own match holds.
func (r *route) pickLanes(c *call) uint64 {
	if !r.routing.picks {
		return allLanes(len(r.routing.lanes))
	}
	var m uint64
	for i, l := range r.routing.lanes {
		if l.match.holds(c) {
			m |= 1 << i
		}
	}
	return m
}

func allLanes(n int) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<n - 1
}
