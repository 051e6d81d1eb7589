package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
)

// badPolicy is a policy config.Validate accepts (a document with a
// Statement) but the gateway's compiler refuses: only Build finds it.
const badPolicy = "{Effect: Maybe, Principal: '*', Action: 'execute-api:Invoke', Resource: '*'}"

// TestCheckBuildErrorLines: the problems only gateway.Build finds, a
// policy the compiler refuses and a usage-plan method override naming no
// route, are printed by check at the line that holds them, in
// drawbridge.yaml, in the file resource_policy_file names from it, and
// in serverless.yml.
func TestCheckBuildErrorLines(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	head := "listen: 127.0.0.1:0\nadmin: \"off\"\nstate: {driver: memory}\n"
	routes := "routes:\n  - path: /a\n    methods: [GET]\n    target: http://127.0.0.1:1/\n"
	os.WriteFile(filepath.Join(dir, "policy.json"), []byte(`{"Statement": [`+
		`{"Effect": "Maybe", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*"}]}`), 0o644)
	cases := []struct {
		name, file, text string
		line             int
		msg              string
	}{
		{"policy inline", "policy.yaml", head + "resource_policy:\n  Statement:\n    - " + badPolicy + "\n" + routes,
			5, "resource_policy: "},
		{"policy file", "policyfile.yaml", head + "stage: prod\nresource_policy_file: policy.json\n" + routes,
			5, "resource_policy: "},
		{"method override", "methods.yaml", head + "usage_plans:\n  gold:\n    throttle: {rate: 5, burst: 5}\n    methods:\n" +
			"      /a/GET: {rate: 1, burst: 1}\n      /a/POST: {rate: 1, burst: 1}\n" + routes,
			9, `usage_plans.gold.methods: "/a/POST" names no configured route and method`},
		{"method override, block", "block.yaml", head + "usage_plans:\n  gold:\n    methods:\n      /nope/GET:\n        rate: 1\n        burst: 1\n" + routes,
			8, `usage_plans.gold.methods: "/nope/GET" names no configured route and method`},
		{"serverless policy", "serverless.yml", "service: s\nprovider:\n  name: aws\n  apiGateway:\n    resourcePolicy:\n      - " + badPolicy +
			"\nfunctions:\n  f:\n    environment:\n      URL: http://10.0.0.1/\n    events:\n      - http: POST hook\n",
			5, "resource_policy: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := write(c.file, c.text)
			code, _, stderr := runMain(t, "check", "-c", path)
			want := path + ":" + strconv.Itoa(c.line) + ": " + c.msg
			if code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr, want)
			}
		})
	}
}

// TestLoadConfigPicksFormat: every command's config file may be a
// serverless.yml or a drawbridge.yaml (Lambda's DRAWBRIDGE_CONFIG too), and
// what neither reader can take is reported by config's messages.
func TestLoadConfigPicksFormat(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"serverless.yml":  "service: s\nprovider:\n  name: aws\nfunctions:\n  f:\n    environment:\n      URL: http://10.0.0.1/\n    events:\n      - http: POST hook\n",
		"drawbridge.yaml": "routes:\n  - path: /hook\n    target: http://10.0.0.1/\n",
		"two.yml":         "service: s\n---\nservice: t\n",
		"empty.yml":       "",
	}
	for name, text := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	sls := filepath.Join(dir, "serverless.yml")
	for _, load := range []func(string) (*config.Config, error){
		loadConfig,
		func(path string) (*config.Config, error) {
			return lambdaConfig(func(k string) (string, bool) { return path, k == EnvConfig })
		},
	} {
		cfg, err := load(sls)
		if err != nil || cfg.Stage != "dev" || cfg.Routes[0].Path != "/hook" || cfg.Line("$.routes[0].target") != 7 {
			t.Errorf("serverless.yml: %v, %+v", err, cfg)
		}
	}
	cfg, err := loadConfig(filepath.Join(dir, "drawbridge.yaml"))
	if err != nil || cfg.Stage != "prod" || cfg.Line("$.routes[0].target") != 3 {
		t.Errorf("drawbridge.yaml: %v, %+v", err, cfg)
	}
	for name, want := range map[string]string{
		"two.yml":   "two.yml:3: more than one YAML document",
		"empty.yml": "empty.yml: config is empty",
		"nope.yml":  "nope.yml: cannot read config: no such file or directory",
	} {
		if _, err := loadConfig(filepath.Join(dir, name)); err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("%s: error %v, want it to end in %q", name, err, want)
		}
	}
}
