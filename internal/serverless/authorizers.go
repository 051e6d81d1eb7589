package serverless

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

// Authorizers (docs/authorizers.md#serverless). An HTTP API JWT
// authorizer (provider.httpApi.authorizers) maps to a jwt authorizer as it
// is. A Lambda authorizer (an http event's authorizer naming a function,
// or a provider.httpApi authorizer of type request) becomes a request
// authorizer, whose URL only the user knows: custom.drawbridge.authorizers
// names it. A Cognito user pool or an authorizer made elsewhere
// (authorizerId) needs a jwt or request authorizer written there too. IAM
// authorization is refused: drawbridge does not check SigV4.

// slsAuthorizer is an authorizer an event refers to.
type slsAuthorizer struct {
	kind     string // jwt | lambda | cognito | external
	cfg      config.Authorizer
	line     int    // where it is defined (or first referred to)
	what     string // the serverless.yml key, for messages
	ttlSet   bool   // resultTtlInSeconds given
	function string // lambda: the function or ARN that implements it
}

var httpAPIAuthorizerRules = map[string]rule{
	"type": use, "identitySource": use, "issuerUrl": use, "audience": use, "functionName": use, "functionArn": use,
	"resultTtlInSeconds": use, "enableSimpleResponses": use, "payloadVersion": use, "name": use,
	"managedExternally": skip(awsOnly),
}

var eventAuthorizerRules = map[string]rule{
	"name": use, "scopes": use, "type": use, "arn": use, "identitySource": use, "resultTtlInSeconds": use,
	"authorizerId": use, "id": use, "managedExternally": skip(awsOnly),
	"identityValidationExpression": skip("drawbridge sends every token to the authorizer; its own check decides"),
	"claims":                       skip("claims reach the target through a route's authorizer_headers (docs/authorizers.md)"),
}

// httpAPIAuthorizers reads provider.httpApi.authorizers.
func (s *slsImport) httpAPIAuthorizers(p *snode) {
	h, _ := p.get("httpApi")
	if h == nil {
		return
	}
	hm := s.val(h)
	if hm == nil || hm.kind != snMap {
		return
	}
	n, _ := hm.get("authorizers")
	if n == nil {
		return
	}
	as := s.val(n)
	if as == nil || as.kind == snNull {
		return
	}
	if as.kind != snMap {
		s.errorf(as.line, "provider.httpApi.authorizers: want a mapping of authorizer names, got %s", describe(as))
		return
	}
	for i, name := range as.keys {
		what := "provider.httpApi.authorizers." + name
		m := s.keys(as.vals[i], what, true, httpAPIAuthorizerRules)
		if m == nil {
			continue
		}
		a := &slsAuthorizer{kind: "jwt", line: as.kline[i], what: what}
		if t := m.at("type"); t != nil {
			if v, ok := s.text(t, what+".type"); ok {
				switch strings.ToLower(v) {
				case "jwt":
				case "request":
					a.kind = "lambda"
				default:
					s.errorf(t.line, "%s.type: %q: want jwt or request", what, v)
					continue
				}
			}
		}
		if is := m.at("identitySource"); is != nil {
			var src []string
			if v := s.val(is); v != nil && v.kind == snSeq {
				src = s.strings(is, what+".identitySource")
			} else if v, ok := s.text(is, what+".identitySource"); ok {
				src = splitList(v)
			}
			a.cfg.IdentitySources = src
		}
		if a.kind == "jwt" {
			a.cfg.Type = config.AuthorizerJWT
			if u := m.at("issuerUrl"); u != nil {
				a.cfg.Issuer, _ = s.text(u, what+".issuerUrl")
			}
			if au := m.at("audience"); au != nil {
				if v := s.val(au); v != nil && v.kind == snScalar {
					t, _ := s.text(au, what+".audience")
					a.cfg.Audience = []string{t}
				} else {
					a.cfg.Audience = s.strings(au, what+".audience")
				}
			}
		} else {
			a.function = "a function"
			for _, k := range []string{"functionName", "functionArn"} {
				if f := m.at(k); f != nil {
					a.function, _ = s.text(f, what+"."+k)
				}
			}
			s.authorizerTTL(m, a, what)
		}
		if s.authz == nil {
			s.authz = map[string]*slsAuthorizer{}
		}
		s.authz[name] = a
	}
}

func (s *slsImport) authorizerTTL(m *snode, a *slsAuthorizer, what string) {
	if t := m.at("resultTtlInSeconds"); t != nil {
		if n, ok := s.integer(t, what+".resultTtlInSeconds"); ok {
			ttl := config.TTL(time.Duration(n) * time.Second)
			a.cfg.TTL, a.ttlSet = &ttl, true
		}
	}
}

// eventAuthorizer reads an event's authorizer into r: its name (the
// authorizers: key of the drawbridge config) and scopes.
func (s *slsImport) eventAuthorizer(m *snode, r *eventRoute, what string, api config.API) bool {
	n, line := m.get("authorizer")
	if n == nil {
		return true
	}
	w := what + ".authorizer"
	v := s.val(n)
	if v == nil {
		return false
	}
	iam := func() bool {
		s.errorf(line, "%s: IAM authorization (SigV4) is not supported: drawbridge would let through requests IAM rejects; guard the route with an API key, a resource policy or a jwt or request authorizer (docs/authorizers.md), then remove the authorizer", w)
		return false
	}
	var name string
	a := &slsAuthorizer{line: line, what: w}
	if v.kind == snScalar {
		name, _ = s.text(v, w)
		if strings.EqualFold(name, "aws_iam") {
			return iam()
		}
		if api == config.APIREST {
			a.kind, a.function = "lambda", name
			name = functionName(name)
		}
	} else {
		am := s.keys(v, w, true, eventAuthorizerRules)
		if am == nil {
			return false
		}
		typ := ""
		if t := am.at("type"); t != nil {
			typ, _ = s.text(t, w+".type")
		}
		if nn := am.at("name"); nn != nil {
			name, _ = s.text(nn, w+".name")
		}
		arn := ""
		if an := am.at("arn"); an != nil {
			if av := s.val(an); av != nil && av.kind == snScalar && av.tag == "" {
				arn, _ = s.text(an, w+".arn")
			} else {
				arn = "(a value that cannot be read here)"
			}
		}
		switch strings.ToUpper(typ) {
		case "AWS_IAM":
			return iam()
		case "COGNITO_USER_POOLS":
			a.kind = "cognito"
		}
		id := ""
		for _, k := range []string{"authorizerId", "id"} {
			if in := am.at(k); in != nil {
				if iv := s.val(in); iv != nil && iv.kind == snScalar && iv.tag == "" {
					id, _ = s.text(in, w+"."+k)
				} else {
					id = "(a value that cannot be read here)"
				}
			}
		}
		switch {
		case a.kind == "cognito":
		case id != "":
			a.kind = "external"
			if name == "" && !strings.HasPrefix(id, "(") {
				name = id
			}
		case api == config.APIREST:
			a.kind, a.function = "lambda", name
			if arn != "" {
				a.function = arn
				if name == "" {
					name = functionName(arn)
				}
			}
			if is := am.at("identitySource"); is != nil {
				if t, ok := s.text(is, w+".identitySource"); ok {
					a.cfg.IdentitySources = splitList(t)
				}
			}
			s.authorizerTTL(am, a, w)
		}
		if name == "" {
			s.errorf(line, "%s: an authorizer without a name drawbridge can use: add authorizer.name, then write that authorizer in custom.drawbridge.authorizers.NAME as a jwt authorizer (issuer, audience) or a request authorizer (url) (docs/authorizers.md#serverless)", w)
			return false
		}
		if sc := am.at("scopes"); sc != nil {
			r.scopes = s.strings(sc, w+".scopes")
		}
	}
	if name == "" {
		s.errorf(line, "%s: want an authorizer name", w)
		return false
	}
	r.authorizer, r.authorizerLine = name, line
	if s.authzUsed == nil {
		s.authzUsed = map[string]bool{}
	}
	s.authzUsed[name] = true
	if api == config.APIHTTP && a.kind == "" {
		if s.authz[name] == nil {
			s.errorf(line, "%s: %q is not in provider.httpApi.authorizers", w, name)
			return false
		}
		return true
	}
	if s.authz == nil {
		s.authz = map[string]*slsAuthorizer{}
	}
	if old := s.authz[name]; old == nil {
		s.authz[name] = a
	} else if old.kind == "lambda" && a.kind == "lambda" && !old.ttlSet && a.ttlSet {
		old.cfg.TTL, old.ttlSet = a.cfg.TTL, true
	}
	return true
}

// functionName is the function an authorizer ARN or name refers to.
func functionName(s string) string {
	if i := strings.LastIndex(s, ":function:"); i >= 0 {
		s = s[i+len(":function:"):]
		if i := strings.IndexByte(s, ':'); i >= 0 {
			s = s[:i] // a version or alias
		}
		return s
	}
	if strings.HasPrefix(s, "arn:") {
		s = s[strings.LastIndexAny(s, ":/")+1:]
	}
	return s
}

// resolveAuthorizers builds the config's authorizers from what the events
// refer to, with custom.drawbridge.authorizers (custom) completing or
// replacing what serverless.yml cannot say.
func (s *slsImport) resolveAuthorizers(custom map[string]*config.Authorizer) {
	// Every authorizer an event names, also of events that made no route
	// (a missing URL): one round reports all that needs writing.
	names := make([]string, 0, len(s.authzUsed))
	for n := range s.authzUsed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		a := s.authz[name]
		if a == nil {
			continue // reported where the event names it
		}
		c := custom[name]
		key := "custom.drawbridge.authorizers." + name
		path := "$.authorizers." + name
		if c != nil && c.Type == config.AuthorizerJWT || a.kind == "jwt" && c != nil {
			if s.cfg.Authorizers == nil {
				s.cfg.Authorizers = map[string]*config.Authorizer{}
			}
			s.cfg.Authorizers[name] = c
			continue
		}
		switch a.kind {
		case "jwt":
			ac := a.cfg
			s.addAuthorizer(name, &ac, path, a.line, a.what)
		case "lambda":
			if c == nil || c.URL == "" {
				s.errorf(a.line, "%s: %q is a Lambda authorizer (function %s), which drawbridge asks over HTTP: set %s.url to the URL of a service that answers API Gateway's authorizer event (docs/authorizers.md#serverless), for example\n  custom:\n    drawbridge:\n      authorizers:\n        %s: {url: http://10.0.0.30:8080/authorize}", a.what, name, a.function, key, name)
				continue
			}
			ac := *c
			if ac.Type == "" {
				ac.Type = config.AuthorizerRequest
			}
			if len(ac.IdentitySources) == 0 {
				ac.IdentitySources = a.cfg.IdentitySources
				if len(ac.IdentitySources) == 0 {
					// The framework's default for a Lambda authorizer.
					ac.IdentitySources = []string{"method.request.header.Authorization"}
					if s.api == config.APIHTTP {
						ac.IdentitySources = []string{config.DefaultIdentitySource}
					}
				}
			}
			if ac.TTL == nil && a.ttlSet {
				ac.TTL = a.cfg.TTL
			}
			s.addAuthorizer(name, &ac, path, a.line, a.what)
		case "cognito":
			if c == nil {
				s.errorf(a.line, "%s: %q is a Cognito user pool authorizer: write it as a jwt authorizer in %s, for example\n  custom:\n    drawbridge:\n      authorizers:\n        %s: {type: jwt, issuer: https://cognito-idp.REGION.amazonaws.com/USER_POOL_ID, audience: [APP_CLIENT_ID]}", a.what, name, key, name)
				continue
			}
			s.addAuthorizer(name, c, path, a.line, a.what)
		case "external":
			if c == nil {
				s.errorf(a.line, "%s: %q is an authorizer made outside this file (authorizerId), which drawbridge cannot read: write it in %s as a jwt authorizer (issuer, audience) or a request authorizer (url) (docs/authorizers.md#serverless)", a.what, name, key)
				continue
			}
			s.addAuthorizer(name, c, path, a.line, a.what)
		}
	}
}

func (s *slsImport) addAuthorizer(name string, a *config.Authorizer, path string, line int, what string) {
	if s.cfg.Authorizers == nil {
		s.cfg.Authorizers = map[string]*config.Authorizer{}
	}
	s.cfg.Authorizers[name] = a
	if _, ok := s.origins[path]; !ok {
		s.from(path, line, what)
	}
}

// authorizerID is the route grouping part of an event's authorizer.
func authorizerID(r *eventRoute) string {
	if r.authorizer == "" {
		return ""
	}
	return fmt.Sprintf("%s %q", r.authorizer, r.scopes)
}
