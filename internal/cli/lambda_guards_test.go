//go:build linux

// The guards work the same inside the Lambda function as behind serve
// (docs/lambda.md).

package cli

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
)

func TestLambdaGuards(t *testing.T) {
	be := newBackend(t)
	cfg := tempConfig(t, `
stage: prod
resource_policy:
  Version: "2012-10-17"
  Statement:
    - Effect: Deny
      Principal: "*"
      Action: execute-api:Invoke
      Resource: execute-api:/*/*/forward
      Condition: {NotIpAddress: {"aws:SourceIp": ["192.30.252.0/22", "185.199.108.0/22", "140.82.112.0/20"]}}
    - Effect: Allow
      Principal: "*"
      Action: execute-api:Invoke
      Resource: execute-api:/*
usage_plans:
  global-plan:
    quota: {limit: 1000, period: DAY}
    throttle: {rate: 50, burst: 100}
api_keys:
  - name: secret
    plan: global-plan
    value_env: DRAWBRIDGE_KEY_SECRET
routes:
  - path: /forward
    methods: [POST]
    target: `+be.URL+`/forward
    api_key_required: true
  - path: /hooks/github
    methods: [POST]
    target: `+be.URL+`/gh
    verify: {provider: github, secret_env: GITHUB_WEBHOOK_SECRET}
`)
	const key, secret = "k0123456789abcdef0123456789abcdef", "hook-secret"
	fn := startFunction(t, EnvConfig+"="+cfg, "DRAWBRIDGE_KEY_SECRET="+key, "GITHUB_WEBHOOK_SECRET="+secret)

	// v1 is the REST sample on /forward from sourceIp ip; its
	// requestContext.identity.apiKey ("theApiKey") must count for nothing.
	v1 := func(ip, apiKey string) []byte {
		return sample(t, "apigw-request.json", func(m map[string]any) {
			m["path"] = "/forward"
			sub(sub(m, "requestContext"), "identity")["sourceIp"] = ip
			if apiKey != "" {
				sub(m, "headers")["x-api-key"] = apiKey
				sub(m, "multiValueHeaders")["x-api-key"] = []string{apiKey}
			}
		})
	}
	body := `{"zen":"Keep it logically awesome."}`
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	good := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	// v2 is the HTTP API sample as a GitHub delivery to /hooks/github.
	v2 := func(signature string) []byte {
		return sample(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			setPath("/hooks/github")(m)
			sub(sub(m, "requestContext"), "http")["method"] = "POST"
			m["body"] = body
			h := sub(m, "headers")
			h["content-type"], h["x-github-event"], h["content-length"] = "application/json", "push", "36"
			if signature != "" {
				h["x-hub-signature-256"] = signature
			}
		})
	}
	tests := []struct {
		name    string
		event   []byte
		status  int
		body    string // "" when the backend answers
		forward string // URI the backend must see; "" when it must not be reached
	}{
		{"non-GitHub sourceIp: resource policy", v1("192.168.196.186", key), http.StatusForbidden,
			`{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:********9012:drawbridge/prod/POST/forward with an explicit deny"}`, ""},
		{"no key (API Gateway's apiKey is not one)", v1("192.30.252.10", ""), http.StatusForbidden, `{"message":"Forbidden"}`, ""},
		{"wrong key", v1("192.30.252.10", "k-wrong"), http.StatusForbidden, `{"message":"Forbidden"}`, ""},
		{"allowed IP with the key", v1("192.30.252.10", key), http.StatusCreated, "", "/forward?name=me"},
		{"GitHub-signed v2 event", v2(good), http.StatusCreated, "", "/gh"},
		{"wrongly signed", v2("sha256=" + hex.EncodeToString(make([]byte, 32))), http.StatusUnauthorized, `{"message":"Unauthorized"}`, ""},
		{"unsigned", v2(""), http.StatusUnauthorized, `{"message":"Unauthorized"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fn.invoke(t, tt.event)
			if r.StatusCode != tt.status || (tt.body != "" && r.Body != tt.body) {
				t.Fatalf("got %d %s, want %d %s", r.StatusCode, r.Body, tt.status, tt.body)
			}
			if tt.forward == "" {
				be.none(t)
				return
			}
			h := be.next(t)
			if h.URI != tt.forward || h.Header.Get("X-Api-Key") != "" {
				t.Errorf("backend saw %s with x-api-key %q", h.URI, h.Header.Get("X-Api-Key"))
			}
		})
	}
	fn.oneEnvironment(t)
}
