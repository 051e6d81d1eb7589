package policy

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/drawbridge/drawbridge/internal/glob"
)

func jsonValid(b []byte) bool { return json.Valid(b) }

func FuzzCompile(f *testing.F) {
	for _, name := range []string{"blog-policy.json", "aws-doc-example.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte(`{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}`))
	f.Add([]byte(`{"Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},"NotAction":"execute-api:Inv?ke","NotResource":["arn:aws:execute-api:*:*:a*?/x/*"],"Condition":{"StringNotLikeIfExists":{"aws:UserAgent":["*bot*"]},"DateLessThan":{"aws:CurrentTime":1700000000},"Bool":{"aws:SecureTransport":true},"Null":{"aws:Referer":"false"}}}]}`))
	f.Add([]byte(`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*/GET/?*?/*","Condition":{"IpAddressIfExists":{"aws:SourceIp":["::ffff:10.0.0.0/104","2001:db8::/32","1.2.3.4"]}}}]}`))
	f.Add([]byte(`{"Statement":[]}`))
	f.Add([]byte(`{"Statement":[{"Effect":"Allow"}]}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, id := range []Identity{{}, {Region: "us-east-1", Account: "1", APIID: "a1"}} {
			p, err := CompileFor(doc, id)
			if err != nil {
				if p != nil {
					t.Fatal("policy returned with an error")
				}
				if _, ok := err.(*Error); !ok {
					t.Fatalf("error %T is not *Error", err)
				}
				continue
			}
			for _, r := range []Request{
				{Stage: "prod", Method: "GET", Path: "/"},
				{Stage: "prod", Method: "POST", Path: "/forward", SourceIP: netip.MustParseAddr("192.30.252.1"), UserAgent: "GitHub-Hookshot/1", Referer: "x", Now: time.Unix(1700000000, 0), Secure: true},
				{Stage: "dev", Method: "PUT", Path: "/a/b/c/" + strings.Repeat("x", 600), SourceIP: netip.MustParseAddr("::ffff:10.1.1.1")},
			} {
				d := p.Evaluate(&r)
				if d.Effect > ExplicitDeny || (d.Effect == ImplicitDeny) != (d.Statement < 0) || d.Statement >= p.Statements() {
					t.Fatalf("inconsistent decision %+v", d)
				}
				if bd := p.Bind(r.Stage, r.Method, r.Path).Evaluate(&r); bd != d {
					t.Fatalf("bound decision %+v, Evaluate's %+v", bd, d)
				}
			}
		}
	})
}

// globRegexp is the obvious reference: IAM wildcards as an anchored regexp.
func globRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`)$`)
	return regexp.MustCompile(b.String())
}

func TestGlob(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "a/b/c", true},
		{"*/*/forward", "prod/POST/forward", true},
		{"*/*/forward", "prod/POST/x/forward", true},
		{"*/*/forward", "prod/forward", false},
		{"*/*/forward", "prod/POST/forwardx", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"?", "é", true},
		{"??", "é", false},
		{"a?c", "a/c", true},
		{"**a", "a", true},
		{"*?", "", false},
		{"*??", "€", false}, // a byte-stepping star would split the rune
		{"*?", "€", true},
	}
	for _, tt := range tests {
		if got := glob.Match(tt.p, tt.s); got != tt.want {
			t.Errorf("glob.Match(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
		if got := glob.Match(tt.p, []byte(tt.s)); got != tt.want {
			t.Errorf("glob.Match(%q, []byte %q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
		pat := newPattern(tt.p)
		if got := pat.match([]byte(tt.s)); got != tt.want {
			t.Errorf("pattern(%q).match(%q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

func FuzzGlob(f *testing.F) {
	f.Add("*/*/forward", "prod/POST/forward")
	f.Add("a?*b", "aéxb")
	f.Add("*a*a*a*a", "aaaaaaaaaaaaaaaaaaaaaaaaab")
	f.Fuzz(func(t *testing.T, p, s string) {
		if !utf8.ValidString(p) || !utf8.ValidString(s) || len(p) > 64 {
			return
		}
		want := globRegexp(p).MatchString(s)
		if got := glob.Match(p, s); got != want {
			t.Fatalf("glob.Match(%q, %q) = %v, regexp says %v", p, s, got, want)
		}
		pat := newPattern(p)
		if got := pat.match([]byte(s)); got != want {
			t.Fatalf("pattern(%q).match(%q) = %v, regexp says %v", p, s, got, want)
		}
	})
}

// FuzzResiduals checks the compile-time API-id specialisation: matching the
// residual patterns against the tail must equal matching the whole ARN
// resource pattern against "APIID/tail".
func FuzzResiduals(f *testing.F) {
	f.Add("a1*/forward", "a1", "prod/GET/forward")
	f.Add("*", "x", "")
	f.Add("a?b/*", "axb", "p/GET/")
	f.Add("*/*/*", "id", "p/GET/x")
	f.Fuzz(func(t *testing.T, pat, apiID, tail string) {
		if len(pat) > 64 || apiID == "" || strings.ContainsAny(apiID, "/*?") || !utf8.ValidString(pat) || !utf8.ValidString(apiID) || !utf8.ValidString(tail) {
			return
		}
		for i := 0; i < len(apiID); i++ {
			if apiID[i] >= utf8.RuneSelf {
				return // '?' consumes bytes in residuals; API ids are ASCII
			}
		}
		want := glob.Match(pat, apiID+"/"+tail)
		got := false
		for _, st := range residuals(pat, apiID+"/") {
			if glob.Match(pat[st:], tail) {
				got = true
			}
		}
		if got != want {
			t.Fatalf("pattern %q id %q tail %q: residuals say %v, whole match says %v", pat, apiID, tail, got, want)
		}
		// With an unknown id, whatever matches for some concrete id must
		// match too (unknown ids are assumed to be this API).
		if want {
			got = false
			for _, st := range unknownIDResiduals(pat) {
				if glob.Match(pat[st:], tail) {
					got = true
				}
			}
			if !got {
				t.Fatalf("pattern %q tail %q matches id %q but not an unknown id", pat, tail, apiID)
			}
		}
	})
}

var (
	sinkDecision Decision
	sinkBody     []byte
)

func BenchmarkEvaluate(b *testing.B) {
	p, err := Compile(readTestdata(b, "blog-policy.json"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		req  Request
		want Effect
	}{
		{"blog-allow-github", Request{Stage: "prod", Method: "POST", Path: "/forward", SourceIP: netip.MustParseAddr("140.82.115.7")}, Allow},
		{"blog-deny-other", Request{Stage: "prod", Method: "POST", Path: "/forward", SourceIP: netip.MustParseAddr("203.0.113.9")}, ExplicitDeny},
		{"blog-deny-unknown-ip", Request{Stage: "prod", Method: "POST", Path: "/forward"}, ExplicitDeny},
		{"blog-allow-mapped", Request{Stage: "prod", Method: "POST", Path: "/forward", SourceIP: netip.MustParseAddr("::ffff:192.30.252.9")}, Allow},
		{"blog-implicit-other-path", Request{Stage: "prod", Method: "GET", Path: "/some/other/path", SourceIP: netip.MustParseAddr("192.30.252.9")}, ImplicitDeny},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if d := p.Evaluate(&bc.req); d.Effect != bc.want {
				b.Fatalf("got %v, want %v", d, bc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				sinkDecision = p.Evaluate(&bc.req)
			}
		})
	}
}

func BenchmarkDenyBody(b *testing.B) {
	arn := ARN("eu-west-1", "123456789012", "abc123", "prod", "POST", "/forward")
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		sinkBody = AppendDenyBody(buf[:0], arn, true)
	}
}

// FuzzDenyBody checks that the 403 body is valid JSON whose Message
// carries the ARN, its account masked, exactly as encoding/json would
// round-trip it.
func FuzzDenyBody(f *testing.F) {
	f.Add("/forward", true)
	f.Add("/a\"b\\c\n\x01\x7f<&>\u2028é\xff", false)
	f.Fuzz(func(t *testing.T, path string, explicit bool) {
		arn := ARN("eu-west-1", "123456789012", "abc123", "prod", "POST", path)
		body := DenyBody(arn, explicit)
		var got struct{ Message string }
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		masked := ARN("eu-west-1", "********9012", "abc123", "prod", "POST", path)
		enc, _ := json.Marshal(masked)
		var clean string
		_ = json.Unmarshal(enc, &clean)
		want := "User: anonymous is not authorized to perform: execute-api:Invoke on resource: " + clean
		if explicit {
			want += " with an explicit deny"
		}
		if got.Message != want {
			t.Fatalf("Message = %q, want %q", got.Message, want)
		}
	})
}
