package cli

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/drawbridge/drawbridge/internal/apikey"
)

// demoConfig is the example config the demo writes next to itself. It is
// also documentation: every key carries a comment.
const demoConfig = `# drawbridge demo: a gateway in front of a sample private backend.
# Edit this file and send SIGHUP (or restart the demo) to try changes;
# "drawbridge check -c THIS_FILE" validates it.
stage: prod              # appears in resource-policy ARNs
api: rest                # answer like API Gateway's REST flavour (403 on unknown paths)
listen: "{LISTEN}"       # the public side
admin: "{ADMIN}"         # /healthz /readyz /metrics, loopback only
state:
  driver: memory         # the demo keeps nothing; serve defaults to an embedded file
limits:
  max_body_bytes: 1048576  # 1 MiB: bigger bodies get 413 before the backend sees a byte
usage_plans:
  demo-plan:               # API Gateway's usage plan: per-key throttle and quota
    throttle: {rate: 0.2, burst: 5}      # 5 at once, then one every 5 s: 429 beyond
    quota: {limit: 1000, period: DAY}    # 1000 a UTC day: 429 Limit Exceeded beyond
api_keys:
  - name: demo             # logs and metrics name the key, never its value
    plan: demo-plan
    sha256: {KEYHASH}      # only the hash is stored (drawbridge keys create)
routes:
  # A prefix route: /api/hello reaches the backend as /hello, query intact.
  - path: /api/*
    methods: [GET, POST]
    target: {BACKEND}/
    timeout: 2s           # slower than this: 504 Endpoint request timed out
    api_key_required: true  # x-api-key must be a key of a usage plan: else 403 Forbidden
  # The original Python forwarder's shape: {"result": "<backend body>"}.
  - path: /forward
    methods: [GET, HEAD, POST, PUT]
    target: {BACKEND}/forwarded
    timeout: 1s
    response: envelope
    api_key_required: true
  # A GitHub webhook: X-Hub-Signature-256 must be the body's HMAC with the
  # secret, or 401 Unauthorized and the backend sees nothing.
  - path: /hooks/github
    methods: [POST]
    target: {BACKEND}/ci
    verify: {provider: github, secret_env: DRAWBRIDGE_DEMO_WEBHOOK_SECRET}
`

// demoExample is one ready-to-paste curl line and the status it gives.
type demoExample struct {
	what    string
	command string // {GW} is the gateway's base URL
	status  int
}

// {KEY} is the demo's API key, {SIG} the GitHub signature of demoHookBody.
var demoExamples = []demoExample{
	{"An allowed call with the API key, forwarded to the private backend", "curl -si -H 'x-api-key: {KEY}' '{GW}/api/hello?name=world'", 200},
	{"The same call without a key (API Gateway's answer)", "curl -si '{GW}/api/hello?name=world'", 403},
	{"The original forwarder's envelope shape", "curl -si -H 'x-api-key: {KEY}' -X POST --data 'ping' {GW}/forward", 200},
	{"A signed GitHub-style webhook, verified and forwarded", "curl -si -H 'X-GitHub-Event: ping' -H 'X-Hub-Signature-256: sha256={SIG}' --data '" + demoHookBody + "' {GW}/hooks/github", 200},
	{"The same webhook with one byte changed: signature rejected", "curl -si -H 'X-GitHub-Event: ping' -H 'X-Hub-Signature-256: sha256={SIG}' --data '" + demoHookBody + "!' {GW}/hooks/github", 401},
	{"Six quick calls over the plan's burst of 5: the last is throttled", "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w 'HTTP/1.1 %{http_code}\\n' -H 'x-api-key: {KEY}' {GW}/api/hello; done", 429},
	{"A path no route serves", "curl -si {GW}/admin", 403},
	{"A traversal attempt, refused before routing", "curl -si --path-as-is {GW}/api/../admin", 403},
	{"A body over limits.max_body_bytes, refused unread", "head -c 2000000 /dev/zero | curl -si --data-binary @- {GW}/api/upload", 413},
}

// demoHookBody is the webhook the demo signs.
const demoHookBody = `{"zen":"Keep it logically awesome.","hook_id":1}`

// demoSecretEnv holds the demo route's webhook secret.
const demoSecretEnv = "DRAWBRIDGE_DEMO_WEBHOOK_SECRET"

// demoEnd ends the demo's list of examples.
const demoEnd = "End of examples. Edit the config and send SIGHUP to the demo to try changes."

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "gateway `address` (falls back to a free port when busy)")
	adminAddr := fs.String("admin", "127.0.0.1:9090", "admin `address` (falls back to a free port when busy)")
	dir := fs.String("dir", "", "`directory` for the example config (default: a new temporary one)")
	verbose := fs.Bool("v", false, "print the gateway's JSON access log to stderr")
	withAgent := fs.Bool("agent", false, "run an agent too: the edge reaches the backend only through its tunnel (docs/agent.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *withAgent {
		return runAgentDemo(ctx, *listen, *adminAddr, *dir, *verbose, stdout, stderr)
	}

	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bsrv := &http.Server{Handler: http.HandlerFunc(demoBackend)}
	go bsrv.Serve(backend)
	defer bsrv.Close()
	backendURL := "http://" + backend.Addr().String()

	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "drawbridge-demo-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	// A fresh key per run: the config holds its hash only. The webhook
	// secret comes from the environment as in production: the user's own
	// (to sign their own hooks) or a fresh one, never printed.
	key := apikey.Generate()
	secret := os.Getenv(demoSecretEnv)
	if secret == "" {
		secret = apikey.Generate()
		os.Setenv(demoSecretEnv, secret)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(demoHookBody))
	sig := hex.EncodeToString(mac.Sum(nil))

	path := filepath.Join(*dir, "drawbridge.yaml")
	text := strings.NewReplacer("{LISTEN}", freeOr(*listen), "{ADMIN}", freeOr(*adminAddr), "{BACKEND}", backendURL,
		"{KEYHASH}", apikey.FormatDigest(apikey.Hash(key))).Replace(demoConfig)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}

	logOut := io.Discard
	if *verbose {
		logOut = stderr
	}
	s, err := Start(path, slog.New(slog.NewJSONHandler(logOut, nil)))
	if err != nil {
		return err
	}
	gw := "http://" + s.Addr()
	fmt.Fprintf(stdout, "drawbridge demo\n")
	fmt.Fprintf(stdout, "  private backend: %s (loopback; the gateway is the way in)\n", backendURL)
	fmt.Fprintf(stdout, "  gateway:         %s\n", gw)
	fmt.Fprintf(stdout, "  metrics:         http://%s/metrics\n", s.AdminAddr())
	fmt.Fprintf(stdout, "  config:          %s\n", path)
	fmt.Fprintf(stdout, "  API key:         %s (plan demo-plan)\n", key)
	fmt.Fprintf(stdout, "  webhook secret:  in $%s (set it before starting the demo to sign your own)\n\n", demoSecretEnv)
	fmt.Fprintf(stdout, "Try these (Ctrl-C stops the demo):\n\n")
	fill := strings.NewReplacer("{GW}", gw, "{KEY}", key, "{SIG}", sig)
	for i, ex := range demoExamples {
		fmt.Fprintf(stdout, "# %d. %s: expect %d\n%s\n\n", i+1, ex.what, ex.status, fill.Replace(ex.command))
	}
	fmt.Fprintf(stdout, "%s\n", demoEnd)

	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping the demo")
	return s.Shutdown()
}

// freeOr returns addr if it can be listened on now, else the same host
// with port 0 (any free port): the demo must start even when 8080 is taken.
func freeOr(addr string) string {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		host, _, _ := net.SplitHostPort(addr)
		return net.JoinHostPort(host, "0")
	}
	l.Close()
	return addr
}

// demoBackend is the sample private service: it says what it received,
// so the effect of the gateway is visible.
func demoBackend(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"backend":         "private",
		"method":          r.Method,
		"path":            r.URL.Path,
		"query":           r.URL.RawQuery,
		"x_forwarded_for": r.Header.Get("X-Forwarded-For"),
		"x_request_id":    r.Header.Get("X-Request-Id"),
		"body_bytes":      len(body),
	})
}
