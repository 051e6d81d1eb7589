package serverless

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

var update = flag.Bool("update", false, "rewrite .golden files")

const blogKey = "blogTestKey0123456789abcdef"

// keyEnv gives every DRAWBRIDGE_KEY_* variable a key value, as a user
// following the import's instructions would.
func keyEnv(extra map[string]string) config.LookupEnv {
	return func(k string) (string, bool) {
		if v, ok := extra[k]; ok {
			return v, true
		}
		if strings.HasPrefix(k, "DRAWBRIDGE_KEY_") {
			return blogKey, true
		}
		return "", false
	}
}

func loadBlog(t *testing.T) *config.Config {
	t.Helper()
	data, err := os.ReadFile("testdata/blog.yml")
	if err != nil {
		t.Fatal(err)
	}
	im, err := Import("blog.yml", data, keyEnv(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return im.Config
}

func ptr[T any](v T) *T { return &v }

func env(m map[string]string) config.LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// minimal is a drawbridge.yaml, not a serverless.yml.
const minimal = "routes:\n  - path: /forward\n    target: http://127.0.0.1:8081/\n"

// guards is the part of a Config that decides requests: what import and
// export must keep.
type guards struct {
	Stage, API, Region string
	Throttle           *config.Throttle
	Policy             any
	Plans              map[string]config.UsagePlan
	Keys               []config.APIKey
	Routes             []config.Route
	Egress             []string
}

func guardsOf(c *config.Config) guards {
	g := guards{Stage: c.Stage, API: string(c.API), Region: c.AWS.Region, Throttle: c.Throttle, Plans: c.UsagePlans, Egress: c.Egress.Allow}
	if c.ResourcePolicy != "" {
		json.Unmarshal([]byte(c.ResourcePolicy), &g.Policy)
	}
	for _, k := range c.APIKeys {
		k.Line = 0
		g.Keys = append(g.Keys, k)
	}
	for _, r := range c.Routes {
		r.Line = 0
		g.Routes = append(g.Routes, r)
	}
	return g
}

// TestServerlessBlog: the blog's serverless.yml gives the guards that
// drawbridge.yaml writes natively (docs/serverless.md), at the Config
// level.
func TestServerlessBlog(t *testing.T) {
	cfg := loadBlog(t)
	var policy any
	json.Unmarshal([]byte(`{"Version":"2012-10-17","Statement":[
	 {"Effect":"Deny","Principal":"*","Action":"execute-api:Invoke","Resource":["execute-api:/*/*/forward"],
	  "Condition":{"NotIpAddress":{"aws:SourceIp":["192.30.252.0/22","185.199.108.0/22","140.82.112.0/20"]}}},
	 {"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":["execute-api:/*/*/forward"],
	  "Condition":{"IpAddress":{"aws:SourceIp":["192.30.252.0/22","185.199.108.0/22","140.82.112.0/20"]}}}]}`), &policy)
	want := guards{
		Stage: "dev", API: "rest", Region: "eu-west-1",
		Throttle: &config.Throttle{Rate: 100, Burst: 50},
		Policy:   policy,
		Plans: map[string]config.UsagePlan{"global-plan": {
			Quota:    &config.Quota{Limit: 1000, Period: "DAY"},
			Throttle: &config.Throttle{Rate: 50, Burst: 100},
		}},
		Keys: []config.APIKey{{Name: "secret", Plan: "global-plan", ValueEnv: "DRAWBRIDGE_KEY_SECRET", Digest: sha256.Sum256([]byte(blogKey))}},
		Routes: []config.Route{{
			Path: "/forward", Methods: []string{"GET", "HEAD", "POST", "PUT"}, Target: "http://myurl:80",
			Timeout: config.Duration(time.Second), APIKeyRequired: true, Response: "passthrough", Delivery: &config.Delivery{Mode: "sync"},
		}},
	}
	// Compared as JSON: the loaded routes also hold what Validate parsed
	// (their target URLs), which a literal cannot spell.
	gj, _ := json.MarshalIndent(guardsOf(cfg), "", " ")
	wj, _ := json.MarshalIndent(want, "", " ")
	if string(gj) != string(wj) {
		t.Errorf("blog guards:\n%s\nwant:\n%s", gj, wj)
	}
	if cfg.Routes[0].Line != 94 || cfg.APIKeys[0].Line != 22 {
		t.Errorf("lines: route %d, key %d; want 94, 22", cfg.Routes[0].Line, cfg.APIKeys[0].Line)
	}
	// nothing the file asks AWS for is dropped silently
	var warns []string
	for _, w := range cfg.Warnings {
		warns = append(warns, w.String())
	}
	all := strings.Join(warns, "\n")
	for _, want := range []string{
		"blog.yml:4: warning: plugins: serverless-python-requirements: ignored: not needed outside AWS",
		"blog.yml:32: warning: resources: ignored: not needed outside AWS",
		"blog.yml:54: warning: provider.runtime: ignored: not needed outside AWS",
		"blog.yml:89: warning: functions.serverless-proxy.vpc: ignored: not needed outside AWS",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q; got\n%s", want, all)
		}
	}
}

const slsHead = "service: svc\nprovider:\n  name: aws\n"

func slsFn(events string) string {
	return "functions:\n  proxy:\n    environment:\n      URL: http://10.0.0.5:8080/\n    events:\n" + events
}

func importString(t *testing.T, src string, env config.LookupEnv, opts Options) *config.Config {
	t.Helper()
	im, err := Import("s.yml", []byte(src), env, opts)
	if err != nil {
		t.Fatalf("import:\n%s\nerror: %v", src, err)
	}
	return im.Config
}

func TestServerlessVariables(t *testing.T) {
	cases := []struct {
		name   string
		src    string
		env    map[string]string
		opts   Options
		target string
		stage  string
	}{
		{"self", "custom:\n  url: http://10.0.0.9:81/\n", nil, Options{}, "http://10.0.0.9:81/", "dev"},
		{"self nested", "custom:\n  host: 10.0.0.9\n  port: 81\n  url: http://${self:custom.host}:${self:custom.port}/\n", nil, Options{}, "http://10.0.0.9:81/", "dev"},
		{"opt stage default", "custom:\n  stage: ${opt:stage, 'staging'}\n  url: http://${self:custom.stage}.internal/\n", nil, Options{}, "http://staging.internal/", "dev"},
		{"opt stage given", "custom:\n  url: http://${opt:stage, 'staging'}.internal/\n", nil, Options{Stage: "prod"}, "http://prod.internal/", "prod"},
		{"env default", "custom:\n  url: ${env:DB_TEST_BACKEND, 'http://10.0.0.7/'}\n", nil, Options{}, "http://10.0.0.7/", "dev"},
		{"env set", "custom:\n  url: ${env:DB_TEST_BACKEND, 'http://10.0.0.7/'}\n", map[string]string{"DB_TEST_BACKEND": "http://10.0.0.8/"}, Options{}, "http://10.0.0.8/", "dev"},
		{"fallback chain", "custom:\n  url: ${env:DB_NOPE, ${opt:nope, self:custom.fallback}}\n  fallback: http://10.0.0.6/\n", nil, Options{}, "http://10.0.0.6/", "dev"},
		{"unknown source falls back", "custom:\n  url: ${ssm:/backend/url, 'http://10.0.0.4/'}\n", nil, Options{}, "http://10.0.0.4/", "dev"},
		{"variable in address", "custom:\n  urls:\n    dev: http://10.0.0.3/\n  url: ${self:custom.urls.${sls:stage}}\n", nil, Options{}, "http://10.0.0.3/", "dev"},
		{"provider stage", "custom:\n  url: http://${self:provider.stage}.internal/\n", nil, Options{}, "http://dev.internal/", "dev"},
		{"list index", "custom:\n  urls: [http://10.0.0.1/, http://10.0.0.2/]\n  url: ${self:custom.urls.1}\n", nil, Options{}, "http://10.0.0.2/", "dev"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := slsHead + "  stage: ${opt:stage, 'dev'}\n" + c.src +
				"functions:\n  proxy:\n    environment:\n      URL: ${self:custom.url}\n    events:\n      - http: POST forward\n"
			cfg := importString(t, src, env(c.env), c.opts)
			if got := cfg.Routes[0].Target; got != c.target {
				t.Errorf("target = %q, want %q", got, c.target)
			}
			if cfg.Stage != c.stage {
				t.Errorf("stage = %q, want %q", cfg.Stage, c.stage)
			}
		})
	}
}

func TestServerlessVariableErrors(t *testing.T) {
	cases := []struct{ name, custom, want string }{
		{"cycle", "  a: ${self:custom.b}\n  b: ${self:custom.a}\n  url: ${self:custom.a}\n", "s.yml:6: variable cycle: self:custom.a -> self:custom.b -> self:custom.a"},
		{"self cycle", "  url: ${self:custom.url}\n", "s.yml:5: variable cycle: self:custom.url -> self:custom.url"},
		{"unset", "  url: ${env:DB_TEST_UNSET}\n", "s.yml:5: cannot resolve ${env:DB_TEST_UNSET}: env:DB_TEST_UNSET not set"},
		{"missing self", "  url: ${self:custom.nope}\n", "s.yml:5: cannot resolve ${self:custom.nope}"},
		{"unterminated", "  url: ${self:custom.x\n", "s.yml:5: unterminated variable"},
		{"no source", "  url: ${nope}\n", "s.yml:5: ${nope}: nope is neither a quoted default nor source:address (self:, opt:, env:, sls:); write 'nope' in quotes"},
		{"list in text", "  l: [a]\n  url: http://${self:custom.l}/\n", "s.yml:6: variable ${self:custom.l} is used inside text but is not text itself"},
		{"sls other", "  url: ${sls:instanceId}\n", "only sls:stage is known"},
		{"aws source", "  url: ${ssm:/backend/url}\n", "cannot resolve ${ssm:/backend/url}: ssm:/backend/url (answered by AWS or the framework, not here) not set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := slsHead + "custom:\n" + c.custom +
				"functions:\n  proxy:\n    environment:\n      URL: ${self:custom.url}\n    events:\n      - http: POST forward\n"
			_, err := Import("s.yml", []byte(src), nil, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestServerlessVariableBounds: deep chains and exponential fan-out end
// in an error, not in a hang.
func TestServerlessVariableBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString(slsHead + "custom:\n  v0: http://10.0.0.1/\n")
	for i := 1; i <= 40; i++ {
		b.WriteString("  v" + strconv.Itoa(i) + ": ${self:custom.v" + strconv.Itoa(i-1) + "}\n")
	}
	b.WriteString("  url: ${self:custom.v40}\n")
	b.WriteString("functions:\n  proxy:\n    environment:\n      URL: ${self:custom.url}\n    events:\n      - http: POST forward\n")
	_, err := Import("s.yml", []byte(b.String()), nil, Options{})
	if err == nil || !strings.Contains(err.Error(), "nested more than 16 deep") {
		t.Errorf("deep chain: %v", err)
	}

	b.Reset()
	b.WriteString(slsHead + "custom:\n  v0: x\n")
	for i := 1; i <= 14; i++ {
		v := "${self:custom.v" + strconv.Itoa(i-1) + "}"
		b.WriteString("  v" + strconv.Itoa(i) + ": " + v + v + v + "\n")
	}
	b.WriteString("functions:\n  proxy:\n    environment:\n      URL: ${self:custom.v14}\n    events:\n      - http: POST forward\n")
	// The work is measured in memory, which the machine's load and the
	// race detector leave alone (a wall-clock bound failed under both):
	// the bounded resolve allocates about 105 MB in 2.9 million objects,
	// one level more of fan-out would be three times that.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Import("s.yml", []byte(b.String()), nil, Options{})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "too much work") {
		t.Errorf("fan-out: %v", err)
	}
	if mb, n := (after.TotalAlloc-before.TotalAlloc)>>20, after.Mallocs-before.Mallocs; mb > 256 || n > 8_000_000 {
		t.Errorf("fan-out allocated %d MB in %d objects", mb, n)
	}
}

// TestServerlessThrottling: the plugin's stage settings and per-endpoint
// throttling (both spellings of acceptance 2), inheritance and disabled.
func TestServerlessThrottling(t *testing.T) {
	src := slsHead + "plugins: [serverless-api-gateway-throttling]\n" +
		"custom:\n  apiGatewayThrottling:\n    maxRequestsPerSecond: 100\n    maxConcurrentRequests: 50\n" +
		slsFn("      - http: {path: a, method: get}\n"+
			"      - http: {path: b, method: get, throttling: {maxRequestsPerSecond: 7, maxConcurrentRequests: 3}}\n"+
			"      - http: {path: c, method: get, throttling: {maxConcurrentRequests: 9}}\n"+
			"      - http: {path: d, method: get, throttling: {disabled: true}}\n")
	cfg := importString(t, src, nil, Options{})
	if *cfg.Throttle != (config.Throttle{Rate: 100, Burst: 50}) {
		t.Errorf("stage throttle = %+v", *cfg.Throttle)
	}
	want := map[string]*config.Throttle{
		"/a": nil,
		"/b": {Rate: 7, Burst: 3},
		"/c": {Rate: 100, Burst: 9},
		"/d": {Rate: config.DefaultAccountRate, Burst: config.DefaultAccountBurst},
	}
	for _, r := range cfg.Routes {
		if !reflect.DeepEqual(r.Throttle, want[r.Path]) {
			t.Errorf("%s throttle = %+v, want %+v", r.Path, r.Throttle, want[r.Path])
		}
	}
	// without the stage block, the plugin's defaults fill the gaps
	cfg = importString(t, slsHead+"plugins: [serverless-api-gateway-throttling]\n"+
		slsFn("      - http: {path: c, method: get, throttling: {maxRequestsPerSecond: 5}}\n"), nil, Options{})
	if cfg.Throttle != nil || *cfg.Routes[0].Throttle != (config.Throttle{Rate: 5, Burst: 5000}) {
		t.Errorf("defaults: stage %+v, route %+v", cfg.Throttle, cfg.Routes[0].Throttle)
	}
}

// TestServerlessKeys: serverless-add-api-key's custom.apiKeys and the
// framework's provider.apiGateway.apiKeys/usagePlan (both spellings of
// acceptance 2), and how each kind of key value is kept out of the config.
func TestServerlessKeys(t *testing.T) {
	literal := "literalKeyValue0123456789"
	digest := sha256.Sum256([]byte(literal))
	envKey := sha256.Sum256([]byte("fromEnv0123456789abcdef"))
	gen := sha256.Sum256([]byte(blogKey))
	cases := []struct {
		name  string
		src   string
		plans map[string]config.UsagePlan
		keys  []config.APIKey
		warn  string
	}{
		{
			name: "plugin list",
			src: "plugins: [serverless-add-api-key]\ncustom:\n  apiKeys:\n" +
				"    - name: a\n      usagePlan: {name: p, quota: {limit: 10, period: week, offset: 2}, throttle: {burstLimit: 4, rateLimit: 2.5}}\n" +
				"    - name: b\n      value: ${env:DB_TEST_KEY}\n      usagePlan: {name: p}\n" +
				"    - name: c\n      value: " + literal + "\n",
			plans: map[string]config.UsagePlan{
				"p":            {Quota: &config.Quota{Limit: 10, Period: "WEEK", Offset: 2}, Throttle: &config.Throttle{Rate: 2.5, Burst: 4}},
				"c-usage-plan": {},
			},
			keys: []config.APIKey{
				{Name: "a", Plan: "p", ValueEnv: "DRAWBRIDGE_KEY_A", Digest: gen},
				{Name: "b", Plan: "p", ValueEnv: "DB_TEST_KEY", Digest: envKey},
				{Name: "c", Plan: "c-usage-plan", SHA256: hexOf(digest), Digest: digest},
			},
			warn: "s.yml:13: warning: custom.apiKeys[2].value: the key is written in the file",
		},
		{
			name: "plugin per stage with provider plan",
			src: "  usagePlan: {name: def, quota: {limit: 5, period: DAY}}\nplugins: [serverless-add-api-key]\ncustom:\n  apiKeys:\n" +
				"    prod:\n      - name: x\n    dev:\n      - name: my-key\n",
			plans: map[string]config.UsagePlan{"def": {Quota: &config.Quota{Limit: 5, Period: "DAY"}}},
			keys:  []config.APIKey{{Name: "my-key", Plan: "def", ValueEnv: "DRAWBRIDGE_KEY_MY_KEY", Digest: gen}},
		},
		{
			name: "native single plan",
			src: "  apiGateway:\n    apiKeys:\n      - first\n      - name: second\n        value: ${env:DB_TEST_KEY}\n        enabled: false\n" +
				"    usagePlan:\n      quota: {limit: 1000, period: DAY}\n      throttle: {burstLimit: 100, rateLimit: 50}\n",
			plans: map[string]config.UsagePlan{"svc-dev": {Quota: &config.Quota{Limit: 1000, Period: "DAY"}, Throttle: &config.Throttle{Rate: 50, Burst: 100}}},
			keys: []config.APIKey{
				{Name: "first", Plan: "svc-dev", ValueEnv: "DRAWBRIDGE_KEY_FIRST", Digest: gen},
				{Name: "second", Plan: "svc-dev", ValueEnv: "DB_TEST_KEY", Enabled: ptr(false), Digest: envKey},
			},
		},
		{
			name: "native plans",
			src: "  apiGateway:\n    apiKeys:\n      - free: [f1]\n      - paid:\n          - name: p1\n            value: " + literal + "\n" +
				"    usagePlan:\n      - free: {quota: {limit: 10, period: DAY}}\n      - paid: {throttle: {burstLimit: 9, rateLimit: 8}}\n",
			plans: map[string]config.UsagePlan{"free": {Quota: &config.Quota{Limit: 10, Period: "DAY"}}, "paid": {Throttle: &config.Throttle{Rate: 8, Burst: 9}}},
			keys: []config.APIKey{
				{Name: "f1", Plan: "free", ValueEnv: "DRAWBRIDGE_KEY_F1", Digest: gen},
				{Name: "p1", Plan: "paid", SHA256: hexOf(digest), Digest: digest},
			},
		},
		{
			name:  "native keys without plan",
			src:   "  apiGateway:\n    apiKeys: [solo]\n",
			plans: map[string]config.UsagePlan{"svc-dev": {}},
			keys:  []config.APIKey{{Name: "solo", Plan: "svc-dev", ValueEnv: "DRAWBRIDGE_KEY_SOLO", Digest: gen}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := slsHead + c.src + slsFn("      - http: {path: forward, method: post, private: true}\n")
			cfg := importString(t, src, keyEnv(map[string]string{"DB_TEST_KEY": "fromEnv0123456789abcdef"}), Options{})
			g := guardsOf(cfg)
			if !reflect.DeepEqual(g.Plans, c.plans) {
				gj, _ := json.Marshal(g.Plans)
				wj, _ := json.Marshal(c.plans)
				t.Errorf("plans %s, want %s", gj, wj)
			}
			if !reflect.DeepEqual(g.Keys, c.keys) {
				t.Errorf("keys %+v\nwant %+v", g.Keys, c.keys)
			}
			var all []string
			for _, w := range cfg.Warnings {
				all = append(all, w.String())
				if strings.Contains(w.String(), literal) {
					t.Errorf("warning shows the key: %s", w)
				}
			}
			if c.warn != "" && !strings.Contains(strings.Join(all, "\n"), c.warn) {
				t.Errorf("warnings %q lack %q", all, c.warn)
			}
			if !cfg.Routes[0].APIKeyRequired {
				t.Error("private: true did not require a key")
			}
		})
	}
}

func hexOf(b [32]byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 64)
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// TestServerlessHTTPAPI: httpApi events make an api: http config, with
// the string forms and the catch-all.
func TestServerlessHTTPAPI(t *testing.T) {
	src := slsHead + slsFn(
		"      - httpApi:\n          path: /forward\n          method: get\n"+
			"      - httpApi: POST /forward\n"+
			"      - httpApi: 'GET /files/{proxy+}'\n"+
			"      - httpApi: '*'\n")
	cfg := importString(t, src, nil, Options{})
	if cfg.API != "http" {
		t.Errorf("api = %q, want http", cfg.API)
	}
	got := map[string]string{}
	for _, r := range cfg.Routes {
		got[r.Path] = strings.Join(r.Methods, ",")
	}
	want := map[string]string{"/forward": "GET,POST", "/files/*": "GET", "/*": strings.Join(config.AllMethods, ",")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("routes %v, want %v", got, want)
	}
	if cfg.Routes[0].APIKeyRequired {
		t.Error("httpApi route requires a key")
	}
}

// TestServerlessTimeouts: function, provider, framework default, and API
// Gateway's cap.
func TestServerlessTimeouts(t *testing.T) {
	cases := []struct {
		name, provider, fn string
		want               time.Duration
	}{
		{"function", "", "    timeout: 3\n", 3 * time.Second},
		{"provider", "  timeout: 10\n", "", 10 * time.Second},
		{"framework default", "", "", 6 * time.Second},
		{"capped", "", "    timeout: 900\n", 29 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := slsHead + c.provider + "functions:\n  proxy:\n" + c.fn +
				"    environment:\n      URL: http://10.0.0.5/\n    events:\n      - http: POST forward\n"
			cfg := importString(t, src, nil, Options{})
			if got := time.Duration(cfg.Routes[0].Timeout); got != c.want {
				t.Errorf("timeout = %s, want %s", got, c.want)
			}
		})
	}
}

// TestServerlessMalformed: broken serverless.yml files give FILE:LINE
// errors, pinned in testdata/bad/*.golden (go test -update).
func TestServerlessMalformed(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yml")
	if len(files) < 5 {
		t.Fatalf("only %d malformed files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Import(filepath.Base(f), data, keyEnv(nil), Options{})
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want *config.Error", err, err)
			}
			for _, p := range ce.Problems {
				if p.Line == 0 {
					t.Errorf("problem without a line: %s", p)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yml") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if got != string(want) {
				t.Errorf("got:\n%swant:\n%s", got, want)
			}
		})
	}
}

// TestServerlessCheckedLikeNative: values that come from serverless.yml
// go through the same validator as drawbridge.yaml.
func TestServerlessCheckedLikeNative(t *testing.T) {
	src := slsHead + "functions:\n  a:\n    environment:\n      URL: http://10.0.0.5/\n    events:\n      - http: POST forward\n" +
		"  b:\n    environment:\n      URL: http://10.0.0.6/\n    events:\n      - http: POST forward\n"
	_, err := Import("s.yml", []byte(src), nil, Options{})
	if err == nil || !strings.Contains(err.Error(), "s.yml:14: duplicate route POST /forward (first defined at line 9)") {
		t.Errorf("error = %v", err)
	}
}

func TestDetect(t *testing.T) {
	blog, _ := os.ReadFile("testdata/blog.yml")
	for _, c := range []struct {
		data string
		want bool
	}{{string(blog), true}, {minimal, false}, {"service: x\n", true}, {"[", false}, {"", false}} {
		if got := Detect([]byte(c.data)); got != c.want {
			t.Errorf("Detect(%.20q) = %v", c.data, got)
		}
	}
}

// FuzzServerless: no serverless.yml crashes or hangs the loader, and
// every failure is a *config.Error.
func FuzzServerless(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	bad, _ := filepath.Glob("testdata/bad/*.yml")
	for _, file := range append(files, bad...) {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(slsHead + "custom:\n  a: &a {x: ${self:custom.b}}\n  b: *a\n" + slsFn("      - http: POST forward\n")))
	f.Add([]byte(slsHead + slsFn("      - httpApi: '*'\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Import("f.yml", data, keyEnv(nil), Options{})
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *config.Error", err)
			}
			return
		}
		if len(cfg.Config.Routes) == 0 {
			t.Fatal("config without routes accepted")
		}
	})
}

// TestNativeRoundTrip: `drawbridge import`'s drawbridge.yaml loads into
// the same Config as the serverless.yml it came from.
func TestNativeRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yml")
	extra := []string{
		slsHead + "plugins: [serverless-api-gateway-throttling]\ncustom:\n  apiGatewayThrottling: {maxRequestsPerSecond: 2.5}\n" +
			slsFn("      - http: {path: 'files/{proxy+}', method: any, throttling: {maxConcurrentRequests: 3}}\n"),
		slsHead + "  apiGateway:\n    apiKeys:\n      - free: [f1]\n      - paid: [{name: p1, value: literalKeyValue0123456789, enabled: false}]\n" +
			"    usagePlan:\n      - free: {quota: {limit: 10, period: DAY, offset: 3}}\n      - paid: {}\n" +
			slsFn("      - http: {path: forward, method: post, private: true}\n"),
		slsHead + slsFn("      - httpApi: '*'\n"),
		slsHead + slsFn("      - http: GET items/{id}\n      - http: {path: 'files/{key}/{rest+}', method: get}\n"),
		slsHead + "custom:\n  drawbridge:\n    listen: 127.0.0.1:0\n    admin: \"off\"\n    client_ip: {trusted_proxies: [10.0.0.0/8]}\n" +
			"    limits: {max_body_bytes: 1000}\n    server: {idle_timeout: 5s}\n    state: {driver: memory}\n" +
			"    account_throttle: {rate: 9, burst: 8}\n    egress: {allow: [\"10.0.0.5/32:8080\"]}\n    ip_sets: {office: [203.0.113.0/24]}\n" +
			slsFn("      - http: POST forward\n"),
	}
	var srcs [][]byte
	for _, f := range files {
		data, _ := os.ReadFile(f)
		srcs = append(srcs, data)
	}
	for _, e := range extra {
		srcs = append(srcs, []byte(e))
	}
	for i, src := range srcs {
		im, err := Import("s.yml", src, keyEnv(nil), Options{})
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		native := im.Native("s.yml")
		back, err := config.Parse("native.yaml", native, keyEnv(nil))
		if err != nil {
			t.Fatalf("%d: native config does not load: %v\n%s", i, err, native)
		}
		a, b := *im.Config, *back
		a.File, b.File, a.Warnings, b.Warnings = "", "", nil, nil
		a.Egress.Lines, b.Egress.Lines = nil, nil // where each rule sits in its own file
		a.Lines, b.Lines = nil, nil
		for _, c := range []*config.Config{&a, &b} {
			for _, az := range c.Authorizers {
				az.Line = 0 // where each sits in its own file
			}
		}
		a.APIKeys, b.APIKeys = guardsOf(&a).Keys, guardsOf(&b).Keys
		a.Routes, b.Routes = guardsOf(&a).Routes, guardsOf(&b).Routes
		if !reflect.DeepEqual(a, b) {
			aj, _ := json.MarshalIndent(a, "", " ")
			bj, _ := json.MarshalIndent(b, "", " ")
			t.Errorf("%d: native config differs:\n%s\nimported:\n%s\nnative:\n%s", i, native, aj, bj)
		}
	}
}

// TestServerlessDrawbridgeKeys: custom.drawbridge carries drawbridge's own
// keys, checked as strictly as in drawbridge.yaml.
func TestServerlessDrawbridgeKeys(t *testing.T) {
	cfg := importString(t, slsHead+"custom:\n  drawbridge:\n    listen: 127.0.0.1:0\n    state: {driver: memory}\n    egress: {allow: [\"10.0.0.5/32:8080\"]}\n"+
		slsFn("      - http: POST forward\n"), nil, Options{})
	if cfg.Listen != "127.0.0.1:0" || cfg.State.Driver != "memory" || cfg.Egress.Allow[0] != "10.0.0.5/32:8080" || cfg.Admin != config.DefaultAdmin {
		t.Errorf("listen %q, state %q, egress %v, admin %q", cfg.Listen, cfg.State.Driver, cfg.Egress.Allow, cfg.Admin)
	}
	cfg = importString(t, slsHead+"custom:\n  port: 9191\n  drawbridge:\n    listen: 127.0.0.1:${self:custom.port}\n    limits:\n      max_body_bytes: ${env:DB_TEST_MAX, 2048}\n"+
		slsFn("      - http: POST forward\n"), nil, Options{})
	if cfg.Listen != "127.0.0.1:9191" || cfg.Limits.MaxBodyBytes != 2048 {
		t.Errorf("with variables: listen %q, max body %d", cfg.Listen, cfg.Limits.MaxBodyBytes)
	}
	for _, c := range []struct{ custom, want string }{
		{"    lisen: ${opt:stage, 'x'}\n", `s.yml:6: custom.drawbridge: unknown field "lisen"`},
		{"    lisen: x\n", `s.yml:6: custom.drawbridge: unknown field "lisen"`},
		{"    state: {driver: disk}\n", `s.yml:6: state.driver: "disk" is not one of memory, embedded, redis`},
		{"    routes: []\n", `s.yml:6: custom.drawbridge: unknown field "routes"`},
		// with variables the block is resolved, then decoded as drawbridge.yaml
		{"    server:\n      idle_timeout: ${env:DBX, 5}\n", "s.yml:6: custom.drawbridge: want a duration such as 1s or 250ms, got an integer"},
		{"    server:\n      idle_timeout: ${env:DBX, 'five'}\n", `s.yml:6: custom.drawbridge: bad duration "five": want a Go duration such as 1s or 250ms`},
		{"    limits:\n      max_body_bytes: ${env:DBX, 1.5}\n", `s.yml:6: custom.drawbridge: want an integer, got a decimal number ("1.5")`},
		{"    ip_sets:\n      a: ${env:DBX, 'x'}\n", "s.yml:6: custom.drawbridge: string was used where sequence is expected"},
		{"    state: ${env:DBX, 'x'}\n", "s.yml:6: custom.drawbridge: string was used where mapping is expected"},
	} {
		_, err := Import("s.yml", []byte(slsHead+"custom:\n  drawbridge:\n"+c.custom+slsFn("      - http: POST forward\n")), nil, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.custom, err, c.want)
		}
	}
}

// TestNativeWithoutSecrets: import works before the keys are in the
// environment and writes only the variables' names.
func TestNativeWithoutSecrets(t *testing.T) {
	data, _ := os.ReadFile("testdata/blog.yml")
	im, err := Import("blog.yml", data, nil, Options{WithoutSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	if im.Config.APIKeys[0].Digest != ([32]byte{}) {
		t.Error("digest of a placeholder kept")
	}
	out := string(im.Native("blog.yml"))
	for _, want := range []string{
		`value_env: "DRAWBRIDGE_KEY_SECRET"  # AWS generated this key: put its value in this variable`,
		`throttle: {rate: 100, burst: 50}  # custom.apiGatewayThrottling (blog.yml:18)`,
		`timeout: 1s  # functions.serverless-proxy.timeout (blog.yml:86)`,
		`#   functions.serverless-proxy.vpc: ignored: not needed outside AWS (blog.yml:89)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("native config lacks %q:\n%s", want, out)
		}
	}
}

// importForm imports testdata/forms/NAME with env, failing on error.
func importForm(t *testing.T, name string, e map[string]string) *config.Config {
	t.Helper()
	f := filepath.Join("testdata", "forms", name)
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	im, err := Import(f, data, keyEnv(e), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return im.Config
}

func warned(c *config.Config, substr string) bool {
	for _, w := range c.Warnings {
		if strings.Contains(w.String(), substr) {
			return true
		}
	}
	return false
}

// TestServerlessPathParameters: {id} parameters, several per path and
// with a last {name+}, become drawbridge path templates; a path whose
// only parameter is a last {proxy+} stays a prefix route; one
// provider.environment.URL serves every function.
func TestServerlessPathParameters(t *testing.T) {
	c := importForm(t, "params.yml", nil)
	var got []string
	for _, r := range c.Routes {
		got = append(got, strings.Join(r.Methods, ",")+" "+r.Path+" -> "+r.Target)
	}
	want := []string{
		"GET /items/{id} -> http://10.0.0.5:8080/api/",
		"DELETE /users/{uid}/posts/{pid} -> http://10.0.0.5:8080/api/",
		"GET /files/{key}/{rest+} -> http://10.0.0.5:8080/api/",
		strings.Join(config.AllMethods, ",") + " /static/* -> http://10.0.0.5:8080/api/",
		"GET / -> http://10.0.0.5:8080/api/",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("routes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestServerlessFileVariables: ${file(x.yml):key} and ${file(x.json)} are
// read relative to the serverless.yml; a missing file takes the fallback.
func TestServerlessFileVariables(t *testing.T) {
	c := importForm(t, "file-vars.yml", nil)
	if c.Stage != "prod" || c.AWS.Region != "eu-west-1" {
		t.Errorf("stage %q region %q, want prod eu-west-1 from vars.yml", c.Stage, c.AWS.Region)
	}
	if len(c.Routes) != 1 || c.Routes[0].Target != "http://10.0.0.7:9000/" {
		t.Fatalf("routes %+v, want the target from vars.json", c.Routes)
	}
	if got := time.Duration(c.Routes[0].Timeout); got != 10*time.Second {
		t.Errorf("timeout %v, want the fallback 10s", got)
	}
}

// TestServerlessV2Keys: provider.apiKeys and provider.usagePlan, where
// Serverless v1 and v2 read them, are read with a warning.
func TestServerlessV2Keys(t *testing.T) {
	c := importForm(t, "v2-keys.yml", map[string]string{"PAID_KEY": "paidKey0123456789abcdefgh"})
	if !warned(c, "provider.apiKeys: read as Serverless v1 and v2 read it") {
		t.Errorf("no warning about provider.apiKeys: %v", c.Warnings)
	}
	plans := map[string]string{}
	for _, k := range c.APIKeys {
		plans[k.Name] = k.Plan
	}
	if !reflect.DeepEqual(plans, map[string]string{"freeKey": "free", "paidKey": "paid"}) {
		t.Errorf("keys by plan %v", plans)
	}
	if q := c.UsagePlans["free"].Quota; q == nil || q.Limit != 5 {
		t.Errorf("free plan %+v", c.UsagePlans["free"])
	}
	if th := c.UsagePlans["paid"].Throttle; th == nil || th.Burst != 20 {
		t.Errorf("paid plan %+v", c.UsagePlans["paid"])
	}
	if k := c.APIKeys[1]; k.ValueEnv != "PAID_KEY" {
		t.Errorf("paid key value_env %q", k.ValueEnv)
	}
}

// TestServerlessValueOnlyKey: a key written only as "- value: ..." is a
// key (named after its plan and place), not a usage plan named "value".
func TestServerlessValueOnlyKey(t *testing.T) {
	c := importForm(t, "value-key.yml", map[string]string{"ONLY_VALUE_KEY": "onlyValue0123456789abcdef"})
	if len(c.APIKeys) != 2 {
		t.Fatalf("keys %+v", c.APIKeys)
	}
	k := c.APIKeys[0]
	if k.Name != "svc-dev-key1" || k.ValueEnv != "ONLY_VALUE_KEY" || k.Plan != "svc-dev" {
		t.Errorf("value-only key %+v", k)
	}
	if !warned(c, "the key has no name; it is called svc-dev-key1") {
		t.Errorf("no warning naming the key: %v", c.Warnings)
	}
	if c.APIKeys[1].Name != "named" {
		t.Errorf("second key %+v", c.APIKeys[1])
	}
}
