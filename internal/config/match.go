package config

import (
	"fmt"
	"net/textproto"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Match selects the requests a route (or one of its targets) serves
// (docs/delivery.md#routing-on-the-event). Every entry must hold: each
// header, JSON path and query parameter named must have a value that
// matches one of its patterns. Patterns are globs: '*' any run of
// characters, '?' one character, everything else itself,
// case-sensitively.
type Match struct {
	// Header names (any case) and their patterns; a header sent several
	// times holds when any of its values matches.
	Header map[string]Patterns `yaml:"header"`
	// JSON is dotted paths into a JSON object body ("repository.full_name";
	// a segment of digits indexes an array) and their patterns. Strings
	// match by their text, numbers and booleans by their JSON spelling; an
	// array of scalars holds when any element matches. A body that is not
	// JSON holds for no path.
	JSON map[string]Patterns `yaml:"json"`
	// Query parameters (exact names, values decoded) and their patterns.
	Query map[string]Patterns `yaml:"query"`
}

// Patterns is a list of glob patterns, written as a list or as one scalar.
type Patterns []string

// UnmarshalYAML accepts a scalar or a list of scalars (numbers and
// booleans are taken as they are written: `[1, true]` matches "1" and
// "true").
func (p *Patterns) UnmarshalYAML(node ast.Node) error {
	if seq, ok := node.(*ast.SequenceNode); ok {
		out := make(Patterns, 0, len(seq.Values))
		for _, item := range seq.Values {
			s, err := scalarText(item)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		if len(out) == 0 {
			return nodeErrorf(node, "match: want at least one pattern")
		}
		*p = out
		return nil
	}
	s, err := scalarText(node)
	if err != nil {
		return err
	}
	*p = Patterns{s}
	return nil
}

func scalarText(node ast.Node) (string, error) {
	switch node.Type() {
	case ast.StringType, ast.IntegerType, ast.FloatType, ast.BoolType:
		return node.GetToken().Value, nil
	}
	return "", nodeErrorf(node, "match: want a pattern (a string) or a list of them, got %s", kind(node))
}

// Target is one destination of a fan-out route (routes[].targets): each
// gets its own delivery of every request whose match holds, with its own
// queue position, retries and dead letters.
type Target struct {
	// Name tells the target apart in `drawbridge deliveries` and metrics
	// (default: its position, 1 for the first).
	Name   string `yaml:"name"`
	Target string `yaml:"target"`
	// Match narrows the route's match for this target (nil: every request
	// the route serves).
	Match *Match `yaml:"match"`
	// Timeout of one attempt (default: the route's).
	Timeout Duration `yaml:"timeout"`
	// Delivery overrides the route's delivery settings field by field.
	Delivery *TargetDelivery `yaml:"delivery"`

	Line   int      `yaml:"-"`
	target *url.URL // Target as parsed by Validate
}

// TargetURL is Target as Validate parsed it (nil before Validate). A copy.
func (t *Target) TargetURL() *url.URL {
	if t.target == nil {
		return nil
	}
	u := *t.target
	return &u
}

// TargetDelivery is what a target may change of its route's delivery.
type TargetDelivery struct {
	Retry       *Retry `yaml:"retry"`
	Concurrency Int    `yaml:"concurrency"`
	Sign        *Sign  `yaml:"sign"`
	OrderBy     string `yaml:"order_by"`
	Coalesce    string `yaml:"coalesce"`
}

// Sign re-signs what drawbridge sends (delivery.sign), at every attempt,
// so a backend can trust drawbridge's signature, with a fresh timestamp,
// instead of the provider's.
type Sign struct {
	// Scheme is standard (Standard Webhooks: webhook-id, webhook-timestamp,
	// webhook-signature) or hmac (an HMAC of the body in one header).
	Scheme     string   `yaml:"scheme"`
	SecretEnv  string   `yaml:"secret_env"`
	SecretEnvs []string `yaml:"secret_envs"` // rotation: the first signs
	// hmac: the header, algorithm, encoding and prefix; by default those
	// of the route's verify block when its provider is hmac.
	Header    string `yaml:"header"`
	Algorithm string `yaml:"algorithm"`
	Encoding  string `yaml:"encoding"`
	Prefix    string `yaml:"prefix"`

	// Secret is the signing secret, read from the environment at load.
	// Never logged.
	Secret []byte `yaml:"-"`
}

// Order and coalescing spellings.
const (
	OrderByHeader  = "header:"
	OrderByJSON    = "json:"
	CoalesceLatest = "latest"
)

// Lane is one delivery destination: a route's target, or one of its
// targets. Async deliveries queue per lane; its Name is the deliveries'
// route (`drawbridge deliveries --route`) and their metrics label.
type Lane struct {
	Name        string
	Target      *Target // nil: the route's own target
	URL         *url.URL
	Timeout     Duration
	Retry       Retry
	Concurrency Int
	Sign        *Sign
	OrderBy     string // "" or header:NAME or json:PATH
	Coalesce    string // "" or latest
}

// Lanes are the route's destinations (set by Validate): one for a route
// with target, one per entry of targets.
func (r *Route) Lanes() []Lane { return r.lanes }

// routing validates a route's match, targets, sign, order_by and
// coalesce, and fills its lanes. laneBase is the lanes' name stem.
func (v *validator) routing(path string, i int, r *Route, laneBase string) {
	r.lanes = nil
	if r.Match != nil {
		v.match(path+".match", fmt.Sprintf("routes[%d].match", i), r.Match)
	}
	d := r.Delivery
	async := d.Mode == DeliveryAsync
	if d.Sign != nil {
		v.sign(path+".delivery.sign", fmt.Sprintf("routes[%d].delivery.sign", i), d.Sign, r.Verify)
	}
	v.order(path+".delivery", fmt.Sprintf("routes[%d].delivery", i), d.OrderBy, d.Coalesce, async)
	base := Lane{Timeout: r.Timeout, Retry: d.Retry, Concurrency: d.Concurrency,
		Sign: d.Sign, OrderBy: d.OrderBy, Coalesce: d.Coalesce}
	if len(r.Targets) == 0 {
		base.Name, base.URL = laneBase, r.target
		r.lanes = []Lane{base}
		return
	}
	if r.Target != "" {
		v.errorf(path+".targets", "routes[%d]: set target or targets, not both", i)
	}
	if !async && len(r.Targets) > 1 {
		v.errorf(path+".targets", "routes[%d]: a sync route answers with its target's response, and a caller can get only one answer: fan out to %d targets with delivery.mode: async", i, len(r.Targets))
	}
	if len(r.Targets) > MaxTargets {
		v.errorf(path+".targets", "routes[%d]: at most %d targets", i, MaxTargets)
	}
	names := map[string]bool{}
	for j := range r.Targets {
		t := &r.Targets[j]
		tp := fmt.Sprintf("%s.targets[%d]", path, j)
		key := fmt.Sprintf("routes[%d].targets[%d]", i, j)
		t.Line = v.line(tp)
		setDefault(&t.Name, strconv.Itoa(j+1))
		if names[t.Name] {
			v.errorf(tp+".name", "%s: duplicate target name %q", key, t.Name)
		}
		names[t.Name] = true
		if strings.ContainsAny(t.Name, "#\x00") {
			v.errorf(tp+".name", "%s.name: no '#' or NUL", key)
		}
		t.target = v.targetURL(tp, key, t.Target)
		if t.Match != nil {
			v.match(tp+".match", key+".match", t.Match)
		}
		l := base
		l.Name, l.Target, l.URL = laneBase+"#"+t.Name, t, t.target
		if t.Timeout != 0 {
			l.Timeout = t.Timeout
		}
		if td := t.Delivery; td != nil {
			if !async {
				v.errorf(tp+".delivery", "%s.delivery: only an async route's targets have delivery settings", key)
			}
			if td.Retry != nil {
				l.Retry = *td.Retry
			}
			if td.Concurrency != 0 {
				l.Concurrency = td.Concurrency
			}
			if td.Sign != nil {
				v.sign(tp+".delivery.sign", key+".delivery.sign", td.Sign, r.Verify)
				l.Sign = td.Sign
			}
			if td.OrderBy != "" {
				l.OrderBy = td.OrderBy
			}
			if td.Coalesce != "" {
				l.Coalesce = td.Coalesce
			}
			v.order(tp+".delivery", key+".delivery", l.OrderBy, l.Coalesce, async)
		}
		r.lanes = append(r.lanes, l)
	}
}

// MaxTargets bounds a route's fan-out: the gateway keeps which targets a
// request matched in one word.
const MaxTargets = 64

// targetURL parses and checks a target URL as routes[].target's.
func (v *validator) targetURL(path, key, s string) *url.URL {
	if s == "" {
		v.errorf(path, "%s: target is required", key)
		return nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		v.errorf(path+".target", "%s.target: not a URL", key)
	case u.Scheme != "http" && u.Scheme != "https":
		v.errorf(path+".target", "%s.target: scheme must be http or https", key)
	case u.Host == "":
		v.errorf(path+".target", "%s.target: missing host", key)
	case u.User != nil:
		v.errorf(path+".target", "%s.target: credentials in the URL are not supported", key)
	case u.RawQuery != "" || u.Fragment != "":
		v.errorf(path+".target", "%s.target: must not have a query or fragment", key)
	default:
		return u
	}
	return nil
}

func (v *validator) match(path, key string, m *Match) {
	if len(m.Header)+len(m.JSON)+len(m.Query) == 0 {
		v.errorf(path, "%s: name at least one header, json path or query parameter", key)
	}
	for name, ps := range m.Header {
		if !validToken(name) {
			v.errorf(path+".header", "%s.header: %q is not a header name", key, name)
		}
		v.patterns(path+".header."+name, key, ps)
	}
	for p, ps := range m.JSON {
		if !ValidJSONPath(p) {
			v.errorf(path+".json", "%s.json: %q is not a dotted path (name.name, a number indexes an array)", key, p)
		}
		v.patterns(path+".json."+p, key, ps)
	}
	for name, ps := range m.Query {
		if name == "" {
			v.errorf(path+".query", "%s.query: empty parameter name", key)
		}
		v.patterns(path+".query."+name, key, ps)
	}
}

func (v *validator) patterns(path, key string, ps Patterns) {
	if len(ps) == 0 {
		v.errorf(path, "%s: want at least one pattern", key)
	}
}

// ValidJSONPath reports whether p is a dotted path of non-empty segments.
func ValidJSONPath(p string) bool {
	if p == "" {
		return false
	}
	return !slices.Contains(strings.Split(p, "."), "")
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

var signSchemes = []string{"standard", "hmac"}

// sign checks a sign block and reads its secret. An hmac sign block takes
// the header, algorithm, encoding and prefix the route's verify block
// (provider hmac) names, unless it names its own.
func (v *validator) sign(path, key string, s *Sign, verify *Verify) {
	oneOf(v, path+".scheme", key+".scheme", s.Scheme, signSchemes...)
	names := s.SecretEnvs
	if s.SecretEnv != "" {
		names = append([]string{s.SecretEnv}, names...)
	}
	if len(names) == 0 {
		v.errorf(path, "%s: secret_env is required", key)
	} else if val, ok := v.env(names[0]); !ok || val == "" {
		v.errorf(path+".secret_env", "%s: environment variable %s is not set or empty", key, names[0])
	} else {
		s.Secret = []byte(val)
	}
	if s.Scheme == "hmac" && s.Header == "" {
		if verify == nil || verify.Provider != "hmac" {
			v.errorf(path, "%s: scheme hmac needs header (or a verify block with provider hmac to take it from)", key)
			return
		}
		s.Header, s.Algorithm, s.Encoding, s.Prefix = verify.Header, verify.Algorithm, verify.Encoding, verify.Prefix
	}
	if s.Scheme == "standard" && (s.Header != "" || s.Algorithm != "" || s.Encoding != "" || s.Prefix != "") {
		v.errorf(path, "%s: header, algorithm, encoding and prefix apply to scheme hmac only", key)
	}
}

// order checks order_by and coalesce.
func (v *validator) order(path, key, orderBy, coalesce string, async bool) {
	if orderBy != "" {
		switch {
		case !async:
			v.errorf(path+".order_by", "%s.order_by: only async deliveries are ordered (a sync route forwards at once)", key)
		case strings.HasPrefix(orderBy, OrderByHeader):
			if !validToken(orderBy[len(OrderByHeader):]) {
				v.errorf(path+".order_by", "%s.order_by: %q names no header", key, orderBy)
			}
		case strings.HasPrefix(orderBy, OrderByJSON):
			if !ValidJSONPath(orderBy[len(OrderByJSON):]) {
				v.errorf(path+".order_by", "%s.order_by: %q is not a dotted path", key, orderBy)
			}
		default:
			v.errorf(path+".order_by", "%s.order_by: want header:NAME or json:PATH, got %q", key, orderBy)
		}
	}
	if coalesce != "" {
		if coalesce != CoalesceLatest {
			v.errorf(path+".coalesce", "%s.coalesce: %q is not latest", key, coalesce)
		} else if orderBy == "" {
			v.errorf(path+".coalesce", "%s.coalesce: needs order_by (deliveries coalesce per order key)", key)
		}
	}
}

// siblings checks a route that shares its path and a method with an
// earlier one that has a match: they must guard alike, since a request is
// checked once, by the first route's guards, and then matched.
func (v *validator) siblings(path string, i, first int) {
	c := v.cfg
	a, b := &c.Routes[first], &c.Routes[i]
	if a.APIKeyRequired != b.APIKeyRequired || !slices.Equal(a.AllowIPs, b.AllowIPs) ||
		!reflect.DeepEqual(a.Throttle, b.Throttle) || !reflect.DeepEqual(a.Verify, b.Verify) ||
		a.Authorizer != b.Authorizer || !slices.Equal(a.Scopes, b.Scopes) {
		v.errorf(path+".path", "routes[%d] shares its path and a method with the route at line %d: a request is checked once, then matched, so both need the same verify, api_key_required, allow_ips, throttle, authorizer and scopes", i, a.Line)
	}
}

// CanonicalHeader is the canonical form of a match header name.
func CanonicalHeader(name string) string { return textproto.CanonicalMIMEHeaderKey(name) }

// RouteTo is r as if t were its only target: for code that reads one
// target per route (the egress default, explain).
func RouteTo(r *Route, t *Target) Route {
	c := *r
	c.Target, c.target, c.Targets, c.Line = t.Target, t.target, nil, t.Line
	return c
}

// TargetURLs lists every target the routes name, as written, in file
// order: a route's target, or each of its targets.
func (c *Config) TargetURLs() []string {
	var out []string
	for i := range c.Routes {
		r := &c.Routes[i]
		if len(r.Targets) == 0 {
			out = append(out, r.Target)
		}
		for _, t := range r.Targets {
			out = append(out, t.Target)
		}
	}
	return out
}

// RoutesPerTarget lists the routes as code that reads one target per
// route sees them (the egress default, check's name lookups): a route
// with target as it is, a fan-out route once per target (RouteTo).
func (c *Config) RoutesPerTarget() []Route {
	var out []Route
	for i := range c.Routes {
		r := &c.Routes[i]
		if len(r.Targets) == 0 {
			out = append(out, *r)
		}
		for j := range r.Targets {
			out = append(out, RouteTo(r, &r.Targets[j]))
		}
	}
	return out
}
