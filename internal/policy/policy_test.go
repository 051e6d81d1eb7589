package policy

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustCompile(t testing.TB, doc string) *Policy {
	t.Helper()
	p, err := Compile([]byte(doc))
	if err != nil {
		t.Fatalf("Compile: %v\n%s", err, doc)
	}
	return p
}

func ip(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

type want struct {
	effect    Effect
	statement int
}

func TestBlogPolicy(t *testing.T) {
	p, err := Compile(readTestdata(t, "blog-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	deny0 := want{ExplicitDeny, 0}
	allow1 := want{Allow, 1}
	implicit := want{ImplicitDeny, -1}
	tests := []struct {
		name   string
		method string
		path   string
		ip     string
		want   want
	}{
		{"github 192.30.252.0/22 first", "POST", "/forward", "192.30.252.0", allow1},
		{"github 192.30.252.0/22 last", "POST", "/forward", "192.30.255.255", allow1},
		{"just below 192.30.252.0/22", "POST", "/forward", "192.30.251.255", deny0},
		{"just above 192.30.252.0/22", "POST", "/forward", "192.31.0.0", deny0},
		{"github 185.199.108.0/22 last", "GET", "/forward", "185.199.111.255", allow1},
		{"github 140.82.112.0/20 last", "PUT", "/forward", "140.82.127.255", allow1},
		{"just above 140.82.112.0/20", "PUT", "/forward", "140.82.128.0", deny0},
		{"I2 ipv4-mapped github client", "POST", "/forward", "::ffff:192.30.252.1", allow1},
		{"I2 ipv4-mapped other client", "POST", "/forward", "::ffff:8.8.8.8", deny0},
		{"I1 ipv6 client vs ipv4 list", "POST", "/forward", "2606:50c0::1", deny0},
		{"other client", "POST", "/forward", "203.0.113.9", deny0},
		{"unknown client is explicitly denied", "POST", "/forward", "", deny0},
		{"zoned client", "POST", "/forward", "fe80::1%eth0", deny0},
		{"other path: nothing matches", "POST", "/other", "192.30.252.1", implicit},
		{"other path, other client", "POST", "/other", "8.8.8.8", implicit},
		{"sub path not covered", "POST", "/forward/x", "192.30.252.1", implicit},
		{"paths are case-sensitive", "POST", "/Forward", "8.8.8.8", implicit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(&Request{Stage: "prod", Method: tt.method, Path: tt.path, SourceIP: ip(tt.ip)})
			if d.Effect != tt.want.effect || d.Statement != tt.want.statement {
				t.Fatalf("Evaluate = %v (statement %d), want %v (statement %d)", d.Effect, d.Statement, tt.want.effect, tt.want.statement)
			}
		})
	}
}

// evalCase runs one request against one document.
type evalCase struct {
	name string
	doc  string
	req  Request
	want want
}

func runEvalCases(t *testing.T, tests []evalCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.doc)
			r := tt.req
			if r.Stage == "" {
				r.Stage = "prod"
			}
			if r.Method == "" {
				r.Method = "GET"
			}
			if r.Path == "" {
				r.Path = "/forward"
			}
			d := p.Evaluate(&r)
			if d.Effect != tt.want.effect || d.Statement != tt.want.statement {
				t.Fatalf("Evaluate(%+v) = %v (statement %d), want %v (statement %d)", r, d.Effect, d.Statement, tt.want.effect, tt.want.statement)
			}
		})
	}
}

// doc builds a policy from statement bodies (without Principal, added here).
func doc(statements ...string) string {
	for i, s := range statements {
		statements[i] = `{"Principal":"*",` + s + `}`
	}
	return `{"Version":"2012-10-17","Statement":[` + strings.Join(statements, ",") + `]}`
}

const (
	allowAll = `"Effect":"Allow","Action":"execute-api:Invoke","Resource":"execute-api:/*"`
	denyAll  = `"Effect":"Deny","Action":"execute-api:Invoke","Resource":"execute-api:/*"`
)

func TestPrecedence(t *testing.T) {
	runEvalCases(t, []evalCase{
		{name: "I4 deny after allow wins", doc: doc(allowAll, denyAll), want: want{ExplicitDeny, 1}},
		{name: "I4 deny before allow wins", doc: doc(denyAll, allowAll), want: want{ExplicitDeny, 0}},
		{name: "allow only", doc: doc(allowAll), want: want{Allow, 0}},
		{name: "first matching allow reported", doc: doc(`"Effect":"Allow","Action":"execute-api:Invoke","Resource":"execute-api:/dev/*"`, allowAll, allowAll), want: want{Allow, 1}},
		{name: "deny not matching leaves allow", doc: doc(`"Effect":"Deny","Action":"execute-api:Invoke","Resource":"execute-api:/*/DELETE/*"`, allowAll), want: want{Allow, 1}},
		{name: "deny only is implicit for non-matching", doc: doc(`"Effect":"Deny","Action":"execute-api:Invoke","Resource":"execute-api:/*/DELETE/*"`), want: want{ImplicitDeny, -1}},
		{name: "conditional allow not met", doc: doc(allowAll + `,"Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`), req: Request{SourceIP: ip("11.0.0.1")}, want: want{ImplicitDeny, -1}},
	})
}

func TestStatementForms(t *testing.T) {
	runEvalCases(t, []evalCase{
		{name: "statement as object", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*"}}`, want: want{Allow, 0}},
		{name: "no version", doc: `{"Statement":{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"*"}}`, want: want{Allow, 0}},
		{name: "old version and Id", doc: `{"Version":"2008-10-17","Id":"x","Statement":{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"*"}}`, want: want{Allow, 0}},
		{name: "principal AWS star", doc: `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"execute-api:Invoke","Resource":"*"}]}`, want: want{Allow, 0}},
		{name: "principal AWS star list", doc: `{"Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"execute-api:Invoke","Resource":"*"}]}`, want: want{Allow, 0}},
		{name: "action list", doc: doc(`"Effect":"Allow","Action":["execute-api:InvalidateCache","execute-api:Invoke"],"Resource":"*"`), want: want{Allow, 0}},
		{name: "action execute-api star", doc: doc(`"Effect":"Allow","Action":"execute-api:*","Resource":"*"`), want: want{Allow, 0}},
		{name: "action star", doc: doc(`"Effect":"Allow","Action":"*","Resource":"*"`), want: want{Allow, 0}},
		{name: "action wildcard", doc: doc(`"Effect":"Allow","Action":"execute-api:Inv*","Resource":"*"`), want: want{Allow, 0}},
		{name: "action case-insensitive", doc: doc(`"Effect":"Allow","Action":"Execute-API:invoke","Resource":"*"`), want: want{Allow, 0}},
		{name: "action not covering invoke is inert", doc: doc(`"Effect":"Deny","Action":"execute-api:InvalidateCache","Resource":"*"`, allowAll), want: want{Allow, 1}},
		{name: "NotAction invoke excludes", doc: doc(`"Effect":"Allow","NotAction":"execute-api:Invoke","Resource":"*"`), want: want{ImplicitDeny, -1}},
		{name: "NotAction other covers invoke", doc: doc(`"Effect":"Allow","NotAction":"execute-api:ManageConnections","Resource":"*"`), want: want{Allow, 0}},
		{name: "sid reported", doc: doc(`"Sid":"Everyone","Effect":"Allow","Action":"*","Resource":"*"`), want: want{Allow, 0}},
	})
}

func TestResources(t *testing.T) {
	res := func(effectRes string) string {
		return doc(`"Effect":"Allow","Action":"execute-api:Invoke",` + effectRes)
	}
	allow := want{Allow, 0}
	none := want{ImplicitDeny, -1}
	runEvalCases(t, []evalCase{
		{name: "star", doc: res(`"Resource":"*"`), want: allow},
		{name: "short everything", doc: res(`"Resource":"execute-api:/*"`), want: allow},
		{name: "exact", doc: res(`"Resource":"execute-api:/prod/GET/forward"`), want: allow},
		{name: "exact other method", doc: res(`"Resource":"execute-api:/prod/POST/forward"`), want: none},
		{name: "exact other stage", doc: res(`"Resource":"execute-api:/dev/GET/forward"`), want: none},
		{name: "star crosses slash", doc: res(`"Resource":"execute-api:/prod/*"`), req: Request{Path: "/hooks/a/b/c"}, want: allow},
		{name: "star in middle crosses slash", doc: res(`"Resource":"execute-api:/*/c"`), req: Request{Path: "/hooks/a/b/c"}, want: allow},
		{name: "question one char", doc: res(`"Resource":"execute-api:/prod/GET/hooks/?"`), req: Request{Path: "/hooks/a"}, want: allow},
		{name: "question not two chars", doc: res(`"Resource":"execute-api:/prod/GET/hooks/?"`), req: Request{Path: "/hooks/ab"}, want: none},
		{name: "question one utf8 char", doc: res(`"Resource":"execute-api:/prod/GET/caf?"`), req: Request{Path: "/café"}, want: allow},
		{name: "question matches slash", doc: res(`"Resource":"execute-api:/prod/GET/a?b"`), req: Request{Path: "/a/b"}, want: allow},
		{name: "root resource", doc: res(`"Resource":"execute-api:/prod/GET/"`), req: Request{Path: "/"}, want: allow},
		{name: "root does not cover children", doc: res(`"Resource":"execute-api:/prod/GET/"`), req: Request{Path: "/x"}, want: none},
		{name: "method star", doc: res(`"Resource":"execute-api:/prod/*/forward"`), req: Request{Method: "DELETE"}, want: allow},
		{name: "resource list", doc: res(`"Resource":["execute-api:/dev/*","execute-api:/prod/GET/forward"]`), want: allow},
		{name: "NotResource excludes", doc: res(`"NotResource":"execute-api:/prod/GET/forward"`), want: none},
		{name: "NotResource other", doc: res(`"NotResource":"execute-api:/prod/GET/admin*"`), want: allow},
		{name: "NotResource star never", doc: res(`"NotResource":"*"`), want: none},
		{name: "full arn, unknown identity", doc: res(`"Resource":"arn:aws:execute-api:us-east-1:111122223333:a1b2c3d4e5/prod/GET/forward"`), want: allow},
		{name: "full arn star, unknown identity", doc: res(`"Resource":"arn:aws:execute-api:*:*:*"`), want: allow},
		{name: "full arn star spanning, unknown identity", doc: res(`"Resource":"arn:aws:execute-api:*:*:*/forward"`), want: allow},
		{name: "full arn star spanning, mismatch", doc: res(`"Resource":"arn:aws:execute-api:*:*:*/forwardx"`), want: none},
		{name: "full arn without stage matches nothing", doc: res(`"Resource":"arn:aws:execute-api:us-east-1:1:abc"`), want: none},
		{name: "full arn other stage", doc: res(`"Resource":"arn:aws:execute-api:us-east-1:111122223333:a1b2c3d4e5/dev/*"`), want: none},
		{name: "full arn china partition", doc: res(`"Resource":"arn:aws-cn:execute-api:cn-north-1:1:abc/*"`), want: allow},
	})
}

func TestFullARNWithIdentity(t *testing.T) {
	id := Identity{Region: "us-east-1", Account: "111122223333", APIID: "a1b2c3d4e5"}
	tests := []struct {
		name     string
		resource string
		want     Effect
	}{
		{"same api", "arn:aws:execute-api:us-east-1:111122223333:a1b2c3d4e5/prod/GET/forward", Allow},
		{"same api star", "arn:aws:execute-api:us-east-1:111122223333:a1b2c3d4e5/*", Allow},
		{"other api", "arn:aws:execute-api:us-east-1:111122223333:zzzzzzzzzz/*", ImplicitDeny},
		{"api id prefix only", "arn:aws:execute-api:us-east-1:111122223333:a1b2c3d4e/*", ImplicitDeny},
		{"other region", "arn:aws:execute-api:eu-west-1:111122223333:a1b2c3d4e5/*", ImplicitDeny},
		{"other account", "arn:aws:execute-api:us-east-1:999999999999:a1b2c3d4e5/*", ImplicitDeny},
		{"region wildcard", "arn:aws:execute-api:us-*:111122223333:a1b2c3d4e5/*", Allow},
		{"everything wildcard", "arn:aws:execute-api:*:*:*", Allow},
		{"api id wildcard", "arn:aws:execute-api:*:*:a1b2*/prod/GET/forward", Allow},
		{"api id wildcard spans stage", "arn:aws:execute-api:*:*:a1*/forward", Allow},
		{"api id wildcard mismatch", "arn:aws:execute-api:*:*:b*/prod/GET/forward", ImplicitDeny},
		{"api id question marks", "arn:aws:execute-api:*:*:a1b2c3d4e?/prod/*", Allow},
		{"short form ignores identity", "execute-api:/prod/GET/forward", Allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileFor([]byte(doc(`"Effect":"Allow","Action":"execute-api:Invoke","Resource":"`+tt.resource+`"`)), id)
			if err != nil {
				t.Fatal(err)
			}
			if d := p.Evaluate(&Request{Stage: "prod", Method: "GET", Path: "/forward"}); d.Effect != tt.want {
				t.Fatalf("Evaluate = %v, want %v", d, tt.want)
			}
		})
	}
}

func TestAWSDocExample(t *testing.T) {
	// AWS's "deny these source IPs" example: Allow all, Deny a list.
	p, err := CompileFor(readTestdata(t, "aws-doc-example.json"), Identity{Region: "us-east-1", Account: "111122223333", APIID: "a1b2c3d4e5"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip   string
		want Effect
	}{{"192.0.2.0", ExplicitDeny}, {"198.51.100.255", ExplicitDeny}, {"198.51.101.0", Allow}, {"", Allow}} {
		if d := p.Evaluate(&Request{Stage: "prod", Method: "GET", Path: "/", SourceIP: ip(tc.ip)}); d.Effect != tc.want {
			t.Errorf("ip %q: %v, want %v", tc.ip, d, tc.want)
		}
	}
}

func TestCIDREdges(t *testing.T) {
	cond := func(op, values string) string {
		return doc(allowAll + `,"Condition":{"` + op + `":{"aws:SourceIp":` + values + `}}`)
	}
	allow := want{Allow, 0}
	none := want{ImplicitDeny, -1}
	runEvalCases(t, []evalCase{
		{name: "/0 v4 lowest", doc: cond("IpAddress", `"0.0.0.0/0"`), req: Request{SourceIP: ip("0.0.0.0")}, want: allow},
		{name: "/0 v4 highest", doc: cond("IpAddress", `"0.0.0.0/0"`), req: Request{SourceIP: ip("255.255.255.255")}, want: allow},
		{name: "I1 /0 v4 does not cover v6", doc: cond("IpAddress", `"0.0.0.0/0"`), req: Request{SourceIP: ip("2001:db8::1")}, want: none},
		{name: "/0 v6", doc: cond("IpAddress", `"::/0"`), req: Request{SourceIP: ip("2001:db8::1")}, want: allow},
		{name: "/0 v6 does not cover v4", doc: cond("IpAddress", `"::/0"`), req: Request{SourceIP: ip("10.0.0.1")}, want: none},
		{name: "/0 does not cover unknown", doc: cond("IpAddress", `["0.0.0.0/0","::/0"]`), req: Request{}, want: none},
		{name: "/22 first", doc: cond("IpAddress", `"185.199.108.0/22"`), req: Request{SourceIP: ip("185.199.108.0")}, want: allow},
		{name: "/22 last", doc: cond("IpAddress", `"185.199.108.0/22"`), req: Request{SourceIP: ip("185.199.111.255")}, want: allow},
		{name: "/22 before first", doc: cond("IpAddress", `"185.199.108.0/22"`), req: Request{SourceIP: ip("185.199.107.255")}, want: none},
		{name: "/22 after last", doc: cond("IpAddress", `"185.199.108.0/22"`), req: Request{SourceIP: ip("185.199.112.0")}, want: none},
		{name: "/32", doc: cond("IpAddress", `"203.0.113.7/32"`), req: Request{SourceIP: ip("203.0.113.7")}, want: allow},
		{name: "/32 neighbour", doc: cond("IpAddress", `"203.0.113.7/32"`), req: Request{SourceIP: ip("203.0.113.8")}, want: none},
		{name: "single v4 address", doc: cond("IpAddress", `"203.0.113.7"`), req: Request{SourceIP: ip("203.0.113.7")}, want: allow},
		{name: "/128", doc: cond("IpAddress", `"2001:db8::7/128"`), req: Request{SourceIP: ip("2001:db8::7")}, want: allow},
		{name: "/128 neighbour", doc: cond("IpAddress", `"2001:db8::7/128"`), req: Request{SourceIP: ip("2001:db8::8")}, want: none},
		{name: "single v6 address", doc: cond("IpAddress", `"2001:db8::7"`), req: Request{SourceIP: ip("2001:db8::7")}, want: allow},
		{name: "v6 /32 last", doc: cond("IpAddress", `"2606:50c0::/32"`), req: Request{SourceIP: ip("2606:50c0:ffff:ffff:ffff:ffff:ffff:ffff")}, want: allow},
		{name: "mapped client vs v4 cidr", doc: cond("IpAddress", `"192.30.252.0/22"`), req: Request{SourceIP: ip("::ffff:192.30.252.1")}, want: allow},
		{name: "mapped cidr vs v4 client", doc: cond("IpAddress", `"::ffff:192.30.252.0/118"`), req: Request{SourceIP: ip("192.30.252.1")}, want: allow},
		{name: "host bits in cidr ignored", doc: cond("IpAddress", `"10.1.2.3/8"`), req: Request{SourceIP: ip("10.200.0.1")}, want: allow},
		{name: "values OR", doc: cond("IpAddress", `["10.0.0.0/8","192.168.0.0/16"]`), req: Request{SourceIP: ip("192.168.1.1")}, want: allow},
		{name: "NotIpAddress outside", doc: cond("NotIpAddress", `["10.0.0.0/8","192.168.0.0/16"]`), req: Request{SourceIP: ip("8.8.8.8")}, want: allow},
		{name: "NotIpAddress inside one", doc: cond("NotIpAddress", `["10.0.0.0/8","192.168.0.0/16"]`), req: Request{SourceIP: ip("10.0.0.1")}, want: none},
		{name: "NotIpAddress unknown is true", doc: cond("NotIpAddress", `"10.0.0.0/8"`), req: Request{}, want: allow},
		{name: "IpAddressIfExists unknown is true", doc: cond("IpAddressIfExists", `"10.0.0.0/8"`), req: Request{}, want: allow},
		{name: "IpAddressIfExists known outside", doc: cond("IpAddressIfExists", `"10.0.0.0/8"`), req: Request{SourceIP: ip("8.8.8.8")}, want: none},
	})
}

func TestConditions(t *testing.T) {
	cond := func(block string) string { return doc(allowAll + `,"Condition":` + block) }
	allow := want{Allow, 0}
	none := want{ImplicitDeny, -1}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	runEvalCases(t, []evalCase{
		// Strings.
		{name: "StringEquals ua", doc: cond(`{"StringEquals":{"aws:UserAgent":"GitHub-Hookshot/abc"}}`), req: Request{UserAgent: "GitHub-Hookshot/abc"}, want: allow},
		{name: "StringEquals case-sensitive", doc: cond(`{"StringEquals":{"aws:UserAgent":"GitHub-Hookshot/abc"}}`), req: Request{UserAgent: "github-hookshot/abc"}, want: none},
		{name: "StringEquals missing ua is false", doc: cond(`{"StringEquals":{"aws:UserAgent":"x"}}`), want: none},
		{name: "StringEqualsIfExists missing ua is true", doc: cond(`{"StringEqualsIfExists":{"aws:UserAgent":"x"}}`), want: allow},
		{name: "StringEqualsIfExists present mismatch", doc: cond(`{"StringEqualsIfExists":{"aws:UserAgent":"x"}}`), req: Request{UserAgent: "y"}, want: none},
		{name: "StringNotEquals missing ua is true", doc: cond(`{"StringNotEquals":{"aws:UserAgent":"x"}}`), want: allow},
		{name: "StringNotEquals present equal", doc: cond(`{"StringNotEquals":{"aws:UserAgent":["x","y"]}}`), req: Request{UserAgent: "y"}, want: none},
		{name: "StringNotEquals present other", doc: cond(`{"StringNotEquals":{"aws:UserAgent":["x","y"]}}`), req: Request{UserAgent: "z"}, want: allow},
		{name: "StringEqualsIgnoreCase", doc: cond(`{"StringEqualsIgnoreCase":{"aws:Referer":"HTTPS://Example.com/"}}`), req: Request{Referer: "https://example.COM/"}, want: allow},
		{name: "StringNotEqualsIgnoreCase equal", doc: cond(`{"StringNotEqualsIgnoreCase":{"aws:Referer":"HTTPS://Example.com/"}}`), req: Request{Referer: "https://example.com/"}, want: none},
		{name: "StringLike star", doc: cond(`{"StringLike":{"aws:UserAgent":"GitHub-Hookshot/*"}}`), req: Request{UserAgent: "GitHub-Hookshot/3a6e330"}, want: allow},
		{name: "StringLike mismatch", doc: cond(`{"StringLike":{"aws:UserAgent":"GitHub-Hookshot/*"}}`), req: Request{UserAgent: "curl/8"}, want: none},
		{name: "StringLike question", doc: cond(`{"StringLike":{"aws:Referer":"https://?.example.com/*"}}`), req: Request{Referer: "https://a.example.com/x/y"}, want: allow},
		{name: "StringNotLike match", doc: cond(`{"StringNotLike":{"aws:UserAgent":"*bot*"}}`), req: Request{UserAgent: "evilbot/1"}, want: none},
		{name: "StringNotLike missing is true", doc: cond(`{"StringNotLike":{"aws:UserAgent":"*bot*"}}`), want: allow},
		{name: "StringNotLikeIfExists missing is true", doc: cond(`{"StringNotLikeIfExists":{"aws:UserAgent":"*bot*"}}`), want: allow},
		{name: "key names case-insensitive", doc: cond(`{"StringEquals":{"AWS:useragent":"x"}}`), req: Request{UserAgent: "x"}, want: allow},

		// AND across keys and operators.
		{name: "AND across keys both", doc: cond(`{"StringEquals":{"aws:UserAgent":"u","aws:Referer":"r"}}`), req: Request{UserAgent: "u", Referer: "r"}, want: allow},
		{name: "AND across keys one", doc: cond(`{"StringEquals":{"aws:UserAgent":"u","aws:Referer":"r"}}`), req: Request{UserAgent: "u", Referer: "x"}, want: none},
		{name: "AND across operators both", doc: cond(`{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"StringLike":{"aws:UserAgent":"GitHub-Hookshot/*"}}`), req: Request{SourceIP: ip("10.1.1.1"), UserAgent: "GitHub-Hookshot/1"}, want: allow},
		{name: "AND across operators one", doc: cond(`{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"StringLike":{"aws:UserAgent":"GitHub-Hookshot/*"}}`), req: Request{SourceIP: ip("10.1.1.1"), UserAgent: "curl"}, want: none},

		// Dates.
		{name: "DateLessThan before", doc: cond(`{"DateLessThan":{"aws:CurrentTime":"2026-03-01T12:00:00Z"}}`), req: Request{Now: t0.Add(-time.Second)}, want: allow},
		{name: "DateLessThan equal", doc: cond(`{"DateLessThan":{"aws:CurrentTime":"2026-03-01T12:00:00Z"}}`), req: Request{Now: t0}, want: none},
		{name: "DateLessThanEquals equal", doc: cond(`{"DateLessThanEquals":{"aws:CurrentTime":"2026-03-01T12:00:00Z"}}`), req: Request{Now: t0}, want: allow},
		{name: "DateGreaterThan equal", doc: cond(`{"DateGreaterThan":{"aws:CurrentTime":"2026-03-01T12:00:00Z"}}`), req: Request{Now: t0}, want: none},
		{name: "DateGreaterThan after", doc: cond(`{"DateGreaterThan":{"aws:CurrentTime":"2026-03-01T12:00:00Z"}}`), req: Request{Now: t0.Add(time.Nanosecond)}, want: allow},
		{name: "DateGreaterThanEquals equal", doc: cond(`{"DateGreaterThanEquals":{"aws:CurrentTime":"2026-03-01T12:00:00Z"}}`), req: Request{Now: t0}, want: allow},
		{name: "DateEquals other zone", doc: cond(`{"DateEquals":{"aws:CurrentTime":"2026-03-01T13:00:00+01:00"}}`), req: Request{Now: t0}, want: allow},
		{name: "DateNotEquals equal", doc: cond(`{"DateNotEquals":{"aws:CurrentTime":"2026-03-01T12:00:00Z"}}`), req: Request{Now: t0}, want: none},
		{name: "DateNotEquals missing is true", doc: cond(`{"DateNotEquals":{"aws:CurrentTime":"2026-03-01T12:00:00Z"}}`), want: allow},
		{name: "DateLessThan missing is false", doc: cond(`{"DateLessThan":{"aws:CurrentTime":"2099-01-01"}}`), want: none},
		{name: "DateLessThanIfExists missing is true", doc: cond(`{"DateLessThanIfExists":{"aws:CurrentTime":"2000-01-01"}}`), want: allow},
		{name: "date only", doc: cond(`{"DateGreaterThan":{"aws:CurrentTime":"2026-03-01"}}`), req: Request{Now: t0}, want: allow},
		{name: "epoch seconds string", doc: cond(`{"DateLessThan":{"aws:CurrentTime":"1772366401"}}`), req: Request{Now: t0}, want: allow},
		{name: "epoch seconds number", doc: cond(`{"DateEquals":{"aws:CurrentTime":1772366400}}`), req: Request{Now: t0}, want: allow},
		{name: "window AND", doc: cond(`{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2026-02-01T00:00:00Z"}}`), req: Request{Now: t0}, want: none},

		// Bool and Null.
		{name: "Bool secure true", doc: cond(`{"Bool":{"aws:SecureTransport":"true"}}`), req: Request{Secure: true}, want: allow},
		{name: "Bool secure true plain", doc: cond(`{"Bool":{"aws:SecureTransport":"true"}}`), want: none},
		{name: "Bool json false", doc: cond(`{"Bool":{"aws:SecureTransport":false}}`), want: allow},
		{name: "BoolIfExists always present", doc: cond(`{"BoolIfExists":{"aws:SecureTransport":"true"}}`), want: none},
		{name: "Null true on missing", doc: cond(`{"Null":{"aws:Referer":"true"}}`), want: allow},
		{name: "Null true on present", doc: cond(`{"Null":{"aws:Referer":"true"}}`), req: Request{Referer: "x"}, want: none},
		{name: "Null false on present ip", doc: cond(`{"Null":{"aws:SourceIp":"false"}}`), req: Request{SourceIP: ip("1.2.3.4")}, want: allow},
		{name: "Null false on unknown ip", doc: cond(`{"Null":{"aws:SourceIp":"false"}}`), want: none},
		{name: "operator names case-insensitive", doc: cond(`{"stringequals":{"aws:UserAgent":"x"}}`), req: Request{UserAgent: "x"}, want: allow},
	})
}

func TestCompileErrors(t *testing.T) {
	st := func(s string) string { return `{"Statement":[{` + s + `}]}` }
	base := `"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"*"`
	tests := []struct {
		name, doc, want string
	}{
		{"empty", ``, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"trailing data", `{"Statement":{` + base + `}} {}`, "not a JSON object"},
		{"no statement", `{"Version":"2012-10-17"}`, "no Statement"},
		{"empty statement list", `{"Statement":[]}`, "empty"},
		{"statement string", `{"Statement":"x"}`, "object or an array"},
		{"statement element not object", `{"Statement":[1]}`, "statement 0: not a JSON object"},
		{"bad version", `{"Version":"2020-01-01","Statement":{` + base + `}}`, "Version"},
		{"unknown top element", `{"Statment":[]}`, `unknown element "Statment"`},
		{"unknown statement element", st(base + `,"Efect":"Allow"`), `unknown element "Efect"`},
		{"lowercase element", st(`"effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"*"`), `unknown element "effect"`},
		{"bad effect", st(`"Effect":"allow","Principal":"*","Action":"execute-api:Invoke","Resource":"*"`), "Effect"},
		{"missing effect", st(`"Principal":"*","Action":"execute-api:Invoke","Resource":"*"`), "Effect (missing)"},
		{"missing principal", st(`"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"`), "no Principal"},
		{"iam principal", st(`"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"execute-api:Invoke","Resource":"*"`), "not supported"},
		{"account principal string", st(`"Effect":"Allow","Principal":"111122223333","Action":"execute-api:Invoke","Resource":"*"`), "not supported"},
		{"service principal", st(`"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"execute-api:Invoke","Resource":"*"`), "not supported"},
		{"star plus account principal", st(`"Effect":"Allow","Principal":{"AWS":["*","111122223333"]},"Action":"execute-api:Invoke","Resource":"*"`), "not supported"},
		{"not principal", st(`"Effect":"Deny","NotPrincipal":{"AWS":"x"},"Action":"execute-api:Invoke","Resource":"*"`), "NotPrincipal"},
		{"no action", st(`"Effect":"Allow","Principal":"*","Resource":"*"`), "no Action"},
		{"action and notaction", st(base + `,"NotAction":"execute-api:Invoke"`), "both Action and NotAction"},
		{"empty action list", st(`"Effect":"Allow","Principal":"*","Action":[],"Resource":"*"`), "empty list"},
		{"action number", st(`"Effect":"Allow","Principal":"*","Action":5,"Resource":"*"`), "want a string"},
		{"typo action", st(`"Effect":"Deny","Principal":"*","Action":"execute-api:Invok","Resource":"*"`), "unknown execute-api action"},
		{"other service action", st(`"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"`), "not an execute-api action"},
		{"action without service", st(`"Effect":"Allow","Principal":"*","Action":"Invoke","Resource":"*"`), "SERVICE:ACTION"},
		{"no resource", st(`"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke"`), "no Resource"},
		{"resource and notresource", st(base + `,"NotResource":"*"`), "both Resource and NotResource"},
		{"bad resource form", st(`"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"/prod/GET/x"`), `Resource "/prod/GET/x"`},
		{"short form without slash", st(`"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:prod/*"`), "want"},
		{"s3 arn", st(`"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"arn:aws:s3:::bucket/*"`), "not an execute-api resource"},
		{"short arn", st(`"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:x"`), "malformed ARN"},
		{"policy variable", st(`"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/${aws:username}/*"`), "policy variables"},
		{"condition not object", st(base + `,"Condition":[]`), "want an object of operators"},
		{"unknown operator", st(base + `,"Condition":{"IpAdress":{"aws:SourceIp":"1.2.3.4"}}`), `unknown or unsupported operator "IpAdress"`},
		{"numeric operator", st(base + `,"Condition":{"NumericLessThan":{"aws:EpochTime":"1"}}`), `"NumericLessThan"`},
		{"set operator", st(base + `,"Condition":{"ForAnyValue:StringEquals":{"aws:UserAgent":"x"}}`), "set operators"},
		{"unknown key", st(base + `,"Condition":{"StringEquals":{"aws:SourceVpc":"vpc-1"}}`), `unsupported condition key "aws:SourceVpc"`},
		{"ip op on ua", st(base + `,"Condition":{"IpAddress":{"aws:UserAgent":"1.2.3.4"}}`), "aws:SourceIp only"},
		{"string op on ip", st(base + `,"Condition":{"StringEquals":{"aws:SourceIp":"1.2.3.4"}}`), "aws:UserAgent or aws:Referer only"},
		{"bad cidr", st(base + `,"Condition":{"NotIpAddress":{"aws:SourceIp":["192.30.252.0/22","192.30.252.0/33"]}}`), `"192.30.252.0/33"`},
		{"zone in ip", st(base + `,"Condition":{"IpAddress":{"aws:SourceIp":"fe80::1%eth0"}}`), `"fe80::1%eth0"`},
		{"empty values", st(base + `,"Condition":{"IpAddress":{"aws:SourceIp":[]}}`), "empty list"},
		{"no keys", st(base + `,"Condition":{"IpAddress":{}}`), "no condition keys"},
		{"object value", st(base + `,"Condition":{"StringEquals":{"aws:UserAgent":{"a":1}}}`), "want a string"},
		{"null value", st(base + `,"Condition":{"StringEquals":{"aws:UserAgent":null}}`), "want a string"},
		{"bad date", st(base + `,"Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}`), `"tomorrow"`},
		{"bad bool", st(base + `,"Condition":{"Bool":{"aws:SecureTransport":"yes"}}`), `"yes"`},
		{"NullIfExists", st(base + `,"Condition":{"NullIfExists":{"aws:Referer":"true"}}`), "IfExists"},
		{"string with variable", st(base + `,"Condition":{"StringLike":{"aws:Referer":"${aws:SourceIp}"}}`), "policy variables"},
		{"duplicate sid", `{"Statement":[{"Sid":"a",` + base + `},{"Sid":"a",` + base + `}]}`, "Sid repeats"},
		{"sid not string", st(`"Sid":1,` + base), "Sid 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Compile succeeded (%d statements), want error containing %q", p.Statements(), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			var pe *Error
			if !asError(err, &pe) {
				t.Fatalf("error %T is not *Error", err)
			}
		})
	}
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

func TestErrorNamesStatement(t *testing.T) {
	_, err := Compile([]byte(`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},{"Sid":"Bad","Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"Foo":{}}}]}`))
	e, ok := err.(*Error)
	if !ok || e.Statement != 1 || e.Sid != "Bad" {
		t.Fatalf("err = %#v, want statement 1 Sid Bad", err)
	}
	if got := e.Error(); !strings.HasPrefix(got, `resource policy: statement 1 (Sid "Bad"): Condition: unknown`) {
		t.Errorf("Error() = %q", got)
	}
}

func TestNilPolicyAllows(t *testing.T) {
	var p *Policy
	d := p.Evaluate(&Request{Stage: "prod", Method: "GET", Path: "/"})
	if !d.Allowed() || d.Statement != -1 {
		t.Fatalf("nil policy: %+v", d)
	}
	if p.Statements() != 0 {
		t.Error("nil policy has statements")
	}
}

func TestDecisionString(t *testing.T) {
	tests := []struct {
		d    Decision
		want string
	}{
		{Decision{Effect: Allow, Statement: 1}, "allow by statement 1"},
		{Decision{Effect: ExplicitDeny, Statement: 0, Sid: "DenyOthers"}, `explicit deny by statement 0 (Sid "DenyOthers")`},
		{Decision{Effect: ImplicitDeny, Statement: -1}, "implicit deny: no statement allows"},
		{Decision{Effect: Allow, Statement: -1}, "allow: no resource policy"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	d := Decision{Effect: ExplicitDeny}
	if !d.Explicit() || d.Allowed() {
		t.Error("explicit deny flags")
	}
}

func TestARNAndBody(t *testing.T) {
	tests := []struct {
		name                                      string
		region, account, api, stage, method, path string
		explicit                                  bool
		wantARN, wantBody                         string
	}{
		{
			name: "implicit", region: "eu-west-1", account: "123456789012", api: "abc123", stage: "prod", method: "POST", path: "/forward",
			wantARN:  "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/forward",
			wantBody: `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:eu-west-1:********9012:abc123/prod/POST/forward"}`,
		},
		{
			name: "explicit", region: "eu-west-1", account: "123456789012", api: "abc123", stage: "prod", method: "POST", path: "/forward", explicit: true,
			wantARN:  "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/forward",
			wantBody: `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:eu-west-1:********9012:abc123/prod/POST/forward with an explicit deny"}`,
		},
		{
			name: "five-character account keeps its last four", region: "r", account: "12345", api: "i", stage: "prod", method: "GET", path: "/:x:y",
			wantARN:  "arn:aws:execute-api:r:12345:i/prod/GET/:x:y",
			wantBody: `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:r:*2345:i/prod/GET/:x:y"}`,
		},
		{
			name: "four-character account masked whole", region: "r", account: "1234", api: "i", stage: "prod", method: "GET", path: "/",
			wantARN:  "arn:aws:execute-api:r:1234:i/prod/GET/",
			wantBody: `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:r:****:i/prod/GET/"}`,
		},
		{
			name: "root", region: "r", account: "a", api: "i", stage: "prod", method: "GET", path: "/",
			wantARN:  "arn:aws:execute-api:r:a:i/prod/GET/",
			wantBody: `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:r:*:i/prod/GET/"}`,
		},
		{
			name: "escaped path", region: "r", account: "a", api: "i", stage: "prod", method: "GET", path: "/a\"b\\c\n\x01<&>\u2028é\xff",
			wantARN:  "arn:aws:execute-api:r:a:i/prod/GET/a\"b\\c\n\x01<&>\u2028é\xff",
			wantBody: `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:r:*:i/prod/GET/a\"b\\c\n\u0001<&>\u2028é\ufffd"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arn := ARN(tt.region, tt.account, tt.api, tt.stage, tt.method, tt.path)
			if arn != tt.wantARN {
				t.Errorf("ARN = %q, want %q", arn, tt.wantARN)
			}
			if got := string(DenyBody(arn, tt.explicit)); got != tt.wantBody {
				t.Errorf("body = %s\nwant   %s", got, tt.wantBody)
			}
			if !jsonValid(DenyBody(arn, tt.explicit)) {
				t.Error("body is not valid JSON")
			}
		})
	}
	id := Identity{Region: "r", Account: "a", APIID: "i"}
	if got := ARNFor(id, &Request{Stage: "s", Method: "GET", Path: "/x"}); got != "arn:aws:execute-api:r:a:i/s/GET/x" {
		t.Errorf("ARNFor = %q", got)
	}
}

// TestBindMatchesEvaluate: a policy bound to a request's stage, method and
// path decides every request on it as Evaluate does, conditions included.
func TestBindMatchesEvaluate(t *testing.T) {
	docs := map[string][]byte{
		"blog":    readTestdata(t, "blog-policy.json"),
		"awsdoc":  readTestdata(t, "aws-doc-example.json"),
		"notres":  []byte(`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"execute-api:Invoke","NotResource":"execute-api:/*/GET/open"},{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}`),
		"allnot":  []byte(`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","NotResource":"*"}]}`),
		"timeua":  []byte(`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"execute-api:/*/POST/*","Condition":{"StringLike":{"aws:UserAgent":"*bot*"}}},{"Effect":"Allow","Principal":"*","Action":"*","Resource":"execute-api:/prod/*","Condition":{"DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}}]}`),
		"noallow": []byte(`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"execute-api:/*/*/admin/*"}]}`),
	}
	ips := []string{"140.82.112.5", "8.8.8.8", "10.1.2.3", "2606:50c0::1", "::ffff:192.30.252.9"}
	paths := []string{"/", "/forward", "/open", "/hooks/github", "/admin/x", "/a/b"}
	for name, doc := range docs {
		p, err := Compile(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := 0
		for _, stage := range []string{"prod", "dev"} {
			for _, method := range []string{"GET", "POST", "DELETE"} {
				for _, path := range paths {
					b := p.Bind(stage, method, path)
					for _, ipText := range ips {
						for _, ua := range []string{"curl/8", "evilbot/1"} {
							for _, now := range []time.Time{time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)} {
								r := Request{Stage: stage, Method: method, Path: path, SourceIP: ip(ipText), UserAgent: ua, Now: now}
								if got, want := b.Evaluate(&r), p.Evaluate(&r); got != want {
									t.Fatalf("%s %+v: bound %+v, Evaluate %+v", name, r, got, want)
								}
								n++
							}
						}
					}
				}
			}
		}
		t.Logf("%s: %d requests agree", name, n)
	}
	var none *Policy
	if d := none.Bind("prod", "GET", "/").Evaluate(&Request{}); !d.Allowed() {
		t.Fatalf("nil policy bound: %v, want Allow", d)
	}
}

// TestReadsHeaders: only a statement in force with an aws:UserAgent or
// aws:Referer condition makes the policy read the request's headers.
func TestReadsHeaders(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"*"}]}`:                                                                           false,
		`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"execute-api:Invoke","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`:                 false,
		`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"execute-api:Invoke","Resource":"*","Condition":{"StringLike":{"aws:UserAgent":"curl*"}}}]}`:                       true,
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"*","Condition":{"Null":{"aws:Referer":"false"}}}]}`:                              true,
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:referer":"https://a.example/"}}}]}`: true,
	} {
		p, err := Compile([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if got := p.ReadsHeaders(); got != want {
			t.Errorf("%s: ReadsHeaders %v, want %v", doc, got, want)
		}
	}
	if (*Policy)(nil).ReadsHeaders() {
		t.Error("no policy reads headers")
	}
}
