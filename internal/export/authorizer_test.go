package export

import (
	"reflect"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/serverless"
)

// authz is an HTTP API with a JWT authorizer (one route with scopes) and
// a request authorizer, for the SAM golden, cfn-lint and the round trip.
const authz = `api: http
authorizers:
  corp:
    type: jwt
    issuer: https://login.example.com/
    audience: [drawbridge-api, cli]
  checker:
    type: request
    url: http://10.0.0.30:8080/authorize
    identity_sources: ["$request.header.X-Token"]
routes:
  - path: /api/*
    target: http://10.0.0.10:8080/
    authorizer: corp
    scopes: [read:things]
  - path: /me
    methods: [GET]
    target: http://10.0.0.10:8080/me
    authorizer: corp
  - path: /checked
    methods: [POST]
    target: http://10.0.0.10:8080/c
    authorizer: checker
`

func loadAuthz(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse("authz.yaml", []byte(authz), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSAMAuthorizers: export sam writes the JWT authorizer as the HTTP
// API's own (issuer, audience, identity source) and names it, with the
// scopes, on each of its routes' events; the request authorizer is a note.
func TestSAMAuthorizers(t *testing.T) {
	doc, out := samDoc(t, loadAuthz(t))
	api := doc["Resources"].(map[string]any)["Api"].(map[string]any)["Properties"].(map[string]any)
	want := map[string]any{"Authorizers": map[string]any{"corp": map[string]any{
		"IdentitySource":   "$request.header.Authorization",
		"JwtConfiguration": map[string]any{"issuer": "https://login.example.com/", "audience": []any{"drawbridge-api", "cli"}},
	}}}
	if !reflect.DeepEqual(api["Auth"], want) {
		t.Fatalf("Api Auth: %v\n%s", api["Auth"], out)
	}
	s := string(out)
	for _, frag := range []string{"Authorizer: corp\n", "AuthorizationScopes:\n", "- read:things", "API Gateway does not call a request authorizer"} {
		if !strings.Contains(s, frag) {
			t.Errorf("SAM output lacks %q:\n%s", frag, s)
		}
	}
	if strings.Count(s, "Authorizer: corp") != 2 {
		t.Errorf("want corp on the two events of its routes:\n%s", s)
	}
}

// TestServerlessAuthorizerRoundTrip: export serverless writes the JWT
// authorizer under provider.httpApi.authorizers, and import reads it back
// into the same authorizer and route settings.
func TestServerlessAuthorizerRoundTrip(t *testing.T) {
	cfg := loadAuthz(t)
	delete(cfg.Authorizers, "checker") // a request authorizer's URL lives in custom.drawbridge only
	cfg.Routes = cfg.Routes[:2]
	out, err := Serverless(cfg)
	if err != nil {
		t.Fatal(err)
	}
	im, err := serverless.Import("exported.yml", out, testEnv, serverless.Options{})
	if err != nil {
		t.Fatalf("exported serverless.yml does not import: %v\n%s", err, out)
	}
	got, want := im.Config.Authorizers["corp"], cfg.Authorizers["corp"]
	if got == nil || got.Issuer != want.Issuer || !reflect.DeepEqual(got.Audience, want.Audience) ||
		!reflect.DeepEqual(got.IdentitySources, want.IdentitySources) {
		t.Fatalf("authorizer back: %+v, want %+v\n%s", got, want, out)
	}
	for i, r := range im.Config.Routes {
		if r.Authorizer != "corp" || !reflect.DeepEqual(r.Scopes, cfg.Routes[i].Scopes) {
			t.Errorf("route %s: authorizer %q scopes %v, want corp %v", r.Path, r.Authorizer, r.Scopes, cfg.Routes[i].Scopes)
		}
	}
}
