package config

import (
	"slices"
	"strings"
	"testing"
)

// TestCORS: cors at the top and on routes, normalised as browsers send
// origins and methods; a route's replaces the top's whole; false turns it
// off for one route.
func TestCORS(t *testing.T) {
	yaml := `cors:
  allow_origins: ["HTTPS://App.Example.com", "http://*", "https://*.example.org:8443", "http://[::1]:3000"]
  allow_methods: [get, "*"]
  allow_headers: [Content-Type, "*"]
  max_age: 86400
routes:
  - path: /a
    target: http://127.0.0.1:1/
  - path: /b
    target: http://127.0.0.1:1/
    cors: {allow_origins: ["*"]}
  - path: /c
    target: http://127.0.0.1:1/
    cors: false
`
	c, err := Parse("c.yaml", []byte(yaml), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RouteCORS(&c.Routes[0]); got != c.CORS || !slices.Equal(got.AllowOrigins, []string{"https://app.example.com", "http://*", "https://*.example.org:8443", "http://[::1]:3000"}) ||
		!slices.Equal(got.AllowMethods, []string{"GET", "*"}) {
		t.Errorf("route /a cors = %+v", got)
	}
	if got := c.RouteCORS(&c.Routes[1]); got == nil || !slices.Equal(got.AllowOrigins, []string{"*"}) || got.MaxAge != 0 {
		t.Errorf("route /b cors = %+v, want its own, not merged", got)
	}
	if got := c.RouteCORS(&c.Routes[2]); got != nil {
		t.Errorf("route /c cors = %+v, want none", got)
	}
}

func TestCORSErrors(t *testing.T) {
	route := "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    cors:\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"credentials with *", "cors:\n  allow_origins: [\"*\"]\n  allow_credentials: true\n" + minimal,
			`c.yaml:2: cors: allow_credentials: true with the origin "*": browsers refuse credentials from a wildcard origin`},
		{"no origins", route + "      allow_methods: [GET]\n", "c.yaml:5: routes[0].cors.allow_origins: list at least one origin"},
		{"trailing slash", route + "      allow_origins: [\"https://app.example.com/\"]\n", `c.yaml:5: routes[0].cors.allow_origins: "https://app.example.com/": an origin has no path`},
		{"no scheme", "cors: {allow_origins: [app.example.com]}\n" + minimal, `c.yaml:1: cors.allow_origins: "app.example.com": want scheme://host[:port]`},
		{"wildcard in the middle", "cors: {allow_origins: [\"https://a.*.example.com\"]}\n" + minimal, `cors.allow_origins: "https://a.*.example.com": a wildcard may only stand for`},
		{"bad port", "cors: {allow_origins: [\"https://a.example.com:99999\"]}\n" + minimal, `bad port "99999"`},
		{"bad method", "cors: {allow_origins: [\"*\"], allow_methods: [\"GE T\"]}\n" + minimal, `cors.allow_methods: bad method "GE T"`},
		{"bad header", "cors: {allow_origins: [\"*\"], expose_headers: [\"a b\"]}\n" + minimal, `cors.expose_headers: "a b" is not a header name`},
		{"max_age", "cors: {allow_origins: [\"*\"], max_age: 86401}\n" + minimal, "cors.max_age: 86401 seconds: want 0 to 86400"},
		{"unknown key", route + "      allow_origin: [\"*\"]\n", `c.yaml:5: unknown field "allow_origin"`},
		{"true", route[:len(route)-1] + " true\n", "c.yaml:4: cors: want a mapping with allow_origins"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(c.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, c.want)
			}
		})
	}
}
