package config

import (
	"crypto/sha256"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const minimal = `routes:
  - path: /forward
    target: http://127.0.0.1:8081/
`

func TestDefaults(t *testing.T) {
	cfg, err := Parse("d.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"stage", cfg.Stage, "prod"},
		{"api", cfg.API, APIREST},
		{"listen", cfg.Listen, ":8080"},
		{"admin", cfg.Admin, "127.0.0.1:9090"},
		{"max body", cfg.Limits.MaxBodyBytes, Int(10485760)},
		{"max header", cfg.Limits.MaxHeaderBytes, Int(65536)},
		{"max body memory", cfg.Limits.MaxBodyMemory, Int(128 << 20)},
		{"read body timeout", cfg.Server.ReadBodyTimeout, Duration(0)},
		{"read header", time.Duration(cfg.Server.ReadHeaderTimeout), 10 * time.Second},
		{"idle", time.Duration(cfg.Server.IdleTimeout), 120 * time.Second},
		{"shutdown", time.Duration(cfg.Server.ShutdownTimeout), 30 * time.Second},
		{"write", time.Duration(cfg.Server.WriteTimeout), 39 * time.Second},
		{"driver", cfg.State.Driver, "embedded"},
		{"state path", cfg.State.Path, "drawbridge.db"},
		{"on error", cfg.State.OnError, OnErrorClosed},
		{"forwarder", cfg.Server.Forwarder, ForwarderLean},
		{"account rate", cfg.AccountThrottle.Rate, Number(10000)},
		{"account burst", cfg.AccountThrottle.Burst, Int(5000)},
		{"stage throttle", cfg.Throttle == nil, true},
		{"route timeout", time.Duration(r.Timeout), 29 * time.Second},
		{"route response", r.Response, ResponsePassthrough},
		{"route delivery", r.Delivery.Mode, DeliverySync},
		{"route methods", strings.Join(r.Methods, ","), strings.Join(AllMethods, ",")},
		{"route line", r.Line, 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].String(), "d.yaml:2: warning: route /forward is open to anyone") {
		t.Errorf("warnings = %v, want one open-route warning at line 2", cfg.Warnings)
	}
}

// TestEnums: the named string types decode from their YAML spelling.
func TestEnums(t *testing.T) {
	y := "api: http\nadmin: \"off\"\nstate: {on_error: open}\nserver: {forwarder: reverseproxy}\nroutes:\n" +
		"  - path: /a\n    target: http://127.0.0.1:1/\n    response: envelope\n    delivery: {mode: async}\n"
	cfg, err := Parse("e.yaml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	if cfg.API != APIHTTP || cfg.Admin != AdminOff || cfg.State.OnError != OnErrorOpen || cfg.Server.Forwarder != ForwarderReverseProxy ||
		r.Response != ResponseEnvelope || r.Delivery.Mode != DeliveryAsync {
		t.Errorf("api %q admin %q on_error %q forwarder %q response %q mode %q", cfg.API, cfg.Admin, cfg.State.OnError, cfg.Server.Forwarder, r.Response, r.Delivery.Mode)
	}
}

// TestTrustedProxiesParsedOnce: Validate keeps the parsed prefixes, IPv4
// in IPv6 unmapped and masked, for the gateway, edge and Lambda adapter.
func TestTrustedProxiesParsedOnce(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte("client_ip: {trusted_proxies: [10.1.2.3/8, \"::ffff:192.0.2.9\", \"2001:db8::1\"]}\n"+minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.9/32"), netip.MustParsePrefix("2001:db8::1/128")}
	if got := cfg.ClientIP.Prefixes(); !slices.Equal(got, want) {
		t.Errorf("Prefixes() = %v, want %v", got, want)
	}
}

// TestTargetURL: Validate keeps each route's target as parsed, and hands
// out copies, so a caller that normalises one cannot change the config.
func TestTargetURL(t *testing.T) {
	cfg, err := Parse("u.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &cfg.Routes[0]
	u := r.TargetURL()
	if u == nil || u.String() != r.Target || u.Host != "127.0.0.1:8081" {
		t.Fatalf("TargetURL() = %v, want %s", u, r.Target)
	}
	u.Path = "/changed"
	if r.TargetURL().Path != "/" {
		t.Error("TargetURL hands out the config's own URL")
	}
	if (&Route{Target: r.Target}).TargetURL() != nil {
		t.Error("TargetURL before Validate is not nil")
	}
}

// TestBodyMemory: the body budget defaults to 128 MiB, or three bodies
// of the maximum size when that is more (a config that raised
// max_body_bytes alone still loads), and read_body_timeout is read.
func TestBodyMemory(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want Int
	}{
		{"", 128 << 20},
		{"limits: {max_body_bytes: 104857600}\n", 300 << 20},
		{"limits: {max_body_bytes: 1024, max_body_memory: 3072}\n", 3072},
	} {
		cfg, err := Parse("b.yaml", []byte(c.yaml+"server: {read_body_timeout: 2s}\n"+minimal), nil)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Limits.MaxBodyMemory != c.want || time.Duration(cfg.Server.ReadBodyTimeout) != 2*time.Second {
			t.Errorf("%q: max_body_memory %d, read_body_timeout %v; want %d, 2s", c.yaml, cfg.Limits.MaxBodyMemory, time.Duration(cfg.Server.ReadBodyTimeout), c.want)
		}
	}
}

// TestWriteTimeout: server.write_timeout defaults to the longest route
// timeout plus WriteTimeoutMargin; one set by hand at or under a route
// timeout is kept but warned about at its line.
func TestWriteTimeout(t *testing.T) {
	routes := "routes:\n  - path: /a\n    target: http://127.0.0.1:8081/\n    timeout: 2s\n" +
		"  - path: /b\n    target: http://127.0.0.1:8081/\n    timeout: 45s\n"
	cfg, err := Parse("w.yaml", []byte(routes), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(cfg.Server.WriteTimeout); got != 55*time.Second {
		t.Errorf("default write_timeout = %v, want 55s", got)
	}
	cfg, err = Parse("w.yaml", []byte("server:\n  write_timeout: 30s\n"+routes), nil)
	if err != nil {
		t.Fatal(err)
	}
	var warned bool
	for _, w := range cfg.Warnings {
		warned = warned || strings.HasPrefix(w.String(), "w.yaml:2: warning: server.write_timeout 30s is not over the longest route timeout (45s)")
	}
	if time.Duration(cfg.Server.WriteTimeout) != 30*time.Second || !warned {
		t.Errorf("write_timeout %v, warnings %v", time.Duration(cfg.Server.WriteTimeout), cfg.Warnings)
	}
}

// TestErrors: every broken config names FILE:LINE and the key.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "stage: prod\nbogus: 1\n" + minimal, `c.yaml:2: unknown field "bogus"`},
		{"unknown route key", "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    tiemout: 1s\n", `c.yaml:4: unknown field "tiemout"`},
		{"string into int", "limits:\n  max_body_bytes: \"12\"\n" + minimal, "c.yaml:2: want an integer, got a string (\"12\")"},
		{"float into int", "limits:\n  max_body_bytes: 1e3\n" + minimal, "c.yaml:2: want an integer, got a string (\"1e3\")"},
		{"fraction into int", "throttle: {rate: 1, burst: 1.5}\n" + minimal, "c.yaml:1: want an integer, got a decimal number"},
		{"string into rate", "throttle: {rate: \"5\", burst: 1}\n" + minimal, "c.yaml:1: want a number, got a string"},
		{"list into string", "stage: [a]\n" + minimal, "c.yaml:1: wrong type: got a list, want a string"},
		{"duplicate key", "stage: a\nstage: b\n" + minimal, `c.yaml:2: mapping key "stage" already defined at [1:1]`},
		{"duplicate route", minimal + "  - path: /forward\n    methods: [post]\n    target: http://127.0.0.1:2/\n", "c.yaml:4: duplicate route POST /forward (first defined at line 2)"},
		{"bare number duration", "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    timeout: 5\n", "c.yaml:4: want a duration such as 1s or 250ms, got an integer"},
		{"bad duration", "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    timeout: 5 s\n", `c.yaml:4: bad duration "5 s"`},
		{"negative duration", "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    timeout: -1s\n", `c.yaml:4: duration "-1s" must be positive`},
		{"zero duration", "server:\n  idle_timeout: 0s\n" + minimal, `c.yaml:2: duration "0s" must be positive`},
		{"async on memory", "state: {driver: memory}\nroutes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    delivery:\n      mode: async\n", "c.yaml:6: routes[0].delivery.mode: async needs state.driver embedded (a memory queue would lose events on restart)"},
		{"async negative concurrency", "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    delivery: {mode: async, concurrency: -1}\n", "c.yaml:4: routes[0].delivery.concurrency must be positive"},
		{"async max below base", "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    delivery:\n      mode: async\n      retry: {base: 1m, max: 1s}\n", "c.yaml:6: routes[0].delivery.retry.max must be at least retry.base"},
		{"unset value_env", "usage_plans: {p: {}}\napi_keys:\n  - name: k\n    plan: p\n    value_env: NOPE_NOT_SET\n" + minimal, "c.yaml:5: api_keys \"k\": environment variable NOPE_NOT_SET is not set"},
		{"unset secret_env", "routes:\n  - path: /h\n    target: http://127.0.0.1:1/\n    verify: {provider: github, secret_env: GH_SECRET_MISSING}\n", "c.yaml:4: routes[0].verify: environment variable GH_SECRET_MISSING is not set or empty"},
		{"unknown plan", "api_keys:\n  - name: k\n    plan: nope\n    sha256: " + strings.Repeat("a", 64) + "\n" + minimal, `c.yaml:3: api_keys "k": unknown usage plan "nope"`},
		{"bad api", "api: soap\n" + minimal, `c.yaml:1: api: "soap" is not one of rest, http`},
		{"bad target", "routes:\n  - path: /a\n    target: ftp://x/\n", "c.yaml:3: routes[0].target: scheme must be http or https"},
		{"missing target", "routes:\n  - path: /a\n", "c.yaml:2: routes[0]: target is required"},
		{"dot segment route", "routes:\n  - path: /a/../b\n    target: http://127.0.0.1:1/\n", `c.yaml:2: routes[0].path "/a/../b": dot segment`},
		{"parameter inside a segment", "routes:\n  - path: /items/x{id}\n    target: http://127.0.0.1:1/\n", `c.yaml:2: routes[0].path "/items/x{id}": segment "x{id}": a parameter is a whole segment`},
		{"greedy not last", "routes:\n  - path: /a/{rest+}/b\n    target: http://127.0.0.1:1/\n", `c.yaml:2: routes[0].path "/a/{rest+}/b": {rest+} must be the last segment`},
		{"template and /*", "routes:\n  - path: /a/{id}/*\n    target: http://127.0.0.1:1/\n", `a path with {parameters} cannot end in /*; end it in {name+} instead`},
		{"parameter twice", "routes:\n  - path: /a/{id}/{id}\n    target: http://127.0.0.1:1/\n", `parameter {id} appears twice`},
		{"empty parameter", "routes:\n  - path: /a/{}\n    target: http://127.0.0.1:1/\n", `segment "{}"`},
		{"same template twice", "routes:\n  - path: /a/{id}\n    target: http://127.0.0.1:1/\n  - path: /a/{name}\n    methods: [GET]\n    target: http://127.0.0.1:2/\n", "c.yaml:4: duplicate route GET /a/{name} (first defined at line 2)"},
		{"no routes", "stage: prod\n", "c.yaml: no routes"},
		{"empty", "", "c.yaml: config is empty"},
		{"syntax", "stage: a\n  bad: indent\n", "c.yaml:1: mapping value is not allowed in this context"},
		{"bad cidr", "ip_sets:\n  office: [\"10.0.0.0/33\"]\n" + minimal, `c.yaml:2: ip_sets.office: "10.0.0.0/33" is not a CIDR`},
		{"unknown ip set", "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    allow_ips: [offfice]\n", `c.yaml:4: routes[0].allow_ips: "offfice" is neither`},
		{"bad on_error", "state: {on_error: ajar}\n" + minimal, `c.yaml:1: state.on_error: "ajar" is not one of closed, open`},
		{"bad forwarder", "server: {forwarder: fast}\n" + minimal, `c.yaml:1: server.forwarder: "fast" is not one of reverseproxy, lean`},
		{"bad response", "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    response: wrapped\n", `c.yaml:4: routes[0].response: "wrapped" is not one of passthrough, envelope`},
		{"bad delivery mode", "routes:\n  - path: /a\n    target: http://127.0.0.1:1/\n    delivery: {mode: later}\n", `c.yaml:4: routes[0].delivery.mode: "later" is not one of sync, async`},
		{"bad quota period", "usage_plans:\n  p:\n    quota: {limit: 5, period: YEAR}\n" + minimal, `c.yaml:3: usage_plans.p.quota.period: "YEAR" is not one of DAY, WEEK, MONTH`},
		{"body memory under 3 bodies", "limits:\n  max_body_memory: 31457279\n" + minimal, "c.yaml:2: limits.max_body_memory must be at least 3 × limits.max_body_bytes (31457280)"},
		{"policy not a doc", "resource_policy: [1]\n" + minimal, "c.yaml:1: resource_policy: want a policy document"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(c.yaml), env(nil))
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T, want *config.Error", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error:\n%s\nwant it to contain:\n%s", err, c.want)
			}
			if strings.Contains(err.Error(), "\n   ") || strings.Contains(err.Error(), "^") {
				t.Errorf("error shows a source excerpt: %s", err)
			}
		})
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const secret = "sup3rs3cretValueThatMustNotLeak"
	y := "usage_plans: {p: {}}\napi_keys:\n  - name: k\n    plan: p\n    value_env: KEY\n  - name: k\n    plan: p\n    value_env: KEY\n" + minimal
	_, err := Parse("c.yaml", []byte(y), env(map[string]string{"KEY": secret}))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v", err)
	}
	cfg, err := Parse("c.yaml", []byte("usage_plans: {p: {}}\napi_keys:\n  - name: k\n    plan: p\n    value_env: KEY\n"+minimal), env(map[string]string{"KEY": secret}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIKeys[0].Digest != sha256.Sum256([]byte(secret)) {
		t.Error("key digest not the SHA-256 of the env value")
	}
}

func TestPolicyForms(t *testing.T) {
	yamlDoc := "resource_policy:\n  Version: \"2012-10-17\"\n  Statement:\n    - Effect: Allow\n      Principal: \"*\"\n      Action: execute-api:Invoke\n      Resource: execute-api:/*/*/forward\n" + minimal
	cfg, err := Parse("c.yaml", []byte(yamlDoc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg.ResourcePolicy), `"Effect":"Allow"`) {
		t.Errorf("policy JSON = %s", cfg.ResourcePolicy)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}]}`), 0o600)
	main := filepath.Join(dir, "drawbridge.yaml")
	os.WriteFile(main, []byte("resource_policy_file: p.json\n"+minimal), 0o600)
	cfg, err = Load(main)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg.ResourcePolicy), `"Effect":"Deny"`) {
		t.Errorf("policy from file = %s", cfg.ResourcePolicy)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("a route under a resource policy is not open to anyone: %v", cfg.Warnings)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml: cannot read config: no such file or directory") {
		t.Fatalf("err = %v", err)
	}
}

func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if _, err := Parse(f, data, func(string) (string, bool) { return "x-test-secret-value-1234567890", true }); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("stage: a\nstage: b\n"))
	f.Add([]byte("resource_policy: '{\"Statement\":[]}'\n" + minimal))
	f.Add([]byte("throttle: {rate: 0.5, burst: 1, max_concurrent: 2}\n" + minimal))
	f.Add([]byte("routes:\n  - path: /hooks/*\n    methods: [post]\n    target: http://127.0.0.1:1/x\n    timeout: 1s\n    verify: {provider: github, secret_env: S}\n"))
	files, _ := filepath.Glob("../../examples/*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data, func(string) (string, bool) { return "secret-value", true })
		if err == nil && len(cfg.Routes) == 0 {
			t.Fatal("config without routes accepted")
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *config.Error", err)
			}
		}
	})
}

// TestKeyFormat: a value_env key outside API Gateway's format could never
// be used (the edge treats it as unknown), so it is a config error, and
// the message names the variable, never the value.
func TestKeyFormat(t *testing.T) {
	yaml := "usage_plans: {p: {}}\napi_keys:\n  - name: k\n    plan: p\n    value_env: K\n" + minimal
	for _, val := range []string{"short1234", "has-dash-0123456789abcdef", strings.Repeat("a", 129)} {
		_, err := Parse("c.yaml", []byte(yaml), env(map[string]string{"K": val}))
		if err == nil || !strings.Contains(err.Error(), `c.yaml:5: api_keys "k": the value of K is not an API key`) {
			t.Errorf("key %q: error %v", val, err)
		} else if strings.Contains(err.Error(), val) {
			t.Errorf("error echoes the key: %v", err)
		}
	}
	if _, err := Parse("c.yaml", []byte(yaml), env(map[string]string{"K": "abcdefghij0123456789"})); err != nil {
		t.Errorf("valid 20-character key: %v", err)
	}
}

// TestLines: Config.Line gives the line a key was set at, its nearest
// parent's when the key is absent, for keys with dots and slashes too
// (usage-plan method overrides), and 0 for a Config built in code.
func TestLines(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(`{"Statement": []}`), 0o644)
	src := "stage: prod\n" + // 1
		"resource_policy_file: p.json\n" + // 2
		"usage_plans:\n" + // 3
		"  gold:\n" + // 4
		"    methods:\n" + // 5
		"      /a/GET: {rate: 1, burst: 1}\n" + // 6
		"      \"/v1.0/POST\":\n" + // 7
		"        rate: 2\n" + // 8
		"        burst: 3\n" + // 9
		"routes:\n" + // 10
		"  - path: /a\n" + // 11
		"    methods: [GET]\n" + // 12
		"    target: http://127.0.0.1:1/\n" + // 13
		"  - path: /v1.0\n" + // 14
		"    target: http://127.0.0.1:1/\n" // 15
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"$.stage":                               1,
		"$.resource_policy":                     2, // read from resource_policy_file
		"$.usage_plans.gold.methods./a/GET":     6,
		"$.usage_plans.gold.methods./v1.0/POST": 8, // a mapping value starts at its first key
		"$.usage_plans.gold.methods./b/GET":     6, // absent: its parent, which starts at its first key
		"$.usage_plans.gold.quota":              5,
		"$.routes[1]":                           14,
		"$.routes[0].methods[0]":                12,
		"$.routes[0].timeout":                   11,
		"$.routes[7].timeout":                   11,
		"$.nothing":                             0,
		"$":                                     0,
	} {
		if got := cfg.Line(path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
	if got := (&Config{}).Line("$.routes[0]"); got != 0 {
		t.Errorf("Config without Lines: %d", got)
	}
}
