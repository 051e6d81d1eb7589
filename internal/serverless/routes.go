package serverless

import (
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/routepath"
)

// Functions and their http/httpApi events, as routes.

var functionRules = map[string]rule{
	"events": use, "environment": use, "timeout": use,
	"handler": skip(awsOnly), "name": skip(awsOnly), "description": skip(awsOnly), "runtime": skip(awsOnly),
	"memorySize": skip(awsOnly), "vpc": skip(awsOnly), "role": skip(awsOnly), "layers": skip(awsOnly),
	"package": skip(awsOnly), "tags": skip(awsOnly), "reservedConcurrency": skip(awsOnly + "; set throttle.max_concurrent on the route instead"),
	"provisionedConcurrency": skip(awsOnly), "onError": skip(awsOnly), "destinations": skip(awsOnly),
	"image": skip(awsOnly), "architecture": skip(awsOnly), "ephemeralStorage": skip(awsOnly),
	"url": skip(awsOnly), "tracing": skip(awsOnly), "kmsKeyArn": skip(awsOnly), "disableLogs": skip(awsOnly),
	"logRetentionInDays": skip(awsOnly), "maximumRetryAttempts": skip(awsOnly), "maximumEventAge": skip(awsOnly),
	"condition": skip(awsOnly), "dependsOn": skip(awsOnly), "fileSystemConfig": skip(awsOnly),
	"snapStart": skip(awsOnly), "runtimeManagement": skip(awsOnly), "logs": skip(awsOnly),
	"iamRoleStatements": skip(awsOnly), "iamRoleStatementsName": skip(awsOnly), "versionFunction": skip(awsOnly),
}

// routeKey groups the events of one function that differ only in method
// into one route, as drawbridge.yaml would write them.
type routeKey struct {
	fn, path string
	private  bool
	throttle string
	cors     string
	authz    string
}

func (s *slsImport) functions(top, p *snode) {
	fns := s.val(top.at("functions"))
	if fns == nil || fns.kind == snNull {
		s.errorf(top.line, "functions: no functions, so no routes")
		return
	}
	if fns.kind != snMap {
		s.errorf(fns.line, "functions: want a mapping of function names, got %s", describe(fns))
		return
	}
	provEnv := s.val(p.at("environment"))
	s.droppedEnv(provEnv, "provider.environment")
	provTimeout, ptl := p.get("timeout")
	index := map[routeKey]int{}
	for i, name := range fns.keys {
		what := "functions." + name
		fn := s.keys(fns.vals[i], what, false, functionRules)
		if fn == nil {
			continue
		}
		events := s.list(fn.at("events"), what+".events")
		if len(events) == 0 {
			s.warnf(fns.kline[i], "%s: ignored: it has no http or httpApi events", what)
			continue
		}
		fnEnv := s.val(fn.at("environment"))
		s.droppedEnv(fnEnv, what+".environment")
		target, tline, twhat := s.target(fnEnv, provEnv, what)
		timeout, tol, towhat := s.timeout(fn, provTimeout, ptl, what)
		for j, ev := range events {
			ew := fmt.Sprintf("%s.events[%d]", what, j)
			e := s.val(ev)
			if e == nil {
				continue
			}
			if e.kind == snMap && len(e.keys) > 1 {
				if typ, beside := eventType(e); typ != "" {
					// Keys one level too far left: the framework reads only the
					// event's value, so AWS ignores them, yet they were meant
					// (an authorizer, cors). Refused rather than guessed.
					s.errorf(e.kline[0], "%s: %s written beside %s: (the framework reads only what is under %s:, so AWS ignores them): indent them under %s: or remove them", ew, strings.Join(beside, ", "), typ, typ, typ)
					continue
				}
			}
			if e.kind != snMap || len(e.keys) != 1 {
				s.errorf(e.line, "%s: want one event type such as http: or httpApi:", ew)
				continue
			}
			typ := e.keys[0]
			var r *eventRoute
			switch typ {
			case "http":
				r = s.httpEvent(e.vals[0], ew+".http", e.kline[0])
			case "httpApi":
				r = s.httpAPIEvent(e.vals[0], ew+".httpApi", e.kline[0])
			default:
				s.warnf(e.kline[0], "%s: %s event: ignored: %s", ew, typ, awsOnly)
				continue
			}
			if r == nil {
				continue
			}
			if tline <= 0 {
				if tline == 0 {
					s.errorf(e.kline[0], "%s: environment.URL is required: it is the URL drawbridge forwards this function's requests to, in place of running its code; set it on the function, or once as provider.environment.URL for every function", what)
					tline = -1 // once per function
				}
				continue
			}
			k := routeKey{fn: name, path: r.path, private: r.private, throttle: throttleID(r.throttle), cors: corsID(r.cors), authz: authorizerID(r)}
			at, ok := index[k]
			if !ok {
				at = len(s.cfg.Routes)
				index[k] = at
				path := fmt.Sprintf("$.routes[%d]", at)
				s.cfg.Routes = append(s.cfg.Routes, config.Route{
					Path: r.path, Target: target, Timeout: config.Duration(timeout),
					APIKeyRequired: r.private, Throttle: r.throttle, CORS: r.cors,
					Authorizer: r.authorizer, Scopes: r.scopes,
				})
				s.from(path+".authorizer", r.authorizerLine, ew+".authorizer")
				s.from(path, r.line, ew)
				s.from(path+".path", r.pathLine, ew+".path")
				s.from(path+".target", tline, twhat)
				s.from(path+".timeout", tol, towhat)
				s.from(path+".api_key_required", r.privateLine, ew+".private")
				s.from(path+".throttle", r.throttleLine, ew+".throttling")
				s.from(path+".throttle.rate", r.rateLine, r.rateKey)
				s.from(path+".throttle.burst", r.burstLine, r.burstKey)
				s.from(path+".cors", r.corsLine, ew+".cors")
			}
			rt := &s.cfg.Routes[at]
			if r.method == "" {
				rt.Methods = append(rt.Methods, config.AllMethods...)
			} else {
				rt.Methods = append(rt.Methods, r.method)
			}
			s.from(fmt.Sprintf("$.routes[%d].methods[%d]", at, len(rt.Methods)-1), r.methodLine, ew+".method")
		}
	}
	for i := range s.cfg.Routes {
		s.cfg.Routes[i].Methods = dedupe(s.cfg.Routes[i].Methods)
	}
	if s.api == "" {
		s.api = config.DefaultAPI
	}
	s.cfg.API = s.api
	if s.api == config.APIHTTP && s.cfg.ResourcePolicy != "" {
		s.warnf(s.lineOf("$.resource_policy"), "the resource policy is enforced by drawbridge, although AWS HTTP APIs (httpApi events) have none")
	}
	s.capTimeouts()
	if len(s.cfg.Routes) == 0 && len(s.problems) == 0 {
		s.errorf(fns.line, "functions: no http or httpApi events, so no routes")
	}
}

// eventType finds the http or httpApi key of an event mapping with more
// than one key, and the other keys.
func eventType(e *snode) (string, []string) {
	typ := ""
	var beside []string
	for _, k := range e.keys {
		if (k == "http" || k == "httpApi") && typ == "" {
			typ = k
		} else {
			beside = append(beside, k)
		}
	}
	return typ, beside
}

func dedupe(ms []string) []string {
	seen := map[string]bool{}
	out := ms[:0]
	for _, m := range ms {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

func throttleID(t *config.Throttle) string {
	if t == nil {
		return ""
	}
	return fmt.Sprintf("%g/%d/%d", float64(t.Rate), t.Burst, t.MaxConcurrent)
}

// droppedEnv warns for each environment entry but URL: drawbridge runs no
// function code, so nothing reads them, and the target does not get them.
func (s *slsImport) droppedEnv(env *snode, what string) {
	if env == nil || env.kind != snMap {
		return
	}
	for i, k := range env.keys {
		if k != "URL" {
			s.warnf(env.kline[i], "%s.%s: ignored: drawbridge runs no function code, so this variable reaches neither it nor the target at URL; give it to the target yourself", what, k)
		}
	}
}

// target is the function's environment.URL, else the provider's.
func (s *slsImport) target(fnEnv, provEnv *snode, what string) (string, int, string) {
	for _, c := range []struct {
		env  *snode
		what string
	}{{fnEnv, what + ".environment.URL"}, {provEnv, "provider.environment.URL"}} {
		if c.env == nil || c.env.kind != snMap {
			continue
		}
		if u, line := c.env.get("URL"); u != nil {
			if v, ok := s.text(u, c.what); ok {
				return v, line, c.what
			}
			return "", -1, c.what
		}
	}
	return "", 0, ""
}

// timeout is the function's Lambda timeout (seconds; the framework's
// default 6), capped at API Gateway's integration limit.
func (s *slsImport) timeout(fn, prov *snode, pline int, what string) (time.Duration, int, string) {
	n, line := fn.get("timeout")
	w := what + ".timeout"
	if n == nil {
		n, line, w = prov, pline, "provider.timeout"
	}
	if n == nil {
		return serverlessTimeout, 0, ""
	}
	v, ok := s.integer(n, w)
	if !ok {
		return serverlessTimeout, line, w
	}
	if v <= 0 {
		s.errorf(line, "%s: must be a positive number of seconds", w)
		return serverlessTimeout, line, w
	}
	return time.Duration(min(v, 3600)) * time.Second, line, w
}

// capTimeouts applies API Gateway's integration limit (29 s REST, 30 s
// HTTP) to the Lambda timeouts, which may be longer.
func (s *slsImport) capTimeouts() {
	limit := config.MaxTimeout(s.api)
	for i := range s.cfg.Routes {
		r := &s.cfg.Routes[i]
		if time.Duration(r.Timeout) > limit {
			o := s.origins[fmt.Sprintf("$.routes[%d].timeout", i)]
			s.warnf(o.Line, "%s: %s: API Gateway ends requests after %s, so drawbridge uses %s", o.Key, time.Duration(r.Timeout), limit, limit)
			r.Timeout = config.Duration(limit)
		}
	}
}

// eventRoute is one http or httpApi event.
type eventRoute struct {
	path, method string // method "" = any
	private      bool
	throttle     *config.Throttle
	line         int
	pathLine     int
	methodLine   int
	privateLine  int
	throttleLine int
	rateLine     int
	burstLine    int
	rateKey      string
	burstKey     string
	cors         *config.CORS // cors.go
	corsLine     int
	// authorizer names the drawbridge authorizer (authorizers.go).
	authorizer     string
	scopes         []string
	authorizerLine int
}

var httpEventRules = map[string]rule{
	"path": use, "method": use, "private": use, "throttling": use, "authorizer": use,
	"cors":          use,
	"integration":   skip(awsOnly),
	"request":       skip("request validation and mapping are API Gateway features drawbridge does not have"),
	"response":      skip(awsOnly),
	"async":         skip(awsOnly),
	"operationId":   skip(awsOnly),
	"summary":       skip(awsOnly),
	"description":   skip(awsOnly),
	"documentation": skip(awsOnly),
	"connectionId":  skip(awsOnly),
}

var httpAPIEventRules = map[string]rule{
	"path": use, "method": use, "throttling": use, "authorizer": use, "private": use,
}

func (s *slsImport) flavour(api config.API, line int, what string) bool {
	if s.api == "" {
		s.api, s.apiLine = api, line
		return true
	}
	if s.api != api {
		s.errorf(line, "%s: http (REST) and httpApi events are mixed; drawbridge serves one API flavour (the first event, line %d, is %s)", what, s.apiLine, flavourName(s.api))
		return false
	}
	return true
}

func flavourName(api config.API) string {
	if api == config.APIHTTP {
		return "httpApi"
	}
	return "http"
}

func (s *slsImport) httpEvent(n *snode, what string, line int) *eventRoute {
	r, v := s.event(config.APIREST, n, what, line)
	if v == nil {
		return nil
	}
	if v.kind == snScalar {
		// "GET forward"
		method, path, ok := strings.Cut(strings.TrimSpace(v.str), " ")
		if !ok {
			s.errorf(v.line, "%s: want \"METHOD path\" or a mapping with path and method", what)
			return nil
		}
		return s.finishEvent(r, method, strings.TrimSpace(path), what, v.line)
	}
	m := s.eventKeys(v, what, httpEventRules)
	if m == nil || !s.eventAuthorizer(m, r, what, config.APIREST) {
		return nil
	}
	if p, l := m.get("private"); p != nil {
		if b, ok := s.boolean(p, what+".private"); ok {
			r.private, r.privateLine = b, l
		}
	}
	s.endpointThrottle(m, r, what)
	s.eventCORS(m, r, what)
	return s.fields(m, r, what)
}

func (s *slsImport) httpAPIEvent(n *snode, what string, line int) *eventRoute {
	r, v := s.event(config.APIHTTP, n, what, line)
	if v == nil {
		return nil
	}
	if v.kind == snScalar {
		str := strings.TrimSpace(v.str)
		if str == "*" {
			return s.finishEvent(r, "*", "/{proxy+}", what, v.line)
		}
		method, path, ok := strings.Cut(str, " ")
		if !ok {
			s.errorf(v.line, "%s: want \"METHOD /path\", \"*\" or a mapping with path and method", what)
			return nil
		}
		return s.finishEvent(r, method, strings.TrimSpace(path), what, v.line)
	}
	m := s.eventKeys(v, what, httpAPIEventRules)
	if m == nil || !s.eventAuthorizer(m, r, what, config.APIHTTP) {
		return nil
	}
	if _, l := m.get("private"); l != 0 {
		s.errorf(l, "%s.private: HTTP APIs have no API keys; use an http event for a private route", what)
		return nil
	}
	s.endpointThrottle(m, r, what)
	return s.fields(m, r, what)
}

// event starts reading an event of API flavour api; v is nil when it
// cannot be read.
func (s *slsImport) event(api config.API, n *snode, what string, line int) (*eventRoute, *snode) {
	if !s.flavour(api, line, what) {
		return nil, nil
	}
	return &eventRoute{line: line, pathLine: line, methodLine: line}, s.val(n)
}

// eventKeys checks an event mapping's keys.
func (s *slsImport) eventKeys(v *snode, what string, rules map[string]rule) *snode {
	return s.keys(v, what, true, rules)
}

func (s *slsImport) fields(m *snode, r *eventRoute, what string) *eventRoute {
	pn, pl := m.get("path")
	if pn == nil {
		s.errorf(m.line, "%s: path is required", what)
		return nil
	}
	path, ok := s.text(pn, what+".path")
	if !ok {
		return nil
	}
	r.pathLine = pl
	method := "*"
	if mn, ml := m.get("method"); mn != nil {
		if method, ok = s.text(mn, what+".method"); !ok {
			return nil
		}
		r.methodLine = ml
	} else if s.api == config.APIREST {
		s.errorf(m.line, "%s: method is required", what)
		return nil
	}
	return s.finishEvent(r, method, path, what, pl)
}

// finishEvent normalises the path ("forward" → "/forward") and the method
// ("any", "*" → all). A path whose only parameter is a last {name+}
// becomes the prefix route "/base/*"; one with {id} parameters stays a
// template, which drawbridge matches as API Gateway does.
func (s *slsImport) finishEvent(r *eventRoute, method, path, what string, line int) *eventRoute {
	m := strings.ToUpper(strings.TrimSpace(method))
	if m == "ANY" || m == "*" {
		m = ""
	}
	r.method = m
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		segs = nil
	}
	prefix, params := false, false
	for i, seg := range segs {
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		_, greedy, ok := routepath.Param(seg)
		switch {
		case !ok:
			s.errorf(line, "%s.path %q: segment %q: a path parameter is a whole segment such as {id}, or a last {proxy+}", what, path, seg)
			return nil
		case greedy && i != len(segs)-1:
			s.errorf(line, "%s.path %q: %s must be the last segment", what, path, seg)
			return nil
		case greedy && !params:
			prefix = true
			segs = segs[:i]
		default:
			params = true
		}
	}
	p := "/" + strings.Join(segs, "/")
	if prefix {
		p = strings.TrimSuffix(p, "/") + "/*"
	}
	r.path = p
	return r
}

var endpointThrottleRules = map[string]rule{"maxRequestsPerSecond": use, "maxConcurrentRequests": use, "disabled": use}

// endpointThrottle reads an event's throttling (the plugin's per-endpoint
// settings): fields left out come from custom.apiGatewayThrottling, then
// the plugin defaults; disabled: true lifts the endpoint's limit to the
// account's (the plugin writes -1, "no method limit").
func (s *slsImport) endpointThrottle(m *snode, r *eventRoute, what string) {
	n, line := m.get("throttling")
	if n == nil {
		return
	}
	w := what + ".throttling"
	tm := s.keys(n, w, true, endpointThrottleRules)
	if tm == nil {
		return
	}
	if !s.plugins[pluginThrottling] {
		s.warnf(line, "%s is applied although plugins does not list %s", w, pluginThrottling)
	}
	r.throttleLine = line
	if d := tm.at("disabled"); d != nil {
		if b, ok := s.boolean(d, w+".disabled"); ok && b {
			r.throttle = &config.Throttle{Rate: config.DefaultAccountRate, Burst: config.DefaultAccountBurst}
			return
		}
	}
	t := &config.Throttle{Rate: pluginRate, Burst: pluginBurst}
	if g := s.cfg.Throttle; g != nil { // custom.apiGatewayThrottling
		t.Rate, t.Burst = g.Rate, g.Burst
	}
	r.rateLine, r.burstLine = s.throttleFields(tm, w, t)
	r.rateKey, r.burstKey = w+".maxRequestsPerSecond", w+".maxConcurrentRequests"
	r.throttle = t
}
