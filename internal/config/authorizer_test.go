package config

import (
	"strings"
	"testing"
	"time"
)

func TestAuthorizerConfig(t *testing.T) {
	good := `
authorizers:
  corp: {type: jwt, issuer: "https://login.example/", audience: [api]}
  chk:
    type: request
    url: http://10.0.0.30:8080/authorize
    identity_sources: ["$request.header.Authorization", "method.request.querystring.t", "$context.identity.sourceIp"]
  nocache: {type: request, url: "http://10.0.0.30/", ttl: 0}
routes:
  - {path: /a, target: "http://10.0.0.1/", authorizer: corp, scopes: [read], authorizer_headers: {x-user: sub}}
  - {path: /b, target: "http://10.0.0.1/", authorizer: chk}
`
	cfg, err := Parse("a.yaml", []byte(good), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("routes with authorizers are not open: %v", cfg.Warnings)
	}
	corp, chk, nc := cfg.Authorizers["corp"], cfg.Authorizers["chk"], cfg.Authorizers["nocache"]
	if corp.IdentitySources[0] != DefaultIdentitySource || corp.Line != 3 {
		t.Errorf("corp defaults: %+v", corp)
	}
	if chk.CacheTTL() != DefaultAuthorizerTTL || time.Duration(chk.Timeout) != DefaultAuthorizerTimeout || chk.OnError != 500 {
		t.Errorf("chk defaults: %+v", chk)
	}
	if nc.CacheTTL() != 0 {
		t.Errorf("ttl: 0 is %s", nc.CacheTTL())
	}

	bad := []struct{ yaml, want string }{
		{"authorizers:\n  x: {type: oauth}\n", "a.yaml:2: authorizers.x.type: want jwt or request"},
		{"authorizers:\n  x: {type: jwt, issuer: \"https://i/\"}\n", "a.yaml:2: authorizers.x.audience: list at least one audience"},
		{"authorizers:\n  x: {type: jwt, issuer: \"ftp://i/\", audience: [a]}\n", "authorizers.x.issuer \"ftp://i/\": scheme must be http or https"},
		{"authorizers:\n  x: {type: jwt, issuer: \"https://i/\", audience: [a], url: \"http://u/\"}\n", "authorizers.x.url: only for type: request"},
		{"authorizers:\n  x: {type: jwt, issuer: \"https://i/\", audience: [a], leeway: 1h}\n", "authorizers.x.leeway: at most 5m0s"},
		{"authorizers:\n  x: {type: jwt, issuer: \"https://i/\", audience: [a], identity_sources: [\"$context.path\"]}\n", "want $request.header.NAME or $request.querystring.NAME"},
		{"authorizers:\n  x: {type: request, url: \"http://u/\"}\n", "authorizers.x: a cached result needs identity_sources"},
		{"authorizers:\n  x: {type: request, url: \"http://u/\", ttl: 0, on_error: 502}\n", "authorizers.x.on_error: want 500"},
		{"authorizers:\n  x: {type: request, url: \"http://u/\", ttl: 2h, identity_sources: [\"$request.header.A\"]}\n", "authorizers.x.ttl: at most 1h0m0s"},
		{"authorizers:\n  x: {type: request, url: \"http://u/\", ttl: 5}\n", "want a duration such as 300s, or 0 for no cache"},
		{"authorizers:\n  x: {type: request, url: \"http://u/\", ttl: 0, identity_sources: [\"$request.body\"]}\n", "authorizers.x.identity_sources: \"$request.body\""},
		{"authorizers:\n  x: {type: request, url: \"http://u/\", ttl: 0, issuer: \"https://i/\"}\n", "authorizers.x.issuer: only for type: jwt"},
		{"routes:\n  - {path: /a, target: \"http://10.0.0.1/\", authorizer: nope}\n", "a.yaml:2: routes[0].authorizer: \"nope\" is not in authorizers:"},
		{"routes:\n  - {path: /a, target: \"http://10.0.0.1/\", scopes: [a]}\n", "routes[0]: scopes and authorizer_headers need an authorizer"},
		{"authorizers:\n  x: {type: request, url: \"http://u/\", ttl: 0}\nroutes:\n  - {path: /a, target: \"http://10.0.0.1/\", authorizer: x, scopes: [a]}\n", "routes[0].scopes: only a jwt authorizer checks scopes"},
		{"authorizers:\n  x: {type: request, url: \"http://u/\", ttl: 0}\nroutes:\n  - {path: /a, target: \"http://10.0.0.1/\", authorizer: x, authorizer_headers: {\"X Bad\": k}}\n", "is not a header name"},
	}
	for _, b := range bad {
		y := b.yaml
		if !strings.Contains(y, "routes:") {
			y += "routes:\n  - {path: /a, target: \"http://10.0.0.1/\"}\n"
		}
		_, err := Parse("a.yaml", []byte(y), nil)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: got %v, want %q", b.yaml, err, b.want)
		}
	}
}
