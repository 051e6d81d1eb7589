package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/drawbridge/drawbridge/internal/apikey"
	"github.com/drawbridge/drawbridge/internal/lambda"
)

// TestLambdaCORS: in Lambda mode, a browser's preflight (an API Gateway
// REST proxy event) on a cors route that needs a key, under a resource
// policy, gets the gateway's CORS answer; the real request then fails
// without its key with the CORS headers on the 403, and passes with it.
func TestLambdaCORS(t *testing.T) {
	const key = "corsLambdaKey0123456789"
	const origin = "https://app.example.com"
	path := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, path, `state: {driver: memory}
resource_policy:
  Statement: [{Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*"}]
usage_plans: {p: {}}
api_keys: [{name: web, plan: p, sha256: `+apikey.FormatDigest(apikey.Hash(key))+`}]
cors: {allow_origins: ["`+origin+`"], allow_headers: [Content-Type, X-Api-Key]}
routes: [{path: /items, methods: [GET, POST], target: "`+okBackend(t)+`/items", api_key_required: true}]
`)
	allowLoopback(t)
	fn, err := newLambdaFunction(envMap(map[string]string{EnvConfig: path}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer fn.state.close()
	defer fn.gateway.Close()
	a := lambda.New(fn.gateway, fn.opts)

	type answer struct {
		StatusCode        int                 `json:"statusCode"`
		MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
		Body              string              `json:"body"`
	}
	invoke := func(method string, hdr map[string][]string) answer {
		t.Helper()
		ev, err := json.Marshal(map[string]any{
			"httpMethod": method, "path": "/items", "multiValueHeaders": hdr,
			"requestContext": map[string]any{"stage": "prod", "requestId": "r1", "identity": map[string]any{"sourceIp": "198.51.100.7"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := a.Invoke(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		var r answer
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		return r
	}
	one := func(r answer, k string) string {
		if v := r.MultiValueHeaders[k]; len(v) == 1 {
			return v[0]
		}
		return ""
	}

	pre := invoke("OPTIONS", map[string][]string{"Origin": {origin}, "Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"x-api-key"}})
	if pre.StatusCode != 204 || one(pre, "Access-Control-Allow-Origin") != origin || one(pre, "Access-Control-Allow-Methods") != "GET,POST" ||
		one(pre, "Access-Control-Allow-Headers") != "Content-Type,X-Api-Key" || pre.Body != "" {
		t.Errorf("preflight: %+v", pre)
	}
	no := invoke("POST", map[string][]string{"Origin": {origin}})
	if no.StatusCode != 403 || no.Body != `{"message":"Forbidden"}` || one(no, "Access-Control-Allow-Origin") != origin || one(no, "Vary") != "Origin" {
		t.Errorf("without a key: %+v", no)
	}
	yes := invoke("GET", map[string][]string{"Origin": {origin}, "X-Api-Key": {key}})
	if yes.StatusCode != 200 || yes.Body != "ok" || one(yes, "Access-Control-Allow-Origin") != origin {
		t.Errorf("with the key: %+v", yes)
	}
}
