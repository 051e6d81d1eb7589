package config

import (
	"strings"
	"testing"
	"time"
)

var matchEnv = map[string]string{"GH": "s3cret", "OUT": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}

func parseMatch(yaml string) (*Config, error) {
	return Parse("c.yaml", []byte(yaml), func(n string) (string, bool) { v, ok := matchEnv[n]; return v, ok })
}

// TestRoutingErrors: every broken match, targets, sign, order_by and
// coalesce names FILE:LINE and says why.
func TestRoutingErrors(t *testing.T) {
	const head = "routes:\n  - path: /h\n    verify: {provider: github, secret_env: GH}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"empty match", head + "    target: http://127.0.0.1:1/\n    match: {}\n",
			"c.yaml:5: routes[0].match: name at least one header, json path or query parameter"},
		{"bad json path", head + "    target: http://127.0.0.1:1/\n    match: {json: {a..b: x}}\n",
			`c.yaml:5: routes[0].match.json: "a..b" is not a dotted path`},
		{"bad header name", head + "    target: http://127.0.0.1:1/\n    match:\n      header: {\"X Event\": push}\n",
			`c.yaml:6: routes[0].match.header: "X Event" is not a header name`},
		{"pattern mapping", head + "    target: http://127.0.0.1:1/\n    match:\n      header: {X-Event: {a: b}}\n",
			"c.yaml:6: match: want a pattern (a string) or a list of them, got a mapping"},
		{"sync fan-out", head + "    targets:\n      - {target: http://127.0.0.1:1/}\n      - {target: http://127.0.0.1:2/}\n",
			"c.yaml:5: routes[0]: a sync route answers with its target's response, and a caller can get only one answer: fan out to 2 targets with delivery.mode: async"},
		{"target and targets", head + "    target: http://127.0.0.1:1/\n    targets:\n      - {target: http://127.0.0.1:1/}\n",
			"c.yaml:6: routes[0]: set target or targets, not both"},
		{"bad target in targets", head + "    delivery: {mode: async}\n    targets:\n      - {target: http://127.0.0.1:1/}\n      - {target: \"ftp://x/\"}\n",
			"c.yaml:7: routes[0].targets[1].target: scheme must be http or https"},
		{"duplicate target name", head + "    delivery: {mode: async}\n    targets:\n      - {name: ci, target: http://127.0.0.1:1/}\n      - {name: ci, target: http://127.0.0.1:2/}\n",
			`c.yaml:7: routes[0].targets[1]: duplicate target name "ci"`},
		{"target mode", head + "    delivery: {mode: async}\n    targets:\n      - {target: http://127.0.0.1:1/, delivery: {mode: sync}}\n",
			`c.yaml:6: unknown field "mode"`},
		{"sign scheme", head + "    target: http://127.0.0.1:1/\n    delivery: {sign: {scheme: rsa, secret_env: OUT}}\n",
			`c.yaml:5: routes[0].delivery.sign.scheme: "rsa" is not one of standard, hmac`},
		{"sign secret unset", head + "    target: http://127.0.0.1:1/\n    delivery:\n      sign: {scheme: standard, secret_env: NOPE}\n",
			"c.yaml:6: routes[0].delivery.sign: environment variable NOPE is not set or empty"},
		{"sign hmac without header", head + "    target: http://127.0.0.1:1/\n    delivery:\n      sign: {scheme: hmac, secret_env: OUT}\n",
			"c.yaml:6: routes[0].delivery.sign: scheme hmac needs header (or a verify block with provider hmac to take it from)"},
		{"order_by sync", head + "    target: http://127.0.0.1:1/\n    delivery:\n      order_by: json:ref\n",
			"c.yaml:6: routes[0].delivery.order_by: only async deliveries are ordered"},
		{"order_by form", head + "    target: http://127.0.0.1:1/\n    delivery:\n      mode: async\n      order_by: ref\n",
			`c.yaml:7: routes[0].delivery.order_by: want header:NAME or json:PATH, got "ref"`},
		{"coalesce without order", head + "    target: http://127.0.0.1:1/\n    delivery:\n      mode: async\n      coalesce: latest\n",
			"c.yaml:7: routes[0].delivery.coalesce: needs order_by"},
		{"coalesce value", head + "    target: http://127.0.0.1:1/\n    delivery:\n      mode: async\n      order_by: json:ref\n      coalesce: oldest\n",
			`c.yaml:8: routes[0].delivery.coalesce: "oldest" is not latest`},
		{"sibling without match first", head + "    target: http://127.0.0.1:1/\n  - path: /h\n    verify: {provider: github, secret_env: GH}\n    target: http://127.0.0.1:2/\n",
			"c.yaml:5: duplicate route GET /h (first defined at line 2)"},
		{"sibling guards differ", head + "    target: http://127.0.0.1:1/\n    match: {query: {a: b}}\n  - path: /h\n    target: http://127.0.0.1:2/\n",
			"c.yaml:6: routes[1] shares its path and a method with the route at line 2: a request is checked once, then matched, so both need the same verify, api_key_required, allow_ips, throttle, authorizer and scopes"},
	} {
		_, err := parseMatch(tc.yaml)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %s", tc.name, err, tc.want)
		}
	}
}

// TestLanes: a route's lanes carry each target's URL, match and
// overrides, named path#name (or path#position); a second route on the
// same path gets lanes of its own.
func TestLanes(t *testing.T) {
	cfg, err := parseMatch(`routes:
  - path: /h
    methods: [POST]
    verify: {provider: github, secret_env: GH}
    match: {header: {X-GitHub-Event: [push, pull_request]}, json: {ref: "refs/heads/*"}}
    delivery:
      mode: async
      retry: {max_attempts: 3}
      sign: {scheme: standard, secret_env: OUT}
      order_by: json:repository.full_name
      coalesce: latest
    targets:
      - {target: "http://127.0.0.1:1/ci"}
      - name: chat
        target: http://127.0.0.1:2/notify
        timeout: 3s
        match: {header: {X-GitHub-Event: push}}
        delivery: {retry: {max_attempts: 9}, concurrency: 4, order_by: "header:X-Order"}
  - path: /h
    methods: [POST]
    verify: {provider: github, secret_env: GH}
    target: http://127.0.0.1:3/rest
    delivery: {mode: async}
`)
	if err != nil {
		t.Fatal(err)
	}
	ls := cfg.Routes[0].Lanes()
	if len(ls) != 2 || ls[0].Name != "/h#1" || ls[1].Name != "/h#chat" || ls[0].URL.String() != "http://127.0.0.1:1/ci" {
		t.Fatalf("lanes %+v", ls)
	}
	if ls[0].Retry.MaxAttempts != 3 || ls[0].Sign == nil || string(ls[0].Sign.Secret) != matchEnv["OUT"] || ls[0].OrderBy != "json:repository.full_name" || ls[0].Coalesce != "latest" {
		t.Errorf("first lane does not inherit the route's delivery: %+v", ls[0])
	}
	l := ls[1]
	if l.Retry.MaxAttempts != 9 || l.Concurrency != 4 || time.Duration(l.Timeout) != 3*time.Second || l.OrderBy != "header:X-Order" || l.Coalesce != "latest" || l.Target.Match == nil {
		t.Errorf("chat lane overrides: %+v", l)
	}
	if ls := cfg.Routes[1].Lanes(); len(ls) != 1 || ls[0].Name != "/h@2" {
		t.Errorf("second route on /h: %+v", ls)
	}
	if m := cfg.Routes[0].Match; len(m.Header["X-GitHub-Event"]) != 2 || m.JSON["ref"][0] != "refs/heads/*" {
		t.Errorf("match %+v", m)
	}
}
