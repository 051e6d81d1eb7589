package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/serverless"
)

const blogFile = "../serverless/testdata/blog.yml"

func keyEnv(name string) (string, bool) {
	if strings.HasPrefix(name, "DRAWBRIDGE_KEY_") {
		return "cliTestKey0123456789abcdef", true
	}
	return "", false
}

func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// guardJSON is the part of a config that decides requests.
func guardJSON(c *config.Config) string {
	var policy any
	json.Unmarshal([]byte(c.ResourcePolicy), &policy)
	var keys, routes []any
	for _, k := range c.APIKeys {
		keys = append(keys, []any{k.Name, k.Plan, k.ValueEnv, k.SHA256, k.Digest, k.IsEnabled()})
	}
	for _, r := range c.Routes {
		routes = append(routes, []any{r.Path, r.Methods, r.Target, r.Timeout, r.APIKeyRequired, r.Throttle})
	}
	b, _ := json.Marshal([]any{c.Stage, c.API, c.AWS, c.Throttle, policy, c.UsagePlans, keys, routes})
	return string(b)
}

// TestImportCommand: `drawbridge import serverless` writes a
// drawbridge.yaml that loads into the guards the serverless.yml gives.
func TestImportCommand(t *testing.T) {
	code, out, stderr := runMain(t, "import", "serverless", blogFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "functions.serverless-proxy.vpc: ignored: not needed outside AWS") {
		t.Errorf("stderr lacks the ignored keys:\n%s", stderr)
	}
	native, err := config.Parse("drawbridge.yaml", []byte(out), keyEnv)
	if err != nil {
		t.Fatalf("output does not load: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(blogFile)
	orig, err := serverless.Import(blogFile, data, keyEnv, serverless.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := guardJSON(native), guardJSON(orig.Config); got != want {
		t.Errorf("native guards\n%s\nwant\n%s", got, want)
	}

	// -stage and -o, flags after the file
	file := filepath.Join(t.TempDir(), "drawbridge.yaml")
	if code, _, stderr := runMain(t, "import", "serverless", blogFile, "-stage", "prod", "-o", file); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	cfg, err := config.Load(file)
	if err == nil || !strings.Contains(err.Error(), "DRAWBRIDGE_KEY_SECRET") {
		t.Errorf("load without the key's variable: %v", err)
	}
	written, _ := os.ReadFile(file)
	if cfg, err = config.Parse(file, written, keyEnv); err != nil || cfg.Stage != "prod" {
		t.Errorf("stage %v, err %v", cfg, err)
	}
}

func TestImportCommandErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "serverless.yml")
	os.WriteFile(bad, []byte("service: s\nprovider:\n  name: aws\nfunctions:\n  f:\n    environment:\n      URL: http://10.0.0.1/\n    events:\n      - http: {path: x, method: get, privat: true}\n"), 0o644)
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"import"}, 2, "usage: drawbridge import serverless"},
		{[]string{"import", "terraform", "x"}, 2, "usage"},
		{[]string{"import", "serverless"}, 2, "usage"},
		{[]string{"import", "serverless", bad}, 1, bad + `:9: functions.f.events[0].http: unknown key "privat"`},
		{[]string{"import", "serverless", "/nonexistent/serverless.yml"}, 1, "cannot read"},
	}
	for _, c := range cases {
		code, _, stderr := runMain(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", c.args, code, stderr, c.code, c.stderr)
		}
	}
}

// TestExportCommand: both formats, from serverless.yml and drawbridge.yaml,
// without the secrets in the environment.
func TestExportCommand(t *testing.T) {
	dir := t.TempDir()
	native := filepath.Join(dir, "drawbridge.yaml")
	os.WriteFile(native, []byte("api_keys:\n  - {name: k, value_env: DB_CLI_TEST_UNSET_KEY}\nroutes:\n  - path: /a\n    target: http://10.0.0.1/\n    api_key_required: true\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "sam", "-c", blogFile}, "Transform: AWS::Serverless-2016-10-31"},
		{[]string{"export", "serverless", "-c", blogFile}, "serverless-add-api-key"},
		{[]string{"export", "sam", "-c", native}, "DbCliTestUnsetKey"},
	} {
		code, out, stderr := runMain(t, c.args...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, stderr %s, output lacks %q", c.args, code, stderr, c.want)
		}
	}
	out := filepath.Join(dir, "template.yaml")
	code, stdout, stderr := runMain(t, "export", "sam", "-c", blogFile, "-o", out)
	data, _ := os.ReadFile(out)
	if code != 0 || stdout != "" || !bytes.HasPrefix(data, []byte("# SAM template")) {
		t.Errorf("-o: exit %d, stdout %q, file %.40q", code, stdout, data)
	}
	if !strings.Contains(stderr, "note: not enforced by AWS: egress to myurl") {
		t.Errorf("stderr lacks the notes: %s", stderr)
	}
	if code, _, _ := runMain(t, "export", "cdk"); code != 2 {
		t.Errorf("unknown format: exit %d", code)
	}
}

// TestCheckServerless: check reads serverless.yml, reports what it ignores
// and what AWS could not enforce.
func TestCheckServerless(t *testing.T) {
	file := filepath.Join(t.TempDir(), "serverless.yml")
	os.WriteFile(file, []byte("service: s\nprovider:\n  name: aws\n  runtime: python3.11\nfunctions:\n  f:\n    vpc: {subnetIds: [a]}\n    environment:\n      URL: http://10.0.0.1/\n    events:\n      - http: POST hook\n"), 0o644)
	code, out, stderr := runMain(t, "check", "-c", file)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		file + ":4: warning: provider.runtime: ignored: not needed outside AWS",
		file + ":7: warning: functions.f.vpc: ignored: not needed outside AWS",
		"note: if deployed with drawbridge export, AWS cannot enforce: limits.max_body_bytes",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(out, "ok: 1 routes, stage dev") {
		t.Errorf("stdout %q", out)
	}
}

// TestServeServerless: serve runs a serverless.yml as it is, with
// drawbridge's own settings under custom.drawbridge.
func TestServeServerless(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "backend saw "+r.Method+" "+r.URL.Path)
	}))
	defer backend.Close()
	file := filepath.Join(t.TempDir(), "serverless.yml")
	os.WriteFile(file, []byte(`service: s
provider:
  name: aws
  stage: ${opt:stage, 'test'}
custom:
  backend: `+backend.URL+`
  drawbridge:
    listen: 127.0.0.1:0
    admin: 127.0.0.1:0
    state: {driver: memory}
functions:
  proxy:
    timeout: 2
    environment:
      URL: ${self:custom.backend}/in
    events:
      - http: {path: forward, method: post}
`), 0o644)
	s, err := Start(file, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	resp, err := http.Post("http://"+s.Addr()+"/forward", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "backend saw POST /in" {
		t.Errorf("POST /forward: %d %q", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + s.Addr() + "/forward")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("GET /forward (no such method): %d, want 403", resp.StatusCode)
	}
}
