package authorizer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
)

const arn = "arn:aws:execute-api:us-east-1:123456789012:drawbridge/prod/GET/items/42"

func TestDecodeAnswer(t *testing.T) {
	cases := []struct {
		name, body string
		want       Outcome
		ctx        map[string]string
		bad        bool
	}{
		{"simple true", `{"isAuthorized": true, "context": {"user": "a", "n": 1.5, "b": false, "z": null}}`, Allow, map[string]string{"user": "a", "n": "1.5", "b": "false"}, false},
		{"simple false", `{"isAuthorized": false}`, Forbidden, nil, false},
		{"policy allow", `{"principalId":"p","policyDocument":{"Statement":[{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:drawbridge/prod/GET/items/*"}]}}`, Allow, nil, false},
		{"policy one statement object", `{"principalId":"p","policyDocument":{"Statement":{"Effect":"Allow","Action":["execute-api:*"],"Resource":["*"]}}}`, Allow, nil, false},
		{"policy other method", `{"principalId":"p","policyDocument":{"Statement":[{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:drawbridge/prod/POST/*"}]}}`, Forbidden, nil, false},
		{"policy deny wins", `{"principalId":"p","policyDocument":{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"execute-api:Invoke","Resource":"` + arn + `"}]}}`, Forbidden, nil, false},
		{"policy other action", `{"principalId":"p","policyDocument":{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}}`, Forbidden, nil, false},
		{"neither form", `{"principalId":"p"}`, 0, nil, true},
		{"not json", `Unauthorized`, 0, nil, true},
		{"context object", `{"isAuthorized": true, "context": {"o": {"a": 1}}}`, 0, nil, true},
		{"bad effect", `{"policyDocument":{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}}`, 0, nil, true},
	}
	for _, c := range cases {
		a, err := DecodeAnswer([]byte(c.body))
		if c.bad {
			if err == nil {
				t.Errorf("%s: decoded", c.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if d := a.decide(arn); d.Outcome != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, d.Outcome, d.Reason, c.want)
		}
		for k, v := range c.ctx {
			if a.context[k] != v {
				t.Errorf("%s: context %s = %q, want %q", c.name, k, a.context[k], v)
			}
		}
		if c.ctx != nil && len(a.context) != len(c.ctx) {
			t.Errorf("%s: context %v", c.name, a.context)
		}
	}
}

func TestWildcard(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*c", "abbbc", true}, {"a*c", "abbb", false}, {"a?c", "abc", true},
		{"a?c", "ac", false}, {"*/GET/*", "x/GET/y/z", true}, {"**", "x", true}, {"", "x", false},
	} {
		if got := wildcard(c.p, c.s); got != c.want {
			t.Errorf("wildcard(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

// TestRESTEvent: with api: rest the authorizer receives REST's REQUEST
// event (methodArn, multiValueHeaders, requestContext.identity).
func TestRESTEvent(t *testing.T) {
	var ev map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&ev)
		w.Write([]byte(`{"principalId":"p","policyDocument":{"Statement":[{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"` + arn + `"}]},"context":{"k":"v"}}`))
	}))
	defer srv.Close()
	ttl := config.TTL(0)
	a, err := NewRequest(&config.Authorizer{Type: config.AuthorizerRequest, URL: srv.URL, Timeout: config.Duration(1e9), TTL: &ttl,
		IdentitySources: []string{"method.request.header.X-Token", "context.identity.sourceIp"}}, newClient(nil, 1e9),
		Deps{API: config.APIREST, Stage: "prod", Account: "123456789012", APIID: "drawbridge"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/items/42?a=1&a=2", nil)
	r.Header.Add("X-Token", "t")
	q := &Request{R: r, Client: netip.MustParseAddr("192.0.2.7"), Route: NewRoute(&config.Route{Path: "/items/{id}", AuthorizerHeaders: map[string]string{"X-K": "k"}}), Now: t0, MethodARN: arn}
	d := a.Authorize(*q)
	if d.Outcome != Allow || len(d.Headers) != 1 || d.Headers[0] != (Header{"X-K", "v"}) {
		t.Fatalf("decision %+v", d)
	}
	id, _ := ev["requestContext"].(map[string]any)["identity"].(map[string]any)
	mq, _ := ev["multiValueQueryStringParameters"].(map[string]any)
	if ev["type"] != "REQUEST" || ev["methodArn"] != arn || ev["resource"] != "/items/{id}" || id["sourceIp"] != "192.0.2.7" || len(mq["a"].([]any)) != 2 {
		t.Fatalf("event %v", ev)
	}
	// The policy is evaluated against each request's ARN, cached or not.
	q.MethodARN = arn + "/more"
	if d := a.Authorize(*q); d.Outcome != Forbidden {
		t.Fatalf("other ARN: %v", d.Outcome)
	}
}

func TestCacheKey(t *testing.T) {
	if cacheKey([]string{"a\x00b", "c"}) == cacheKey([]string{"a", "b\x00c"}) || cacheKey([]string{"1:a"}) == cacheKey([]string{"1", "a"}) {
		t.Fatal("two identities share a cache key")
	}
}

// TestRequestAuthorizerConcurrent: requests of one identity arriving
// together make one call (the others wait for it or find its result).
func TestRequestAuthorizerConcurrent(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-release
		w.Write([]byte(`{"isAuthorized": true}`))
	}))
	defer srv.Close()
	a, err := NewRequest(&config.Authorizer{Type: config.AuthorizerRequest, URL: srv.URL, Timeout: config.Duration(10e9),
		IdentitySources: []string{"$request.header.Authorization"}}, newClient(nil, 10e9), Deps{API: config.APIHTTP})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outcomes := make(chan Outcome, 20)
	for range 20 {
		wg.Go(func() {
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			r.Header.Set("Authorization", "same")
			outcomes <- a.Authorize(Request{R: r, Route: &Route{Path: "/x"}, Now: t0}).Outcome
		})
	}
	for calls.Load() == 0 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(outcomes)
	for o := range outcomes {
		if o != Allow {
			t.Fatalf("outcome %v", o)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("20 concurrent requests of one identity made %d calls", n)
	}
}
