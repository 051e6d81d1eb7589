package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// CORS is a cross-origin resource sharing configuration (cors:, at the
// top or on a route), with the fields of an HTTP API's
// corsConfiguration. The gateway answers browsers' preflight OPTIONS
// itself and adds the headers to every answer of the route
// (docs/guards.md#cors).
type CORS struct {
	// AllowOrigins are exact origins (scheme://host[:port]), "*" (any
	// origin), a scheme wildcard ("https://*": any https origin) or a
	// subdomain wildcard ("https://*.example.com": any subdomain of it,
	// not the domain itself). At least one.
	AllowOrigins []string `yaml:"allow_origins"`
	// AllowMethods a preflight may ask for; "*": any. Empty: the route's
	// own methods.
	AllowMethods []string `yaml:"allow_methods"`
	// AllowHeaders a request may carry besides the CORS-safelisted ones;
	// "*": any (echoed, so it also holds with credentials).
	AllowHeaders []string `yaml:"allow_headers"`
	// ExposeHeaders of the answer that scripts may read.
	ExposeHeaders []string `yaml:"expose_headers"`
	// MaxAge is how many seconds a browser may cache a preflight answer
	// (0: no Access-Control-Max-Age, the browser's default).
	MaxAge Int `yaml:"max_age"`
	// AllowCredentials lets browsers send cookies and Authorization and
	// read the answer; refused with the origin "*".
	AllowCredentials bool `yaml:"allow_credentials"`

	// Off is `cors: false`: a route without CORS under a top-level cors.
	Off bool `yaml:"-"`
}

// UnmarshalYAML reads a cors mapping strictly, or false (Off).
func (c *CORS) UnmarshalYAML(node ast.Node) error {
	if node.Type() == ast.BoolType {
		if node.GetToken().Value != "false" {
			return nodeErrorf(node, "cors: want a mapping with allow_origins (and allow_methods, allow_headers, expose_headers, max_age, allow_credentials), or false for none")
		}
		*c = CORS{Off: true}
		return nil
	}
	type plain CORS // without this method: no recursion
	var p plain
	if err := decode(node, &p); err != nil {
		return err
	}
	*c = CORS(p)
	return nil
}

// RouteCORS is the CORS configuration that applies to r: its own, which
// replaces the top-level one as a whole (no field is merged, so a route
// reads whole where it is written), else the top-level one; nil: none
// (also for `cors: false`).
func (c *Config) RouteCORS(r *Route) *CORS {
	cc := c.CORS
	if r.CORS != nil {
		cc = r.CORS
	}
	if cc == nil || cc.Off {
		return nil
	}
	return cc
}

// MaxCORSAge is API Gateway's longest preflight cache time (an HTTP API's
// maxAge), in seconds.
const MaxCORSAge = 86400

var (
	originScheme = regexp.MustCompile(`^[a-z][a-z0-9+.-]*$`)
	headerToken  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// cors checks one cors block found at path (key names it in messages),
// upper-casing methods and lower-casing origins as browsers send them.
func (v *validator) cors(path, key string, c *CORS) {
	if c == nil || c.Off {
		return
	}
	if len(c.AllowOrigins) == 0 {
		v.errorf(path, "%s.allow_origins: list at least one origin, such as \"https://app.example.com\" (or \"*\" for any)", key)
	}
	for i, o := range c.AllowOrigins {
		o = strings.ToLower(o)
		c.AllowOrigins[i] = o
		if msg := checkOrigin(o); msg != "" {
			v.errorf(fmt.Sprintf("%s.allow_origins[%d]", path, i), "%s.allow_origins: %q: %s", key, o, msg)
		}
		if o == "*" && c.AllowCredentials {
			v.errorf(fmt.Sprintf("%s.allow_origins[%d]", path, i), "%s: allow_credentials: true with the origin \"*\": browsers refuse credentials from a wildcard origin; list the origins instead", key)
		}
	}
	for i, m := range c.AllowMethods {
		m = strings.ToUpper(m)
		c.AllowMethods[i] = m
		if m != "*" && !methodToken.MatchString(m) {
			v.errorf(fmt.Sprintf("%s.allow_methods[%d]", path, i), "%s.allow_methods: bad method %q", key, m)
		}
	}
	for _, hs := range []struct {
		name string
		list []string
	}{{"allow_headers", c.AllowHeaders}, {"expose_headers", c.ExposeHeaders}} {
		for i, h := range hs.list {
			if !headerToken.MatchString(h) {
				v.errorf(fmt.Sprintf("%s.%s[%d]", path, hs.name, i), "%s.%s: %q is not a header name", key, hs.name, h)
			}
		}
	}
	if c.MaxAge < 0 || c.MaxAge > MaxCORSAge {
		v.errorf(path+".max_age", "%s.max_age: %d seconds: want 0 to %d (API Gateway's limit)", key, c.MaxAge, MaxCORSAge)
	}
}

// checkOrigin returns why o (lower-cased) is not an origin pattern, or "".
func checkOrigin(o string) string {
	if o == "*" {
		return ""
	}
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || !originScheme.MatchString(scheme) {
		return "want scheme://host[:port], \"*\", scheme://* or scheme://*.domain"
	}
	if rest == "*" {
		return ""
	}
	if strings.ContainsAny(rest, "/?#@ ") {
		return "an origin has no path, query or user (browsers send scheme://host[:port], without a trailing /)"
	}
	host := strings.TrimPrefix(rest, "*.")
	if h, port, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "bad port " + strconv.Quote(port)
		}
		host = h
	}
	if host == "" || strings.Contains(host, "*") {
		return "a wildcard may only stand for the whole origin (\"*\"), the host (scheme://*) or leading subdomains (scheme://*.domain)"
	}
	return ""
}
