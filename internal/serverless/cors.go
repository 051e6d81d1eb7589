package serverless

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/config"
)

// CORS: an http event's cors (REST: the framework adds an OPTIONS mock
// method per path) becomes its route's cors, and provider.httpApi.cors
// (HTTP API: one corsConfiguration for the API) the top-level cors.
// docs/serverless.md lists the mapping.

// slsCORSHeaders are the headers the framework allows for `cors: true`
// and for an object without headers.
var slsCORSHeaders = []string{"Content-Type", "X-Amz-Date", "Authorization", "X-Api-Key", "X-Amz-Security-Token", "X-Amz-User-Agent", "X-Amzn-Trace-Id"}

var httpCORSRules = map[string]rule{
	"origin": use, "origins": use, "headers": use, "methods": use, "allowCredentials": use, "maxAge": use,
	"cacheControl": skip("drawbridge's preflight answers carry no Cache-Control; max_age bounds the browser's cache"),
}

var httpAPICORSRules = map[string]rule{
	"allowedOrigins": use, "allowedHeaders": use, "allowedMethods": use, "allowCredentials": use,
	"exposedResponseHeaders": use, "maxAge": use,
}

var httpAPIRules = map[string]rule{
	"cors": use, "id": skip(awsOnly), "name": skip(awsOnly), "payload": skip(awsOnly), "metrics": skip(awsOnly),
	"disableDefaultEndpoint": skip(awsOnly), "useProviderTags": skip(awsOnly), "shouldStartNameWithService": skip(awsOnly),
	"authorizers": use, // authorizers.go
}

// eventCORS reads an http event's cors into r.
func (s *slsImport) eventCORS(m *snode, r *eventRoute, what string) {
	n, line := m.get("cors")
	if n == nil {
		return
	}
	w := what + ".cors"
	if v := s.val(n); v != nil && v.kind == snScalar {
		if on, ok := s.boolean(v, w); ok && on {
			r.cors, r.corsLine = defaultCORS(), line
		}
		return
	}
	cm := s.keys(n, w, true, httpCORSRules)
	if cm == nil {
		return
	}
	c := &config.CORS{AllowHeaders: slsCORSHeaders}
	if o := cm.at("origin"); o != nil {
		if v, ok := s.text(o, w+".origin"); ok {
			c.AllowOrigins = splitList(v)
		}
	}
	if o := cm.at("origins"); o != nil {
		c.AllowOrigins = append(c.AllowOrigins, s.strings(o, w+".origins")...)
	}
	if len(c.AllowOrigins) == 0 {
		c.AllowOrigins = []string{"*"} // the framework's default origin
	}
	if h := cm.at("headers"); h != nil {
		c.AllowHeaders = s.strings(h, w+".headers")
	}
	if ms := cm.at("methods"); ms != nil {
		c.AllowMethods = s.strings(ms, w+".methods")
	}
	s.corsCommon(cm, c, w)
	r.cors, r.corsLine = c, line
}

// httpAPICORS reads provider.httpApi.cors into the top-level cors, once
// the events have said which flavour the service is.
func (s *slsImport) httpAPICORS(p *snode) {
	h, _ := p.get("httpApi")
	if h == nil {
		return
	}
	hm := s.keys(h, "provider.httpApi", false, httpAPIRules)
	if hm == nil {
		return
	}
	n, line := hm.get("cors")
	if n == nil {
		return
	}
	const w = "provider.httpApi.cors"
	if s.api != config.APIHTTP {
		s.warnf(line, "%s: ignored: it applies to httpApi events and this service has http events (set cors on each http event)", w)
		return
	}
	var c *config.CORS
	if v := s.val(n); v != nil && v.kind == snScalar {
		if on, ok := s.boolean(v, w); ok && on {
			c = defaultCORS()
		}
	} else if cm := s.keys(n, w, true, httpAPICORSRules); cm != nil {
		c = &config.CORS{AllowHeaders: slsCORSHeaders, AllowOrigins: []string{"*"}}
		if o := cm.at("allowedOrigins"); o != nil {
			c.AllowOrigins = s.strings(o, w+".allowedOrigins")
		}
		if hd := cm.at("allowedHeaders"); hd != nil {
			c.AllowHeaders = s.strings(hd, w+".allowedHeaders")
		}
		if ms := cm.at("allowedMethods"); ms != nil {
			c.AllowMethods = s.strings(ms, w+".allowedMethods")
		}
		if e := cm.at("exposedResponseHeaders"); e != nil {
			c.ExposeHeaders = s.strings(e, w+".exposedResponseHeaders")
		}
		s.corsCommon(cm, c, w)
	}
	if c != nil {
		s.cfg.CORS = c
		s.from("$.cors", line, w)
	}
}

// corsCommon reads the keys both forms share.
func (s *slsImport) corsCommon(cm *snode, c *config.CORS, w string) {
	if b := cm.at("allowCredentials"); b != nil {
		c.AllowCredentials, _ = s.boolean(b, w+".allowCredentials")
	}
	if a := cm.at("maxAge"); a != nil {
		if v, ok := s.integer(a, w+".maxAge"); ok {
			c.MaxAge = config.Int(v)
		}
	}
}

// defaultCORS is the framework's `cors: true`: any origin, its default
// headers, the route's methods.
func defaultCORS() *config.CORS {
	return &config.CORS{AllowOrigins: []string{"*"}, AllowHeaders: slsCORSHeaders}
}

// strings reads a list of text, or one text with comma-separated items
// (the framework accepts both).
func (s *slsImport) strings(n *snode, what string) []string {
	v := s.val(n)
	if v == nil {
		return nil
	}
	if v.kind == snScalar {
		if t, ok := s.text(v, what); ok {
			return splitList(t)
		}
		return nil
	}
	var out []string
	for i, item := range s.list(v, what) {
		if t, ok := s.text(item, fmt.Sprintf("%s[%d]", what, i)); ok {
			out = append(out, t)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// corsID tells events with different cors apart, so that they become
// different routes.
func corsID(c *config.CORS) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%q %q %q %q %d %t", c.AllowOrigins, c.AllowMethods, c.AllowHeaders, c.ExposeHeaders, c.MaxAge, c.AllowCredentials)
}

// corsFlow writes c as a drawbridge.yaml flow mapping.
func corsFlow(c *config.CORS) string {
	list := func(l []string) string {
		q := make([]string, len(l))
		for i, s := range l {
			q[i] = quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	f := []string{"allow_origins: " + list(c.AllowOrigins)}
	if len(c.AllowMethods) > 0 {
		f = append(f, "allow_methods: "+list(c.AllowMethods))
	}
	if len(c.AllowHeaders) > 0 {
		f = append(f, "allow_headers: "+list(c.AllowHeaders))
	}
	if len(c.ExposeHeaders) > 0 {
		f = append(f, "expose_headers: "+list(c.ExposeHeaders))
	}
	if c.MaxAge != 0 {
		f = append(f, "max_age: "+strconv.FormatInt(int64(c.MaxAge), 10))
	}
	if c.AllowCredentials {
		f = append(f, "allow_credentials: true")
	}
	return "{" + strings.Join(f, ", ") + "}"
}
