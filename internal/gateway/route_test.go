package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

const templateYAML = `
routes:
  - {path: /items/new, target: "{T}/new"}
  - {path: "/items/{id}", target: "{T}/item/"}
  - {path: "/items/{id}/parts/{part}", methods: [GET], target: "{T}/parts"}
  - {path: /items/*, target: "{T}/any/"}
  - {path: "/files/{path+}", target: "{T}/files/"}
  - {path: "/{tenant}/status", target: "{T}"}
`

// TestTemplateRoutes: path templates match as API Gateway's resource
// paths do (a literal segment before {name}, {name} before a greedy rest,
// whatever the order in the file), and the target receives its own path
// plus the request path from the first parameter on, escaped as sent,
// as a prefix route's rest. No route is REST's 403 "Missing Authentication Token".
func TestTemplateRoutes(t *testing.T) {
	b := newBackend(t, nil)
	gw, _ := gatewayFor(t, templateYAML, b.URL)
	cases := []struct {
		method, path string
		status       int
		got          string // RequestURI at the backend
	}{
		{"GET", "/items/new", 200, "/new"},                  // literal beats {id}
		{"GET", "/items/42", 200, "/item/42"},               // {id} beats /items/*
		{"GET", "/items/a%20b?q=1", 200, "/item/a%20b?q=1"}, // escaped as sent, query kept
		{"GET", "/items/42/parts/7", 200, "/parts/42/parts/7"},
		{"POST", "/items/42/parts/7", 200, "/any/42/parts/7"}, // the template takes GET only
		{"GET", "/items/42/other", 200, "/any/42/other"},
		{"GET", "/items/42/", 200, "/any/42/"}, // a trailing '/' is an empty segment, not {id}
		{"GET", "/items", 200, "/any/"},        // a prefix route matches its bare base
		{"GET", "/files/a/b%20c/d", 200, "/files/a/b%20c/d"},
		{"GET", "/files/", 403, ""}, // {path+} needs a non-empty rest, as on AWS
		{"GET", "/files", 403, ""},
		{"GET", "/acme/status", 200, "/acme/status"},
		{"GET", "/acme/other", 403, ""},
		{"GET", "/items/%2e%2e/new", 403, ""}, // path rules before matching
		{"GET", "/files/a/../../new", 403, ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			n := len(b.requests())
			req, _ := http.NewRequest(c.method, gw+c.path, nil)
			resp, body := do(t, req)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, c.status)
			}
			got := b.requests()
			if c.got == "" {
				if len(got) != n {
					t.Fatalf("the backend was called: %s", got[len(got)-1].RequestURI)
				}
				return
			}
			if len(got) != n+1 || got[n].RequestURI != c.got {
				t.Fatalf("backend got %v, want %s", got[n:], c.got)
			}
		})
	}
}

// TestTemplatePolicyARN: a resource policy sees a template route's
// request path in the ARN, as API Gateway's does (the resource path with
// the values filled in), not the template.
func TestTemplatePolicyARN(t *testing.T) {
	b := newBackend(t, nil)
	gw, _ := gatewayFor(t, `
aws: {region: eu-west-1, account_id: "123456789012", api_id: abc123}
stage: prod
resource_policy:
  Statement:
    - {Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*"}
    - {Effect: Deny, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*/GET/items/42"}
routes:
  - {path: "/items/{id}", target: "{T}/item/"}
`, b.URL)
	resp, err := http.Get(gw + "/items/42")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "/prod/GET/items/42") {
		t.Fatalf("GET /items/42: %d %s, want 403 naming the request's ARN", resp.StatusCode, body)
	}
	resp, err = http.Get(gw + "/items/43")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || b.last(t).RequestURI != "/item/43" {
		t.Fatalf("GET /items/43: %d, want 200", resp.StatusCode)
	}
}

// TestRouterOrder: the order of pattern routes is API Gateway's
// precedence whatever the order in the file.
func TestRouterOrder(t *testing.T) {
	mk := func(p string) *route {
		r := &route{base: p, methods: 1}
		switch {
		case strings.HasSuffix(p, "/*"):
			r.base, r.prefix = strings.TrimSuffix(p, "/*"), true
		case strings.Contains(p, "{"):
			r.tmpl, r.base = compileTemplate(p)
		}
		r.label = p
		return r
	}
	in := []string{"/*", "/{a+}", "/a/*", "/{x}/b", "/a/{y}", "/a/b/*", "/a/{y}/c"}
	var routes []*route
	for _, p := range in {
		routes = append(routes, mk(p))
	}
	rt := newRouter(routes)
	var got []string
	for _, r := range rt.patterns {
		got = append(got, r.label)
	}
	want := "/a/b/* /a/{y}/c /a/{y} /a/* /{x}/b /* /{a+}"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
	for path, want := range map[string]string{
		"/a/b/c": "/a/b/*", "/a/x/c": "/a/{y}/c", "/a/x": "/a/{y}", "/a/x/d": "/a/*",
		"/z/b": "/{x}/b", "/z/q": "/*", "/a": "/a/*",
	} {
		r, _ := rt.match("GET", path, path)
		if r == nil || r.label != want {
			t.Errorf("%s matched %v, want %s", path, r, want)
		}
	}
}
