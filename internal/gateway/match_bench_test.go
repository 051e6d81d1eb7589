package gateway

import (
	"net/http"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
)

// BenchmarkMatchHeader is a header match (X-GitHub-Event in a list of
// two) on a request with GitHub's usual headers: the budget is ≤ 100 ns
// and no allocation.
func BenchmarkMatchHeader(b *testing.B) {
	m := compileMatch(&config.Match{Header: map[string]config.Patterns{"X-GitHub-Event": {"pull_request", "push"}}})
	r, _ := http.NewRequest("POST", "http://gw/hooks/github", nil)
	for k, v := range map[string]string{"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/a1b2c3d",
		"X-GitHub-Event": "push", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "X-GitHub-Hook-ID": "511234567",
		"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"} {
		r.Header.Set(k, v)
	}
	c := &call{r: r}
	b.ReportAllocs()
	for b.Loop() {
		if !m.holds(c) {
			b.Fatal("no match")
		}
	}
}

// BenchmarkMatchJSON is the match of the routing docs (event header and
// ref glob) on a GitHub push payload of 24 KB (testdata/github/push.json),
// including the once-per-request check that the body is JSON.
func BenchmarkMatchJSON(b *testing.B) {
	body := fixtureB(b, "push.json")
	m := compileMatch(&config.Match{
		Header: map[string]config.Patterns{"X-GitHub-Event": {"push"}},
		JSON:   map[string]config.Patterns{"ref": {"refs/heads/main", "refs/heads/release/*"}, "repository.full_name": {"octo-org/*"}},
	})
	r, _ := http.NewRequest("POST", "http://gw/hooks/github", nil)
	r.Header.Set("X-GitHub-Event", "push")
	c := &call{r: r, body: body}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		c.match.json = 0 // a new request: the body is checked again
		if !m.holds(c) {
			b.Fatal("no match")
		}
	}
}

// BenchmarkMatchJSONLookup is the lookup alone, the body known to be
// JSON (a second rule on the same request).
func BenchmarkMatchJSONLookup(b *testing.B) {
	body := fixtureB(b, "push.json")
	m := compileMatch(&config.Match{JSON: map[string]config.Patterns{"repository.full_name": {"octo-org/*"}}})
	c := &call{r: &http.Request{}, body: body}
	b.ReportAllocs()
	for b.Loop() {
		if !m.holds(c) {
			b.Fatal("no match")
		}
	}
}
