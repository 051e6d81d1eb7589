package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/serverless"
)

const testKey = "exportTestKey0123456789abcdef"

var update = flag.Bool("update", false, "rewrite testdata/sam-*.yaml")

func testEnv(name string) (string, bool) {
	switch {
	case strings.HasPrefix(name, "DRAWBRIDGE_KEY_"), name == "PARTNER_KEY", name == "GITHUB_SECRET":
		return testKey, true
	}
	return "", false
}

func loadBlog(t *testing.T) *config.Config {
	t.Helper()
	data, err := os.ReadFile("testdata/blog-serverless.yml")
	if err != nil {
		t.Fatal(err)
	}
	im, err := serverless.Import("blog-serverless.yml", data, testEnv, serverless.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return im.Config
}

// rich uses what the blog does not: egress.allow (IPv4 and IPv6), route
// throttles, a prefix route with every method, a plan with method
// throttles, a key known by its SHA-256, a webhook route.
const rich = `stage: prod
egress:
  allow: ["10.0.0.0/24:80,443", "[2001:db8::/32]:8443"]
throttle: {rate: 100, burst: 50}
resource_policy:
  Version: "2012-10-17"
  Statement:
    - Effect: Allow
      Principal: "*"
      Action: execute-api:Invoke
      Resource: execute-api:/*/*/*
usage_plans:
  gold:
    quota: {limit: 500, period: WEEK, offset: 5}
    throttle: {rate: 10.5, burst: 20}
    methods:
      "/orders/POST": {rate: 1, burst: 2}
api_keys:
  - name: partner
    plan: gold
    value_env: PARTNER_KEY
  - name: legacy
    sha256: "0000000000000000000000000000000000000000000000000000000000000000"
routes:
  - path: /orders
    methods: [POST]
    target: http://10.0.0.5:80/orders
    timeout: 3s
    api_key_required: true
    throttle: {rate: 5, burst: 10, max_concurrent: 4}
  - path: /files/*
    target: https://10.0.0.6/
    timeout: 10s
  - path: /hooks/github
    methods: [POST]
    target: http://10.0.0.7:8080/
    verify: {provider: github, secret_env: GITHUB_SECRET}
    delivery: {mode: async}
`

func loadRich(t *testing.T, api string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("rich.yaml", []byte("api: "+api+"\n"+rich), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// bare is what rich is not: no stage throttle, no resource policy, no
// usage plan (a disabled key known by its SHA-256 gets the keyless plan),
// literal IPv4 and IPv6 targets as the egress rules.
const bare = `stage: v1
api_keys:
  - {name: old, sha256: "1111111111111111111111111111111111111111111111111111111111111111", enabled: false}
routes:
  - path: /a
    methods: [GET]
    target: http://192.0.2.10:8080/
  - path: /b/*
    methods: [PUT, DELETE]
    target: https://[2001:db8::5]/b/
    timeout: 2500ms
`

// samCases are the configs every SAM test exports: each is pinned byte
// for byte in testdata/sam-NAME.yaml and passed through cfn-lint.
func samCases(t *testing.T) map[string]*config.Config {
	t.Helper()
	cases := map[string]*config.Config{"blog": loadBlog(t), "rich": loadRich(t, "rest"), "rich-http": loadRich(t, "http"), "authz-http": loadAuthz(t)}
	for _, api := range []string{"rest", "http"} {
		cfg, err := config.Parse("bare.yaml", []byte("api: "+api+"\n"+bare), testEnv)
		if err != nil {
			t.Fatal(err)
		}
		cases["bare-"+api] = cfg
	}
	return cases
}

// TestSAMGolden pins the exported templates byte for byte (go test
// -update rewrites them): the typed resources in sam.go must write what
// cfn-lint accepted, and a reviewer sees every change to the output.
func TestSAMGolden(t *testing.T) {
	for name, cfg := range samCases(t) {
		got, err := SAM(cfg)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join("testdata", "sam-"+name+".yaml")
		if *update {
			if err := os.WriteFile(file, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: SAM output differs from %s (go test -update rewrites it):\n%s", name, file, got)
		}
	}
}

func samDoc(t *testing.T, cfg *config.Config) (map[string]any, []byte) {
	t.Helper()
	out, err := SAM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("SAM output is not YAML: %v\n%s", err, out)
	}
	return doc, out
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestSAMBlog: the blog's guards as API Gateway resources.
func TestSAMBlog(t *testing.T) {
	doc, out := samDoc(t, loadBlog(t))
	res := doc["Resources"].(map[string]any)
	checks := []struct {
		name string
		got  any
		want string
	}{
		{"runtime", dig(res, "Drawbridge", "Properties", "Runtime"), `"provided.al2023"`},
		{"memory", dig(res, "Drawbridge", "Properties", "MemorySize"), `512`},
		{"timeout", dig(res, "Drawbridge", "Properties", "Timeout"), `1`},
		{"handler", dig(res, "Drawbridge", "Properties", "Handler"), `"bootstrap"`},
		{"subnets", dig(res, "Drawbridge", "Properties", "VpcConfig", "SubnetIds"), `{"Ref":"SubnetIds"}`},
		{"vpc param", dig(doc, "Parameters", "VpcId", "Type"), `"AWS::EC2::VPC::Id"`},
		{"key required", dig(res, "Drawbridge", "Properties", "Events", "Route0Post", "Properties", "Auth"), `{"ApiKeyRequired":true}`},
		{"stage throttle", dig(res, "Api", "Properties", "MethodSettings"), `[{"HttpMethod":"*","ResourcePath":"/*","ThrottlingBurstLimit":50,"ThrottlingRateLimit":100}]`},
		{"quota", dig(res, "UsagePlan1", "Properties", "Quota"), `{"Limit":1000,"Period":"DAY"}`},
		{"plan throttle", dig(res, "UsagePlan1", "Properties", "Throttle"), `{"BurstLimit":100,"RateLimit":50}`},
		{"plan stage", dig(res, "UsagePlan1", "Properties", "ApiStages"), `[{"ApiId":{"Ref":"Api"},"Stage":{"Ref":"Api.Stage"}}]`},
		{"key value", dig(res, "ApiKey1", "Properties", "Value"), `{"Ref":"DrawbridgeKeySecret"}`},
		{"key secret param", dig(doc, "Parameters", "DrawbridgeKeySecret", "NoEcho"), `true`},
		// the blog's target is a host name: its address is a parameter,
		// never 0.0.0.0/0 as the original security group had
		{"egress", dig(res, "SecurityGroup", "Properties", "SecurityGroupEgress"), `[{"CidrIp":{"Ref":"EgressCidr1"},"FromPort":80,"IpProtocol":"tcp","ToPort":80}]`},
	}
	for _, c := range checks {
		if got := asJSON(c.got); got != c.want {
			t.Errorf("%s = %s, want %s", c.name, got, c.want)
		}
	}
	stmts := dig(res, "Api", "Properties", "Auth", "ResourcePolicy", "CustomStatements").([]any)
	if len(stmts) != 2 || dig(stmts[0], "Effect") != "Deny" || !strings.Contains(asJSON(stmts[0]), "192.30.252.0/22") {
		t.Errorf("policy statements = %s", asJSON(stmts))
	}
	if strings.Contains(string(out), "0.0.0.0/0") {
		t.Error("template opens egress to 0.0.0.0/0")
	}
	if !strings.Contains(string(out), "# Not enforced by AWS") || dig(doc, "Metadata", "Drawbridge", "NotEnforcedByAWS") == nil {
		t.Error("template does not list what AWS cannot enforce")
	}
}

// TestSAMRich: egress exactly egress.allow, method throttles, plans'
// method throttles, ANY for all methods, one function per timeout.
func TestSAMRich(t *testing.T) {
	doc, _ := samDoc(t, loadRich(t, "rest"))
	res := doc["Resources"].(map[string]any)
	checks := []struct {
		name string
		got  any
		want string
	}{
		{"egress", dig(res, "SecurityGroup", "Properties", "SecurityGroupEgress"),
			`[{"CidrIp":"10.0.0.0/24","FromPort":80,"IpProtocol":"tcp","ToPort":80},{"CidrIp":"10.0.0.0/24","FromPort":443,"IpProtocol":"tcp","ToPort":443},{"CidrIpv6":"2001:db8::/32","FromPort":8443,"IpProtocol":"tcp","ToPort":8443}]`},
		{"method settings", dig(res, "Api", "Properties", "MethodSettings"),
			`[{"HttpMethod":"*","ResourcePath":"/*","ThrottlingBurstLimit":50,"ThrottlingRateLimit":100},{"HttpMethod":"POST","ResourcePath":"/~1orders","ThrottlingBurstLimit":10,"ThrottlingRateLimit":5}]`},
		{"plan methods", dig(res, "UsagePlan2", "Properties", "ApiStages"),
			`[{"ApiId":{"Ref":"Api"},"Stage":{"Ref":"Api.Stage"},"Throttle":{"/orders/POST":{"BurstLimit":2,"RateLimit":1}}}]`},
		{"quota offset", dig(res, "UsagePlan2", "Properties", "Quota"), `{"Limit":500,"Offset":5,"Period":"WEEK"}`},
		{"prefix ANY", dig(res, "Drawbridge2", "Properties", "Events", "Route1Any", "Properties", "Path"), `"/files/{proxy+}"`},
		{"timeouts", []any{dig(res, "Drawbridge", "Properties", "Timeout"), dig(res, "Drawbridge2", "Properties", "Timeout"), dig(res, "Drawbridge3", "Properties", "Timeout")}, `[3,10,29]`},
		{"sha256 key", dig(res, "ApiKey2", "Properties", "Value"), `null`},
		{"keyless plan", dig(res, "ApiKey2Plan", "Properties", "UsagePlanId"), `{"Ref":"UsagePlan1"}`},
		{"webhook secret", dig(res, "Drawbridge", "Properties", "Environment", "Variables", "GITHUB_SECRET"), `{"Ref":"GithubSecret"}`},
	}
	for _, c := range checks {
		if got := asJSON(c.got); got != c.want {
			t.Errorf("%s = %s, want %s", c.name, got, c.want)
		}
	}
}

func TestNotes(t *testing.T) {
	all := strings.Join(Notes(loadRich(t, "rest")), "\n")
	for _, want := range []string{
		"route /hooks/github: webhook signatures (github) are not checked by API Gateway",
		"route /hooks/github: durable delivery needs a queue",
		"route /orders: max_concurrent 4: API Gateway has no concurrency cap",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("notes lack %q:\n%s", want, all)
		}
	}
	all = strings.Join(Notes(loadRich(t, "http")), "\n")
	if !strings.Contains(all, "HTTP APIs have no API keys or usage plans") {
		t.Errorf("http notes: %s", all)
	}
	cfg, err := config.Parse("via.yaml", []byte(`tls: {cert: c.pem, key: k.pem}
agents:
  listen: ':8443'
  tokens: [{name: ci, sha256: "`+strings.Repeat("a", 64)+`"}]
routes:
  - {path: /ci, target: 'http://10.0.0.1/', via: ci, api_key_required: true}
  - path: /hooks
    api_key_required: true
    delivery: {mode: async}
    targets: [{target: 'http://10.0.0.2/'}, {target: 'http://10.0.0.3/'}]
`), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	all = strings.Join(Notes(cfg), "\n")
	for _, want := range []string{"route /ci: via ci: a Lambda function cannot hold agent tunnels", "route /hooks: match and targets: API Gateway routes by path and method only"} {
		if !strings.Contains(all, want) {
			t.Errorf("notes lack %q:\n%s", want, all)
		}
	}
	blog := strings.Join(Notes(loadBlog(t)), "\n")
	if !strings.Contains(blog, "egress to myurl: security groups allow addresses, not host names") {
		t.Errorf("blog notes: %s", blog)
	}
}

// tool finds an external program; under CI=true a missing one fails the
// test, elsewhere it skips.
func tool(t *testing.T, name string, alsoTry ...string) string {
	t.Helper()
	for _, n := range append([]string{name}, alsoTry...) {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing; the test needs it", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

func run(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s timed out after %s:\n%s", name, timeout, out)
	}
	return out, err
}

// TestSAMLint (acceptance 3): cfn-lint passes every exported template and
// sam2cfn.py (aws-sam-translator) expands it into plain CloudFormation.
func TestSAMLint(t *testing.T) {
	lint := tool(t, "cfn-lint", "/root/.pyenv/shims/cfn-lint")
	python := samPython(t, lint)
	script, _ := filepath.Abs("testdata/sam2cfn.py")
	cases := samCases(t)
	dir := t.TempDir()
	var files []string
	for name, cfg := range cases {
		_, out := samDoc(t, cfg)
		f := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(f, out, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		cfn, err := run(t, 60*time.Second, dir, []string{"AWS_DEFAULT_REGION=eu-west-1", "AWS_EC2_METADATA_DISABLED=true"}, python, script, f)
		if err != nil {
			t.Errorf("sam2cfn %s: %v\n%s", name, err, cfn)
			continue
		}
		var expanded map[string]any
		if err := json.Unmarshal(cfn, &expanded); err != nil {
			t.Errorf("sam2cfn %s: not JSON: %v", name, err)
			continue
		}
		types := map[string]bool{}
		for _, r := range expanded["Resources"].(map[string]any) {
			types[dig(r, "Type").(string)] = true
		}
		want := []string{"AWS::Lambda::Function", "AWS::EC2::SecurityGroup", "AWS::ApiGateway::RestApi", "AWS::ApiGateway::Stage", "AWS::ApiGateway::UsagePlan"}
		if strings.HasSuffix(name, "-http") {
			want = []string{"AWS::Lambda::Function", "AWS::EC2::SecurityGroup", "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage"}
		}
		for _, w := range want {
			if !types[w] {
				t.Errorf("sam2cfn %s: no %s in %v", name, w, types)
			}
		}
		if name == "blog" {
			api := dig(expanded, "Resources", "Api", "Properties", "Body", "x-amazon-apigateway-policy")
			if !strings.Contains(asJSON(api), "NotIpAddress") {
				t.Errorf("expanded RestApi has no resource policy: %s", asJSON(api))
			}
		}
	}
	out, err := run(t, 120*time.Second, dir, nil, lint, append([]string{"--"}, files...)...)
	if err != nil {
		var ee *exec.ExitError
		errors.As(err, &ee)
		t.Errorf("cfn-lint: %v\n%s", err, out)
	}
}

// samPython finds a python3 with aws-sam-translator: the one beside
// cfn-lint (which needs it too) first, then the one on PATH.
func samPython(t *testing.T, lint string) string {
	t.Helper()
	var tried []string
	for _, p := range []string{filepath.Join(filepath.Dir(lint), "python3"), "python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		out, err := run(t, 30*time.Second, "", nil, path, "-c", "import samtranslator")
		if err == nil {
			return path
		}
		tried = append(tried, path+": "+strings.TrimSpace(string(out)))
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no python3 with aws-sam-translator: %v", tried)
	}
	t.Skipf("no python3 with aws-sam-translator: %v", tried)
	return ""
}

type guardView struct {
	Stage, API, Region string
	Throttle           *config.Throttle
	Policy             any
	Plans              map[string]config.UsagePlan
	Egress             []string
	Keys               []string
	Routes             []string
}

func guardsOf(c *config.Config) guardView {
	g := guardView{Stage: c.Stage, API: string(c.API), Region: c.AWS.Region, Throttle: c.Throttle, Plans: c.UsagePlans, Egress: c.Egress.Allow}
	json.Unmarshal([]byte(c.ResourcePolicy), &g.Policy)
	for _, k := range c.APIKeys {
		g.Keys = append(g.Keys, k.Name+" plan="+k.Plan+" env="+k.ValueEnv+" sha="+k.SHA256)
	}
	for _, r := range c.Routes {
		g.Routes = append(g.Routes, asJSON([]any{r.Path, r.Methods, r.Target, r.Timeout, r.APIKeyRequired, r.Throttle}))
	}
	return g
}

// TestServerlessRoundTrip (acceptance 4): import the blog, export
// serverless.yml, import that: the same guards.
func TestServerlessRoundTrip(t *testing.T) {
	cases := map[string]*config.Config{"blog": loadBlog(t)}
	// a native config the two plugins can express in full
	native, err := config.Parse("n.yaml", []byte(`stage: prod
aws: {region: eu-central-1}
egress: {allow: ["10.0.0.0/24:80,81"]}
throttle: {rate: 20.5, burst: 40}
usage_plans:
  basic: {quota: {limit: 10, period: MONTH, offset: 1}}
api_keys:
  - {name: a, plan: basic, value_env: DRAWBRIDGE_KEY_A}
routes:
  - path: /orders
    methods: [GET, POST]
    target: http://10.0.0.5/
    timeout: 2s
    api_key_required: true
    throttle: {rate: 3, burst: 6}
  - path: /files/*
    target: http://10.0.0.6:81/
`), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	cases["native"] = native
	for name, cfg := range cases {
		out, err := Serverless(cfg)
		if err != nil {
			t.Fatal(err)
		}
		im, err := serverless.Import("exported.yml", out, testEnv, serverless.Options{})
		if err != nil {
			t.Fatalf("%s: exported serverless.yml does not import: %v\n%s", name, err, out)
		}
		if got, want := guardsOf(im.Config), guardsOf(cfg); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: round trip changed the guards:\n got %s\nwant %s\n%s", name, asJSON(got), asJSON(want), out)
		}
		for _, w := range im.Config.Warnings {
			if strings.Contains(w.Msg, "unknown to drawbridge") {
				t.Errorf("%s: export wrote a key import does not know: %s", name, w)
			}
		}
	}
}

// TestServerlessPackage (acceptance 5): Serverless Framework v3 packages
// the exported serverless.yml offline (no credentials) in a temp dir.
// npm install fetches about 280 MB, so it runs only with
// DRAWBRIDGE_TEST_SLS=1 (and then needs npm); DRAWBRIDGE_TEST_SLS_DIR may
// name a directory where serverless@3 and the plugins are installed.
func TestServerlessPackage(t *testing.T) {
	if os.Getenv("DRAWBRIDGE_TEST_SLS") != "1" {
		t.Skip("set DRAWBRIDGE_TEST_SLS=1 to package with npm serverless@3 (downloads ~280 MB)")
	}
	npm := tool(t, "npm")
	mods := os.Getenv("DRAWBRIDGE_TEST_SLS_DIR")
	if mods == "" {
		mods = t.TempDir()
		os.WriteFile(filepath.Join(mods, "package.json"), []byte(`{"name":"sls-test","version":"1.0.0","private":true}`), 0o644)
		if out, err := run(t, 5*time.Minute, mods, nil, npm, "install", "--no-audit", "--no-fund", "--save-dev",
			"serverless@3", "serverless-api-gateway-throttling@2", "serverless-add-api-key@4"); err != nil {
			t.Fatalf("npm install: %v\n%s", err, out)
		}
	}
	sls := filepath.Join(mods, "node_modules", ".bin", "serverless")
	if _, err := os.Stat(sls); err != nil {
		t.Fatalf("no serverless in %s: %v", mods, err)
	}
	out, err := Serverless(loadBlog(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "serverless.yml"), out, 0o644)
	os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "drawbridge.yaml"), []byte("routes: []\n"), 0o644)
	os.Symlink(filepath.Join(mods, "node_modules"), filepath.Join(dir, "node_modules"))
	env := []string{"SLS_TELEMETRY_DISABLED=1", "SLS_NOTIFICATIONS_MODE=off", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_PROFILE=", "DRAWBRIDGE_KEY_SECRET=" + testKey}
	got, err := run(t, 3*time.Minute, dir, env, sls, "package", "--package", filepath.Join(dir, "out"))
	if err != nil || !strings.Contains(string(got), "packaged") {
		t.Fatalf("serverless package: %v\n%s", err, got)
	}
	tpl, err := os.ReadFile(filepath.Join(dir, "out", "cloudformation-template-update-stack.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ApiKeyRequired": true`, `"provided.al2023"`, `"MemorySize": 512`, `execute-api:/*/*/forward`} {
		if !strings.Contains(string(tpl), want) {
			t.Errorf("packaged template lacks %s", want)
		}
	}
}
