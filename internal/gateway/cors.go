package gateway

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// This file is CORS (docs/guards.md#cors): a route's cors compiled once,
// the preflight the gateway answers itself, and the headers the recorder
// adds to every other answer of the route. A route without cors pays one
// nil check.

// corsRule is a route's cors, compiled: header values are ready slices.
type corsRule struct {
	anyOrigin   bool            // "*"
	exact       map[string]bool // scheme://host[:port]
	schemes     []string        // "https://" of "https://*"
	subdomains  [][2]string     // {"https://", ".example.com"} of "https://*.example.com"
	anyMethod   bool            // allow_methods "*": the requested method is echoed
	methods     []string        // allowed methods (allow_methods, or the route's)
	methodsHdr  []string        // Access-Control-Allow-Methods
	anyHeader   bool            // allow_headers "*": the requested headers are echoed
	headersHdr  []string        // Access-Control-Allow-Headers; nil: none
	exposeHdr   []string        // Access-Control-Expose-Headers; nil: none
	maxAgeHdr   []string        // Access-Control-Max-Age; nil: none
	credentials bool
	text        string // for explain: the origins allowed

	preflights prometheus.Counter // outcome preflight, method OPTIONS
}

var (
	starHdr    = []string{"*"}
	trueHdr    = []string{"true"}
	originHdr  = []string{"Origin"}
	noCORSHdrs = []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"}
)

// compileCORS builds r's corsRule from the cors that applies to it (its
// own, else the top-level one) and counts its preflights; nil: none.
func compileCORS(cfg *config.Config, r *route, m *metrics.Metrics) *corsRule {
	cc := cfg.RouteCORS(r.cfg)
	if cc == nil {
		return nil
	}
	cr := &corsRule{exact: map[string]bool{}, credentials: cc.AllowCredentials, text: strings.Join(cc.AllowOrigins, ", ")}
	for _, o := range cc.AllowOrigins {
		scheme, host, _ := strings.Cut(o, "://")
		switch {
		case o == "*":
			cr.anyOrigin = true
		case host == "*":
			cr.schemes = append(cr.schemes, scheme+"://")
		case strings.HasPrefix(host, "*."):
			cr.subdomains = append(cr.subdomains, [2]string{scheme + "://", host[1:]})
		default:
			cr.exact[o] = true
		}
	}
	cr.methods = cc.AllowMethods
	if len(cr.methods) == 0 {
		cr.methods = r.cfg.Methods
	}
	for _, mt := range cr.methods {
		if mt == "*" {
			cr.anyMethod = true
		}
	}
	cr.methodsHdr = []string{strings.Join(cr.methods, ",")}
	for _, h := range cc.AllowHeaders {
		if h == "*" {
			cr.anyHeader = true
		}
	}
	if len(cc.AllowHeaders) > 0 {
		cr.headersHdr = []string{strings.Join(cc.AllowHeaders, ",")}
	}
	if len(cc.ExposeHeaders) > 0 {
		cr.exposeHdr = []string{strings.Join(cc.ExposeHeaders, ",")}
	}
	if cc.MaxAge > 0 {
		cr.maxAgeHdr = []string{strconv.FormatInt(int64(cc.MaxAge), 10)}
	}
	cr.preflights = m.Requests.WithLabelValues(r.label, http.MethodOptions, string(metrics.Preflight))
	return cr
}

// allowOrigin returns the Access-Control-Allow-Origin value for r's
// Origin, or nil when it has none or it is not allowed. An echoed origin
// shares r's header slice: no allocation.
func (cr *corsRule) allowOrigin(r *http.Request) []string {
	v := r.Header["Origin"]
	if len(v) == 0 || v[0] == "" {
		return nil
	}
	if cr.anyOrigin && !cr.credentials {
		return starHdr
	}
	if cr.allows(v[0]) {
		return v[:1]
	}
	return nil
}

func (cr *corsRule) allows(o string) bool {
	if cr.anyOrigin || cr.exact[o] {
		return true
	}
	for _, s := range cr.schemes {
		if strings.HasPrefix(o, s) && len(o) > len(s) {
			return true
		}
	}
	for _, sd := range cr.subdomains {
		if strings.HasPrefix(o, sd[0]) && strings.HasSuffix(o, sd[1]) {
			sub := o[len(sd[0]) : len(o)-len(sd[1])]
			if len(o) > len(sd[0])+len(sd[1]) && !strings.ContainsAny(sub, ":/") {
				return true
			}
		}
	}
	return false
}

func (cr *corsRule) allowsMethod(m string) bool {
	if cr.anyMethod {
		return true
	}
	for _, a := range cr.methods {
		if a == m {
			return true
		}
	}
	return false
}

// addTo puts the CORS headers of an answer that is not a preflight in h,
// just before it is written: the backend's own Access-Control-* headers
// are dropped (an HTTP API with CORS configured ignores them too, so one
// answer never carries two differing values), Vary gains Origin, and an
// allowed origin gets Allow-Origin, Allow-Credentials and Expose-Headers.
func (cr *corsRule) addTo(h http.Header, origin []string) {
	for _, k := range noCORSHdrs {
		delete(h, k)
	}
	h["Vary"] = varyOrigin(h["Vary"])
	if origin == nil {
		return
	}
	h["Access-Control-Allow-Origin"] = origin
	if cr.credentials {
		h["Access-Control-Allow-Credentials"] = trueHdr
	}
	if cr.exposeHdr != nil {
		h["Access-Control-Expose-Headers"] = cr.exposeHdr
	}
}

// varyOrigin adds Origin to a Vary header unless it names it (or "*").
func varyOrigin(vary []string) []string {
	if len(vary) == 0 {
		return originHdr
	}
	for _, v := range vary {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Origin") {
				return vary
			}
		}
	}
	return append(vary[:len(vary):len(vary)], "Origin")
}

// matchPreflight finds the route of a browser's CORS preflight: OPTIONS
// with Origin and Access-Control-Request-Method, and no body (a browser
// never sends one). The route is the one that will serve the real
// request (its method is the requested one), when it has cors; else a
// cors route serving OPTIONS on the path, whose answer then allows
// nothing (routed false). nil: not a preflight the gateway answers, and
// the request is routed as any other.
func (g *Gateway) matchPreflight(r *http.Request, escaped string) (rt *route, rest string, routed bool) {
	acrm := r.Header["Access-Control-Request-Method"]
	if len(acrm) == 0 || acrm[0] == "" || len(r.Header["Origin"]) == 0 || hasBody(r) {
		return nil, "", false
	}
	if rt, rest := g.router.match(acrm[0], r.URL.Path, escaped); rt != nil && rt.guards.cors != nil {
		return rt, rest, true
	}
	if rt, rest := g.router.match(http.MethodOptions, r.URL.Path, escaped); rt != nil && rt.guards.cors != nil {
		return rt, rest, false
	}
	return nil, "", false
}

// preflight answers a CORS preflight itself, before the guards: a browser
// sends it without the API key, signature or credentials the real
// request carries, so no guard could pass it, and it never reaches the
// target (docs/guards.md#cors). An allowed origin and method get 204 with
// the Access-Control-Allow-* headers; anything else gets 204 without
// them, which the browser reads as a refusal (as an HTTP API answers).
func (g *Gateway) preflight(c *call, routed bool) {
	cr := c.route.guards.cors
	h := c.w.Header()
	h["Date"] = dateOf(c.start)
	g.idHeaders(h, c)
	h["Vary"] = originHdr
	if origin, ok := g.preflightAllowed(c, routed); ok {
		h["Access-Control-Allow-Origin"] = origin
		if cr.anyMethod {
			h["Access-Control-Allow-Methods"] = c.r.Header["Access-Control-Request-Method"][:1]
		} else {
			h["Access-Control-Allow-Methods"] = cr.methodsHdr
		}
		if rh := c.r.Header["Access-Control-Request-Headers"]; cr.anyHeader && len(rh) > 0 {
			h["Access-Control-Allow-Headers"] = rh
		} else if cr.headersHdr != nil && !cr.anyHeader {
			h["Access-Control-Allow-Headers"] = cr.headersHdr
		}
		if cr.credentials {
			h["Access-Control-Allow-Credentials"] = trueHdr
		}
		if cr.maxAgeHdr != nil {
			h["Access-Control-Max-Age"] = cr.maxAgeHdr
		}
	}
	c.w.WriteHeader(http.StatusNoContent)
	c.status, c.outcome = http.StatusNoContent, metrics.Preflight
	cr.preflights.Inc() // here, as accept counts its own: finish counts by reason

}

// preflightAllowed decides a preflight: the Allow-Origin value and
// whether the origin and the requested method are allowed. In a dry call
// it says why in c.note.
func (g *Gateway) preflightAllowed(c *call, routed bool) ([]string, bool) {
	cr := c.route.guards.cors
	origin := cr.allowOrigin(c.r)
	method := c.r.Header["Access-Control-Request-Method"][0]
	switch {
	case origin == nil:
		if c.dry {
			c.notef("origin %s is not in cors.allow_origins [%s]: answered 204 without Access-Control-Allow-* headers, before the guards", c.r.Header["Origin"][0], cr.text)
		}
		return nil, false
	case !routed:
		if c.dry {
			c.notef("no route with cors serves %s %s: answered 204 without Access-Control-Allow-* headers, before the guards", method, c.r.URL.Path)
		}
		return nil, false
	case !cr.allowsMethod(method):
		if c.dry {
			c.notef("method %s is not in cors.allow_methods [%s]: answered 204 without Access-Control-Allow-* headers, before the guards", method, cr.methodsHdr[0])
		}
		return nil, false
	}
	if c.dry {
		c.notef("CORS preflight for %s from origin %s: answered 204 by the gateway before the guards", method, c.r.Header["Origin"][0])
	}
	return origin, true
}
