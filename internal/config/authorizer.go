package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Authorizer is one entry of the top-level authorizers: map, which routes
// name in their authorizer: key (docs/authorizers.md). A jwt authorizer is
// an HTTP API JWT authorizer; a request authorizer is a Lambda
// authorizer's contract spoken over HTTP to a URL (forward-auth).
type Authorizer struct {
	Type AuthorizerType `yaml:"type"` // jwt | request

	// Issuer (jwt) must equal the token's iss; its discovery document
	// (Issuer + "/.well-known/openid-configuration") names the JWKS
	// unless JWKSURI is set.
	Issuer string `yaml:"issuer"`
	// Audience (jwt): the token's aud, or client_id when it has no aud,
	// must contain one of these. At least one.
	Audience []string `yaml:"audience"`
	// JWKSURI (jwt) is where the signing keys are; empty: from discovery.
	JWKSURI string `yaml:"jwks_uri"`
	// Leeway (jwt) is the clock skew allowed on exp, nbf and iat; default
	// none, at most MaxLeeway.
	Leeway Duration `yaml:"leeway"`

	// URL (request) receives the authorizer event as a POST.
	URL string `yaml:"url"`
	// Timeout (request) bounds one call; default DefaultAuthorizerTimeout
	// (API Gateway's 10 s), at most that.
	Timeout Duration `yaml:"timeout"`
	// TTL (request) caches a result per identity; default
	// DefaultAuthorizerTTL, 0 disables, at most MaxAuthorizerTTL.
	TTL *TTL `yaml:"ttl"`
	// OnError (request) is the answer when the authorizer cannot be asked
	// or answers nonsense: 500 (API Gateway's, the default) or 503.
	OnError int `yaml:"on_error"`

	// IdentitySources name where the credential is: for jwt one source
	// (default $request.header.Authorization, read as "Bearer <token>");
	// for request the cache key and the values that must all be present
	// (default none: no cache). HTTP API ($request.header.X,
	// $request.querystring.x, $context.identity.sourceIp, $context.httpMethod,
	// $context.path) or REST spelling (method.request.header.X, ...).
	IdentitySources []string `yaml:"identity_sources"`

	Line int `yaml:"-"` // where the entry starts, for messages
}

// AuthorizerType names what an authorizer is.
type AuthorizerType string

const (
	// AuthorizerJWT verifies a bearer JWT against the issuer's keys.
	AuthorizerJWT AuthorizerType = "jwt"
	// AuthorizerRequest asks an HTTP service, as API Gateway asks a Lambda
	// authorizer.
	AuthorizerRequest AuthorizerType = "request"
)

// Defaults and bounds of authorizers, from API Gateway's.
const (
	DefaultAuthorizerTTL     = 300 * time.Second
	MaxAuthorizerTTL         = time.Hour
	DefaultAuthorizerTimeout = 10 * time.Second
	MaxLeeway                = 5 * time.Minute
	DefaultIdentitySource    = "$request.header.Authorization"
)

// TTL is a cache time that may be zero (off), unlike Duration: "0",
// 0, "0s" or a positive Go duration.
type TTL time.Duration

// UnmarshalYAML implements yaml.NodeUnmarshaler.
func (t *TTL) UnmarshalYAML(node ast.Node) error {
	s := node.GetToken().Value
	if node.Type() == ast.IntegerType && s == "0" {
		*t = 0
		return nil
	}
	if node.Type() != ast.StringType {
		return nodeErrorf(node, "want a duration such as 300s, or 0 for no cache, got %s", kind(node))
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return nodeErrorf(node, "bad duration %q: want a Go duration such as 300s, or 0 for no cache", s)
	}
	*t = TTL(v)
	return nil
}

// CacheTTL is the authorizer's result cache time (0: none).
func (a *Authorizer) CacheTTL() time.Duration {
	if a.TTL == nil {
		return DefaultAuthorizerTTL
	}
	return time.Duration(*a.TTL)
}

// identityPrefixes and identityContext are the identity sources
// drawbridge reads, in both API flavours' spelling.
var identityPrefixes = []struct{ prefix, kind string }{
	{"$request.header.", "header"}, {"method.request.header.", "header"},
	{"$request.querystring.", "query"}, {"method.request.querystring.", "query"},
}

var identityContext = map[string]string{
	"$context.identity.sourceIp": "sourceip", "context.identity.sourceIp": "sourceip",
	"$context.httpMethod": "method", "context.httpMethod": "method", "$context.http.method": "method",
	"$context.path": "path", "context.path": "path", "$context.http.path": "path",
}

// ParseIdentitySource splits an identity source into its kind (header,
// query, sourceip, method, path) and name; ok false when drawbridge does
// not know it.
func ParseIdentitySource(s string) (kind, name string, ok bool) {
	for _, p := range identityPrefixes {
		if n, found := strings.CutPrefix(s, p.prefix); found && n != "" {
			return p.kind, n, true
		}
	}
	k, found := identityContext[s]
	return k, "", found
}

// authorizers checks the authorizers: map, filling defaults.
func (v *validator) authorizers() {
	for name, a := range v.cfg.Authorizers {
		path := "$.authorizers." + name
		key := "authorizers." + name
		if a == nil {
			v.errorf(path, "%s: want a mapping with type: jwt or type: request", key)
			continue
		}
		a.Line = v.line(path)
		switch a.Type {
		case AuthorizerJWT:
			v.jwtAuthorizer(path, key, a)
		case AuthorizerRequest:
			v.requestAuthorizer(path, key, a)
		default:
			v.errorf(path+".type", "%s.type: want jwt or request, got %q", key, a.Type)
		}
	}
}

func (v *validator) jwtAuthorizer(path, key string, a *Authorizer) {
	if msg := httpURL(a.Issuer); msg != "" {
		v.errorf(path+".issuer", "%s.issuer %q: %s (the exact iss of the tokens)", key, a.Issuer, msg)
	}
	if a.JWKSURI != "" {
		if msg := httpURL(a.JWKSURI); msg != "" {
			v.errorf(path+".jwks_uri", "%s.jwks_uri %q: %s", key, a.JWKSURI, msg)
		}
	}
	if len(a.Audience) == 0 {
		v.errorf(path, "%s.audience: list at least one audience (the token's aud or client_id must contain one)", key)
	}
	if time.Duration(a.Leeway) > MaxLeeway {
		v.errorf(path+".leeway", "%s.leeway: at most %s", key, MaxLeeway)
	}
	if len(a.IdentitySources) == 0 {
		a.IdentitySources = []string{DefaultIdentitySource}
	}
	if len(a.IdentitySources) != 1 {
		v.errorf(path+".identity_sources", "%s.identity_sources: a jwt authorizer reads one source", key)
	} else if k, _, ok := ParseIdentitySource(a.IdentitySources[0]); !ok || (k != "header" && k != "query") {
		v.errorf(path+".identity_sources", "%s.identity_sources: %q: want $request.header.NAME or $request.querystring.NAME", key, a.IdentitySources[0])
	}
	for _, f := range []struct {
		set  bool
		name string
	}{{a.URL != "", "url"}, {a.TTL != nil, "ttl"}, {a.Timeout != 0, "timeout"}, {a.OnError != 0, "on_error"}} {
		if f.set {
			v.errorf(path+"."+f.name, "%s.%s: only for type: request", key, f.name)
		}
	}
}

func (v *validator) requestAuthorizer(path, key string, a *Authorizer) {
	if msg := httpURL(a.URL); msg != "" {
		v.errorf(path+".url", "%s.url %q: %s", key, a.URL, msg)
	}
	if a.Timeout == 0 {
		a.Timeout = Duration(DefaultAuthorizerTimeout)
	}
	if time.Duration(a.Timeout) > DefaultAuthorizerTimeout {
		v.errorf(path+".timeout", "%s.timeout: at most %s (API Gateway's limit)", key, DefaultAuthorizerTimeout)
	}
	if ttl := a.CacheTTL(); ttl > MaxAuthorizerTTL {
		v.errorf(path+".ttl", "%s.ttl: at most %s (API Gateway's limit), or 0 for no cache", key, MaxAuthorizerTTL)
	}
	if a.OnError == 0 {
		a.OnError = 500
	}
	if a.OnError != 500 && a.OnError != 503 {
		v.errorf(path+".on_error", "%s.on_error: want 500 (API Gateway's answer) or 503", key)
	}
	for i, s := range a.IdentitySources {
		if _, _, ok := ParseIdentitySource(s); !ok {
			v.errorf(fmt.Sprintf("%s.identity_sources[%d]", path, i), "%s.identity_sources: %q: want $request.header.NAME, $request.querystring.NAME, $context.identity.sourceIp, $context.httpMethod or $context.path", key, s)
		}
	}
	if a.CacheTTL() > 0 && len(a.IdentitySources) == 0 {
		v.errorf(path+".ttl", "%s: a cached result needs identity_sources to key it on (or ttl: 0)", key)
	}
	for _, f := range []struct {
		set  bool
		name string
	}{{a.Issuer != "", "issuer"}, {len(a.Audience) > 0, "audience"}, {a.JWKSURI != "", "jwks_uri"}, {a.Leeway != 0, "leeway"}} {
		if f.set {
			v.errorf(path+"."+f.name, "%s.%s: only for type: jwt", key, f.name)
		}
	}
}

// httpURL returns why s is not an absolute http(s) URL with a host, or "".
func httpURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return "required"
	case err != nil:
		return "not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "scheme must be http or https"
	case u.Host == "":
		return "missing host"
	case u.User != nil:
		return "credentials in the URL are not supported"
	}
	return ""
}

// routeAuthorizer checks a route's authorizer, scopes and
// authorizer_headers.
func (v *validator) routeAuthorizer(path string, i int, r *Route) {
	if r.Authorizer == "" {
		if len(r.Scopes) > 0 || len(r.AuthorizerHeaders) > 0 {
			v.errorf(path, "routes[%d]: scopes and authorizer_headers need an authorizer", i)
		}
		return
	}
	a := v.cfg.Authorizers[r.Authorizer]
	if a == nil {
		names := make([]string, 0, len(v.cfg.Authorizers))
		for n := range v.cfg.Authorizers {
			names = append(names, n)
		}
		slices.Sort(names)
		v.errorf(path+".authorizer", "routes[%d].authorizer: %q is not in authorizers: (have: %s)", i, r.Authorizer, strings.Join(names, ", "))
		return
	}
	if len(r.Scopes) > 0 && a.Type != AuthorizerJWT {
		v.errorf(path+".scopes", "routes[%d].scopes: only a jwt authorizer checks scopes", i)
	}
	for h, from := range r.AuthorizerHeaders {
		if !headerToken.MatchString(h) {
			v.errorf(path+".authorizer_headers", "routes[%d].authorizer_headers: %q is not a header name", i, h)
		}
		if from == "" {
			v.errorf(path+".authorizer_headers", "routes[%d].authorizer_headers.%s: name a claim (jwt) or a context key (request)", i, h)
		}
	}
}

// Endpoint is a URL an authorizer fetches, for the default egress allow
// list: the operator named it, as a route's target.
type Endpoint struct {
	What string // "authorizers.NAME.url", for messages
	URL  string
	Line int
}

// AuthorizerEndpoints lists the URLs the authorizers fetch that the config
// names: a jwt authorizer's issuer (its discovery document) and jwks_uri,
// a request authorizer's url. A jwks_uri found by discovery on another
// host is not here: name it in jwks_uri or egress.allow.
func (c *Config) AuthorizerEndpoints() []Endpoint {
	names := make([]string, 0, len(c.Authorizers))
	for n := range c.Authorizers {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []Endpoint
	for _, n := range names {
		a := c.Authorizers[n]
		if a == nil {
			continue
		}
		for _, e := range []struct{ key, url string }{{"issuer", a.Issuer}, {"jwks_uri", a.JWKSURI}, {"url", a.URL}} {
			if e.url != "" && (e.key != "issuer" || a.JWKSURI == "") {
				out = append(out, Endpoint{What: "authorizers." + n + "." + e.key, URL: e.url, Line: a.Line})
			}
		}
	}
	return out
}
