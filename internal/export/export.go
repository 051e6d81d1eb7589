// Package export writes deployable AWS templates from a drawbridge config,
// so API Gateway enforces natively what it can of the same guards: a SAM
// template (CloudFormation) and a serverless.yml for the Serverless
// Framework v3. Both deploy the drawbridge binary itself as the function
// behind the API, so what AWS cannot enforce (Notes lists it) still
// happens in the function.
package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
)

// Lambda and API Gateway facts the templates rely on.
const (
	memoryMB      = 512
	runtime       = "provided.al2023"
	handler       = "bootstrap"
	configFile    = "drawbridge.yaml"
	lambdaMaxBody = 6 << 20 // synchronous invoke payload limit
)

// Notes lists what AWS cannot enforce for cfg, each with what happens
// instead; check prints them and both templates carry them.
func Notes(cfg *config.Config) []string {
	var n []string
	add := func(format string, args ...any) { n = append(n, fmt.Sprintf(format, args...)) }
	if cfg.API == config.APIHTTP {
		if cfg.ResourcePolicy != "" {
			add("resource_policy: HTTP APIs have no resource policies; only the drawbridge function enforces it")
		}
		if len(cfg.APIKeys) > 0 || len(cfg.UsagePlans) > 0 {
			add("api_keys and usage_plans: HTTP APIs have no API keys or usage plans; only the drawbridge function enforces them")
		}
	}
	names := make([]string, 0, len(cfg.Authorizers))
	for n := range cfg.Authorizers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch a := cfg.Authorizers[n]; {
		case a.Type == config.AuthorizerRequest:
			add("authorizer %s: API Gateway does not call a request authorizer (it would need a Lambda authorizer function); the drawbridge function calls it", n)
		case cfg.API != config.APIHTTP:
			add("authorizer %s: REST APIs have no JWT authorizers; only the drawbridge function checks the tokens", n)
		default:
			add("authorizer %s: written as the HTTP API's JWT authorizer, which accepts only RSA-signed tokens and allows no leeway: API Gateway refuses an ES256 or EdDSA token, or one past exp that the leeway lets drawbridge accept", n)
		}
	}
	for _, r := range cfg.Routes {
		if r.Verify != nil {
			add("route %s: webhook signatures (%s) are not checked by API Gateway; the drawbridge function checks them", r.Path, r.Verify.Provider)
		}
		if r.Delivery != nil && r.Delivery.Mode == config.DeliveryAsync {
			add("route %s: durable delivery needs a queue API Gateway does not have (short of SQS); the drawbridge function keeps it in its state store, so set state.driver: redis (Lambda's disk is not kept)", r.Path)
		}
		if len(r.AllowIPs) > 0 {
			add("route %s: allow_ips is enforced by the drawbridge function, not by API Gateway", r.Path)
		}
		if r.Via != "" {
			add("route %s: via %s: a Lambda function cannot hold agent tunnels (docs/agent.md), so in Lambda this route answers 502 agent_unavailable; serve it from a drawbridge serve edge", r.Path, r.Via)
		}
		if r.Match != nil || len(r.Targets) > 0 {
			add("route %s: match and targets: API Gateway routes by path and method only; the drawbridge function matches the event and fans it out", r.Path)
		}
		if cfg.RouteCORS(&r) != nil {
			add("route %s: cors is not written to the template: the drawbridge function answers the preflights API Gateway passes to it (methods with OPTIONS, no key required), and API Gateway's own errors carry no CORS headers", r.Path)
		}
		if r.Throttle != nil && r.Throttle.MaxConcurrent > 0 {
			add("route %s: max_concurrent %d: API Gateway has no concurrency cap; the drawbridge function enforces it (across instances only with state.driver: redis)", r.Path, r.Throttle.MaxConcurrent)
		}
		limit := config.MaxTimeout(cfg.API)
		if time.Duration(r.Timeout) > limit {
			add("route %s: timeout %s: API Gateway ends requests after %s", r.Path, time.Duration(r.Timeout), limit)
		}
	}
	if t := cfg.Throttle; t != nil && t.MaxConcurrent > 0 {
		add("throttle.max_concurrent %d: API Gateway has no concurrency cap; the drawbridge function enforces it (across instances only with state.driver: redis)", t.MaxConcurrent)
	}
	if t := cfg.AccountThrottle; t != nil && (t.Rate != config.DefaultAccountRate || t.Burst != config.DefaultAccountBurst) {
		add("account_throttle: the account limit is set by AWS (Service Quotas), not by a template")
	}
	for _, h := range hostTargets(cfg) {
		add("egress to %s: security groups allow addresses, not host names; the template asks for its CIDR (%s) and the function's dial-time check still allows only what the name resolves to", h.host, h.param)
	}
	if cfg.Limits.MaxBodyBytes > lambdaMaxBody {
		add("limits.max_body_bytes %d: Lambda accepts at most %d bytes per request, larger bodies are refused by AWS", cfg.Limits.MaxBodyBytes, lambdaMaxBody)
	}
	return n
}

// egressRule is one security group egress rule.
type egressRule struct {
	cidr  string // "" when param is set
	param string // template parameter holding the CIDR
	ipv6  bool
	port  int
}

type hostTarget struct {
	host, param string
	port        int
}

// hostTargets are the targets named by host name when egress.allow is
// unset: their address is not known until deploy time.
func hostTargets(cfg *config.Config) []hostTarget {
	if len(cfg.Egress.Allow) > 0 {
		return nil
	}
	var out []hostTarget
	seen := map[string]bool{}
	for _, target := range cfg.TargetURLs() {
		u, err := url.Parse(target)
		if err != nil {
			continue
		}
		if _, err := netip.ParseAddr(u.Hostname()); err == nil {
			continue
		}
		key := u.Host
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, hostTarget{host: u.Hostname(), param: fmt.Sprintf("EgressCidr%d", len(out)+1), port: targetPort(u)})
	}
	return out
}

func targetPort(u *url.URL) int {
	if p := u.Port(); p != "" {
		var n int
		fmt.Sscanf(p, "%d", &n)
		return n
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

// egressRules is exactly egress.allow, or, when unset, the targets'
// addresses and ports: never 0.0.0.0/0.
func egressRules(cfg *config.Config) ([]egressRule, error) {
	var rules []egress.Rule
	var err error
	if len(cfg.Egress.Allow) > 0 {
		rules, err = egress.Parse(cfg.Egress.Allow)
	} else {
		var literal []string
		for _, target := range cfg.TargetURLs() {
			if u, e := url.Parse(target); e == nil {
				if _, e := netip.ParseAddr(u.Hostname()); e == nil {
					literal = append(literal, target)
				}
			}
		}
		rules, err = egress.Default(literal, func(string) ([]netip.Addr, error) {
			return nil, fmt.Errorf("not an address")
		})
	}
	if err != nil {
		return nil, err
	}
	var out []egressRule
	for _, r := range rules {
		for _, p := range r.Ports {
			out = append(out, egressRule{cidr: r.Prefix.String(), ipv6: r.Prefix.Addr().Is6(), port: int(p)})
		}
	}
	for _, h := range hostTargets(cfg) {
		out = append(out, egressRule{param: h.param, port: h.port})
	}
	return out, nil
}

// secretEnvs are the environment variables the function needs: API key
// values and webhook secrets, each given to the template as a NoEcho
// parameter.
func secretEnvs(cfg *config.Config) []string {
	var names []string
	for _, k := range cfg.APIKeys {
		if k.ValueEnv != "" {
			names = append(names, k.ValueEnv)
		}
	}
	for _, r := range cfg.Routes {
		if v := r.Verify; v != nil {
			if v.SecretEnv != "" {
				names = append(names, v.SecretEnv)
			}
			names = append(names, v.SecretEnvs...)
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// paramName turns an environment variable name into a template parameter
// name (alphanumeric): DRAWBRIDGE_KEY_SECRET → DrawbridgeKeySecret.
func paramName(env string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(env, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) {
		b.WriteString(strings.ToUpper(part[:1]) + strings.ToLower(part[1:]))
	}
	return b.String()
}

// allMethods reports whether a route takes every method (API Gateway ANY).
func allMethods(ms []string) bool {
	if len(ms) < len(config.AllMethods) {
		return false
	}
	for _, m := range config.AllMethods {
		if !slices.Contains(ms, m) {
			return false
		}
	}
	return true
}

// awsPath is a route path as API Gateway writes it: a prefix route
// "/hooks/*" is "/hooks/{proxy+}" (which, unlike drawbridge, does not
// match the bare "/hooks").
func awsPath(r config.Route) string {
	if r.Prefix() {
		return strings.TrimSuffix(r.Base(), "/") + "/{proxy+}"
	}
	return r.Path
}

// seconds rounds a timeout up to Lambda's whole seconds.
func seconds(d config.Duration) int {
	return int(math.Ceil(time.Duration(d).Seconds()))
}

// groupRoutes groups the routes' indexes by key, in the order the keys
// first appear.
func groupRoutes[K comparable](cfg *config.Config, key func(config.Route) K) [][]int {
	var order []K
	groups := map[K][]int{}
	for i, r := range cfg.Routes {
		k := key(r)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	out := make([][]int, len(order))
	for i, k := range order {
		out[i] = groups[k]
	}
	return out
}

// statements are the resource policy's statements as a list (IAM allows
// a single statement without the list).
func statements(cfg *config.Config) []any {
	var policy map[string]any
	json.Unmarshal([]byte(cfg.ResourcePolicy), &policy)
	switch st := policy["Statement"].(type) {
	case []any:
		return st
	case map[string]any:
		return []any{st}
	}
	return nil
}

// writeNotes writes the notes as a comment block.
func writeNotes(b *bytes.Buffer, notes []string) {
	if len(notes) == 0 {
		return
	}
	b.WriteString("# Not enforced by AWS (the drawbridge function does it):\n")
	for _, n := range notes {
		b.WriteString("#   - " + n + "\n")
	}
}
