package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/gateway"
	"github.com/drawbridge/drawbridge/internal/lambda"
	"github.com/drawbridge/drawbridge/internal/metrics"
)

// Environment variables of Lambda mode (docs/lambda.md).
const (
	// EnvRuntimeAPI is set by the Lambda runtime (and the RIE) to the
	// Runtime API's address; its presence is what selects Lambda mode.
	EnvRuntimeAPI = "AWS_LAMBDA_RUNTIME_API"
	// EnvConfig is the path of drawbridge.yaml in the deployment package.
	EnvConfig = "DRAWBRIDGE_CONFIG"
	// EnvURL alone selects the drop-in mode of the original Python
	// forwarder: one route /forward to this URL, answered as an envelope.
	EnvURL = "URL"
	// EnvALBPeer is the address ALB events are treated as coming from
	// (lambda.Options.ALBPeer). List it in client_ip.trusted_proxies to
	// take the client from X-Forwarded-For; unset, ALB clients are unknown.
	EnvALBPeer = "DRAWBRIDGE_ALB_PEER"
)

// InLambda reports whether the process was started by the Lambda runtime
// as a function's bootstrap: the runtime sets EnvRuntimeAPI and passes no
// arguments. With arguments the ordinary commands run, so `drawbridge
// check` still works inside a Lambda image.
func InLambda(getenv func(string) string, args []string) bool {
	return getenv(EnvRuntimeAPI) != "" && len(args) == 0
}

// RunLambda serves Lambda invocations until the process ends. It returns
// only when init fails, with the exit code; the message is on stderr,
// which Lambda reports as the init error (Runtime.ExitError) in the logs.
func RunLambda(env config.LookupEnv, stderr io.Writer) int {
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	fn, err := newLambdaFunction(env, logger)
	if err != nil {
		fmt.Fprintln(stderr, "drawbridge: lambda init:", err)
		return 1
	}
	lambda.Start(fn.gateway, fn.opts)
	return 0 // not reached: lambda.Start exits the process
}

// lambdaFunction is drawbridge built for one Lambda execution environment:
// the config is read and compiled once, at init, and serves every
// invocation the environment receives. Init does no network I/O (the cold
// start is billed and on the request path): a redis store connects on
// first use.
type lambdaFunction struct {
	cfg     *config.Config
	state   *state        // per instance (memory) unless shared (redis)
	egress  *egress.Guard // loopback refused: the Runtime API lives there
	gateway *gateway.Gateway
	opts    lambda.Options
	log     *slog.Logger
	metrics *metrics.Metrics
	// worker runs one delivery pass over the state's queue per scheduled
	// event. Nil when the state keeps no queue (only redis's is shared,
	// so it is the only one Lambda keeps).
	worker *delivery.Worker
}

func newLambdaFunction(env config.LookupEnv, logger *slog.Logger) (*lambdaFunction, error) {
	cfg, err := lambdaConfig(env)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		logger.Warn(w.String())
	}
	st, err := openState(cfg, servingLambda)
	if err != nil {
		return nil, err
	}
	// In Lambda the forwarder may never reach loopback, where the Runtime
	// API (and any extension) listens (docs/lambda.md). Target host names
	// are resolved when dialed, through one cache for the environment's
	// life (docs/hardening.md#1-egress-guard-internalegress).
	guard, err := egress.Compile(cfg, egress.Options{Lambda: !lambdaLoopbackAllowed, Names: egress.NewNames(targetResolver, nil)})
	if err != nil {
		st.close()
		return nil, err
	}
	for _, w := range guard.Warnings() {
		logger.Warn("WARNING: " + w)
	}
	fn := &lambdaFunction{cfg: cfg, state: st, egress: guard, log: logger, metrics: metrics.New()}
	tr, err := newTracer(cfg, fn.metrics, true)
	if err != nil {
		st.close()
		return nil, err
	}
	if st.queue != nil {
		fn.worker = newWorker(st.queue, cfg, fn.metrics, logger, guard, 0, tr)
	}
	g, err := gateway.Build(cfg, gatewayDeps(cfg, wiring{state: st, metrics: fn.metrics, log: logger, egress: guard, tracer: tr}))
	if err != nil {
		st.close()
		return nil, err
	}
	fn.gateway = g
	fn.opts = lambda.Options{
		MaxBody:    int64(cfg.Limits.MaxBodyBytes),
		OnSchedule: fn.drain,
		Logger:     logger,
	}
	if s, ok := env(EnvALBPeer); ok && s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("%s=%q: want an IP address", EnvALBPeer, s)
		}
		if !trusts(cfg, ip.Unmap()) {
			logger.Warn(EnvALBPeer + " is not in client_ip.trusted_proxies: X-Forwarded-For of ALB events is ignored")
		}
		fn.opts.ALBPeer = ip.Unmap().String()
	}
	logger.Info("lambda: ready", "config", cfg.File, "routes", len(cfg.Routes), "state", st.driver)
	return fn, nil
}

// lambdaLoopbackAllowed lifts the Lambda-mode loopback ban. Only a binary
// built with the drawbridge_testloopback tag sets it (lambda_testloopback.go):
// the tests under the RIE run their backends on loopback, which is where
// nothing legitimate lives in a real execution environment.
var lambdaLoopbackAllowed = false

// drain answers an EventBridge scheduled event: with state.driver redis,
// one delivery pass over the shared queue (everything due, whichever
// instance or replica accepted it; bounded by the invocation's deadline).
// A failed attempt stays queued for a later pass. Other drivers keep no
// queue in Lambda (an instance's memory dies with it).
func (fn *lambdaFunction) drain(ctx context.Context) error {
	if fn.worker == nil {
		fn.log.InfoContext(ctx, "lambda: scheduled event: no async delivery queue without state.driver redis, nothing to drain")
		return nil
	}
	n, err := fn.worker.RunOnce(ctx)
	fn.log.InfoContext(ctx, "lambda: scheduled event: delivery pass", "attempts", n)
	if err != nil {
		return fmt.Errorf("delivery pass after %d attempts: %w", n, err)
	}
	return nil
}

// lambdaConfig reads DRAWBRIDGE_CONFIG, or builds the drop-in config from
// URL when it is the only one set.
func lambdaConfig(env config.LookupEnv) (*config.Config, error) {
	if path, ok := env(EnvConfig); ok && path != "" {
		return loadConfig(path)
	}
	if u, ok := env(EnvURL); ok && u != "" {
		return urlConfig(u, env)
	}
	return nil, errors.New("set " + EnvConfig + " to the config file's path, or " + EnvURL + " to the backend URL (drop-in mode)")
}

// urlConfig is the original Python forwarder as a drawbridge config: one
// route /forward for GET, HEAD, POST and PUT to the URL, answered
// {"result": "<backend body>"} with the backend's status. It goes through
// the ordinary loader, so the URL is checked as any target; its own bugs
// are not kept (the query is forwarded, a slow backend is 504, binary
// request bodies arrive intact). The guards of the original deployment
// (key, usage plan, resource policy) stay where they were: in API Gateway.
func urlConfig(target string, env config.LookupEnv) (*config.Config, error) {
	doc := "admin: \"off\"\nstate: {driver: memory}\nroutes:\n" +
		"  - path: /forward\n" +
		"    methods: [GET, HEAD, POST, PUT]\n" +
		"    target: " + strconv.Quote(target) + "\n" +
		"    response: envelope\n"
	cfg, err := config.Parse(EnvURL, []byte(doc), env)
	var ce *config.Error
	if errors.As(err, &ce) {
		// Lines of a generated document mean nothing to the user.
		for i := range ce.Problems {
			ce.Problems[i].Line = 0
		}
	}
	if err != nil {
		return nil, err
	}
	cfg.Warnings = nil // "open to anyone": API Gateway guards this route
	return cfg, nil
}

func trusts(cfg *config.Config, ip netip.Addr) bool {
	return slices.ContainsFunc(cfg.ClientIP.Prefixes(), func(p netip.Prefix) bool { return p.Contains(ip) })
}
