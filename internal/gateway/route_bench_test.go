package gateway

import "testing"

// BenchmarkRoute is path rules plus route lookup, the work every request
// does before the first guard, on a table of a dozen exact and prefix
// routes.
func BenchmarkRoute(b *testing.B) {
	var routes []*route
	for _, p := range []string{"/forward", "/api/v1/users", "/api/v1/orders", "/health", "/a", "/b", "/c"} {
		routes = append(routes, &route{base: p, methods: ^methodSet(0)})
	}
	for _, p := range []string{"/hooks", "/hooks/github", "/api/v2", "/static"} {
		routes = append(routes, &route{base: p, prefix: true, methods: ^methodSet(0)})
	}
	rt := newRouter(routes)
	cases := []struct{ name, path string }{
		{"exact", "/api/v1/orders"},
		{"prefix", "/hooks/github/push/a%20b"},
		{"none", "/nothing/here"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !pathOK(c.path) {
					b.Fatal("path refused")
				}
				rt.match("POST", c.path, c.path)
			}
		})
	}
	b.Run("traversal-refused", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if pathOK("/hooks/%2e%2e/admin") {
				b.Fatal("traversal allowed")
			}
		}
	})
}

// BenchmarkRouteTemplates is the same work on a table that adds template
// routes beside the exact and prefix ones: a template costs a segment walk
// without allocation.
func BenchmarkRouteTemplates(b *testing.B) {
	var routes []*route
	for _, p := range []string{"/forward", "/api/v1/users", "/api/v1/orders", "/health", "/a", "/b", "/c"} {
		routes = append(routes, &route{base: p, methods: ^methodSet(0)})
	}
	for _, p := range []string{"/hooks", "/hooks/github", "/api/v2", "/static"} {
		routes = append(routes, &route{base: p, prefix: true, methods: ^methodSet(0)})
	}
	for _, p := range []string{"/repos/{owner}/hooks", "/repos/{owner}/{repo}/issues/{n}", "/items/{id}", "/files/{path+}"} {
		r := &route{methods: ^methodSet(0)}
		r.tmpl, r.base = compileTemplate(p)
		routes = append(routes, r)
	}
	rt := newRouter(routes)
	for _, c := range []struct{ name, path string }{
		{"exact", "/api/v1/orders"},
		{"prefix", "/hooks/github/push/a%20b"},
		{"template", "/repos/drawbridge/gateway/issues/16"},
		{"greedy", "/files/a/b/c"},
		{"none", "/nothing/here"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !pathOK(c.path) {
					b.Fatal("path refused")
				}
				if r, _ := rt.match("POST", c.path, c.path); r == nil && c.name != "none" {
					b.Fatal("no match")
				}
			}
		})
	}
}
