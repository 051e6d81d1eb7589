package config

import (
	"strings"
	"testing"
)

func TestAgentsBlockErrors(t *testing.T) {
	env := func(n string) (string, bool) {
		if n == "SHORT" {
			return "short", true
		}
		return "", false
	}
	cases := []struct{ yaml, want string }{
		{"agents:\n  listen: ':8443'\n  tokens: [{name: ci, sha256: " + strings.Repeat("a", 64) + "}]\nroutes:\n  - {path: /x, target: 'http://10.0.0.1/'}\n",
			"e.yaml:2: agents: needs agents.tls or the top-level tls"},
		{"tls: {cert: c, key: k}\nagents:\n  listen: ':8443'\n  tokens:\n    - {name: ci, value_env: SHORT}\nroutes:\n  - {path: /x, target: 'http://10.0.0.1/'}\n",
			"e.yaml:5: agents.tokens \"ci\": environment variable SHORT is not set or shorter than 16 characters"},
		{"tls: {cert: c, key: k}\nagents:\n  listen: ':8443'\n  tokens:\n    - {name: ci, sha256: abc}\nroutes:\n  - {path: /x, target: 'http://10.0.0.1/'}\n",
			"e.yaml:5: agents.tokens \"ci\": sha256 must be 64 hex digits"},
		{"routes:\n  - path: /x\n    target: 'http://10.0.0.1/'\n    via: ci\n",
			"e.yaml:4: routes[0].via \"ci\": no agents: block configures agents"},
		{"tls: {cert: c, key: k}\nagents:\n  listen: ':8443'\n  tokens: [{name: ci, sha256: " + strings.Repeat("a", 64) + "}]\nroutes:\n  - path: /x\n    target: 'http://10.0.0.1/'\n    via: billing\n",
			"e.yaml:8: routes[0].via \"billing\": no agent credential of that name in agents.tokens"},
	}
	for _, c := range cases {
		_, err := Parse("e.yaml", []byte(c.yaml), env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\nerr = %v\nwant %s", c.yaml, err, c.want)
		}
	}
	ok := "tls: {cert: c, key: k}\nagents:\n  listen: ':8443'\n  tokens: [{name: ci, sha256: " + strings.Repeat("a", 64) + "}]\nroutes:\n  - {path: /x, target: 'http://10.0.0.1/', via: ci}\n"
	cfg, err := Parse("e.yaml", []byte(ok), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Routes[0].Via != "ci" || cfg.Agents.Tokens[0].Digest[0] != 0xaa {
		t.Errorf("parsed %+v", cfg.Agents)
	}
	// A websocket route may go through an agent: the tunnel carries the
	// upgrade as one stream (docs/agent.md).
	ws := strings.Replace(ok, "via: ci}", "via: ci, websocket: true}", 1)
	cfg, err = Parse("e.yaml", []byte(ws), env)
	if err != nil || !cfg.Routes[0].WebSocket || cfg.Routes[0].Via != "ci" {
		t.Errorf("websocket via route: err = %v", err)
	}
}

func TestAgentConfigErrors(t *testing.T) {
	env := func(n string) (string, bool) {
		if n == "TOKEN" {
			return "a-token-of-enough-length", true
		}
		return "", false
	}
	cases := []struct{ yaml, want string }{
		{"edge: http://edge:8443\nname: ci\ntoken_env: TOKEN\negress: {allow: ['10.0.0.0/8:80']}\n", "a.yaml:1: edge \"http://edge:8443\": want https://host:port"},
		{"edge: https://edge:8443\nname: 'c i'\ntoken_env: TOKEN\negress: {allow: ['10.0.0.0/8:80']}\n", "a.yaml:2: name \"c i\""},
		{"edge: https://edge:8443\nname: ci\ntoken_env: NOPE\negress: {allow: ['10.0.0.0/8:80']}\n", "a.yaml:3: token_env: environment variable NOPE is not set"},
		{"edge: https://edge:8443\nname: ci\ntoken_env: TOKEN\n", "a.yaml: egress.allow is required"},
		{"edge: https://edge:8443\nname: ci\ntoken_env: TOKEN\nconnections: 0\negress: {allow: ['10.0.0.0/8:80']}\n", ""},
		{"edge: https://edge:8443\nname: ci\ntoken_env: TOKEN\nconnections: 100\negress: {allow: ['10.0.0.0/8:80']}\n", "a.yaml:4: connections must be 1-64"},
		{"edge: https://edge:8443\nname: ci\ntoken_env: TOKEN\nbogus: 1\negress: {allow: ['10.0.0.0/8:80']}\n", "a.yaml:4:"},
	}
	for _, c := range cases {
		cfg, err := ParseAgent("a.yaml", []byte(c.yaml), env)
		if c.want == "" {
			if err != nil || cfg.Connections != DefaultAgentConnections || cfg.Admin != DefaultAgentAdmin || cfg.Token != "a-token-of-enough-length" {
				t.Errorf("%s: err = %v, cfg = %+v", c.yaml, err, cfg)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\nerr = %v\nwant %s", c.yaml, err, c.want)
		}
	}
}
