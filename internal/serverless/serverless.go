// Package serverless reads a serverless.yml (Serverless Framework v3,
// provider aws) as drawbridge config: its http/httpApi events become
// routes, the function's environment.URL their target, and the API
// Gateway guards it asks AWS for (resource policy, API keys and usage
// plans, stage and endpoint throttling of the
// serverless-api-gateway-throttling plugin) become drawbridge's.
// docs/serverless.md has the whole mapping. Keys drawbridge does not need
// (VPC, IAM, layers, packaging) are reported as warnings, never dropped
// silently; keys that would guard a route but that drawbridge cannot
// honour (authorizers) are errors, so an import never opens a route that
// AWS kept closed. The result goes through config.Validate, the checks
// drawbridge.yaml gets, and Imported.Native writes it as drawbridge.yaml.
package serverless

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/drawbridge/drawbridge/internal/config"
)

// Serverless Framework defaults that differ from drawbridge's.
const (
	serverlessStage   = "dev"
	serverlessTimeout = 6 * time.Second // Lambda timeout when none is set
	// the throttling plugin's defaults are API Gateway's account limits
	pluginRate  = config.DefaultAccountRate
	pluginBurst = config.DefaultAccountBurst
)

const awsOnly = "not needed outside AWS"

// Imported is a serverless.yml read as drawbridge config, with where each
// drawbridge value came from (for `drawbridge import`'s comments).
type Imported struct {
	Config *config.Config
	// Origins maps a drawbridge path ("$.routes[0].timeout") to the
	// serverless.yml key it came from.
	Origins map[string]Origin
}

// Origin is a place in serverless.yml.
type Origin struct {
	Line int
	Key  string // "functions.proxy.timeout"
}

// Import reads a serverless.yml. opts are the values of ${opt:...}
// (--stage and so on); env reads ${env:...} and the secrets.
func Import(file string, data []byte, env config.LookupEnv, opts Options) (*Imported, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	body, err := config.Document(file, data)
	if err != nil {
		return nil, err
	}
	return importServerless(file, body, env, opts)
}

// Detect reports whether data is a serverless.yml rather than a
// drawbridge.yaml; YAML that config.Document refuses is neither, so
// config.Parse reports it.
func Detect(data []byte) bool {
	body, err := config.Document("", data)
	return err == nil && isServerless(body)
}

// isServerless: a top-level service, provider or functions key. None of
// them is a drawbridge key, so there is no ambiguity.
func isServerless(body ast.Node) bool {
	m, ok := body.(*ast.MappingNode)
	if !ok {
		if mv, ok := body.(*ast.MappingValueNode); ok {
			m = &ast.MappingNode{Values: []*ast.MappingValueNode{mv}}
		} else {
			return false
		}
	}
	for _, v := range m.Values {
		if v.Key == nil || v.Key.GetToken() == nil {
			continue
		}
		switch v.Key.GetToken().Value {
		case "service", "provider", "functions":
			return true
		}
	}
	return false
}

type slsImport struct {
	file     string
	r        *resolver
	cfg      *config.Config
	origins  map[string]Origin
	problems []config.Problem
	warnings []config.Problem
	service  string
	plugins  map[string]bool
	api      config.API // rest or http, from the first event
	apiLine  int
	// authz are the authorizers events refer to; customAuthz what
	// custom.drawbridge.authorizers adds (authorizers.go).
	authz       map[string]*slsAuthorizer
	authzUsed   map[string]bool
	customAuthz map[string]*config.Authorizer
}

func importServerless(file string, body ast.Node, env config.LookupEnv, opts Options) (*Imported, error) {
	root, err := buildTree(body)
	if err != nil {
		return nil, asProblem(file, err)
	}
	s := &slsImport{
		file:    file,
		r:       &resolver{root: root, env: env, opts: opts, dir: filepath.Dir(file)},
		cfg:     &config.Config{File: file},
		origins: map[string]Origin{},
		plugins: map[string]bool{},
	}
	s.run(root)
	s.drawbridgeKeys(body)
	s.resolveAuthorizers(s.customAuthz)
	if len(s.problems) > 0 {
		// Warnings go out with the errors: one round shows everything
		// that needs changing, not only what stops the file.
		ps := sortProblems(append(s.problems, s.warnings...))
		return nil, &config.Error{Problems: ps}
	}
	s.cfg.Warnings = sortProblems(s.warnings)
	venv := env
	if opts.WithoutSecrets {
		venv = func(name string) (string, bool) {
			if v, ok := env(name); ok {
				return v, ok
			}
			for _, k := range s.cfg.APIKeys {
				if k.ValueEnv == name {
					return "notSetPlaceholder000000000", true // in the API key format
				}
			}
			return "", false
		}
	}
	s.cfg.Lines = make(map[string]int, len(s.origins))
	for path, o := range s.origins {
		s.cfg.Lines[path] = o.Line
	}
	cfg, err := config.Validate(s.cfg, venv)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) && len(s.warnings) > 0 {
			ps := sortProblems(append(append([]config.Problem(nil), ce.Problems...), s.warnings...))
			return nil, &config.Error{Problems: ps}
		}
		return nil, err
	}
	if opts.WithoutSecrets {
		for i := range cfg.APIKeys {
			if k := &cfg.APIKeys[i]; k.ValueEnv != "" {
				if _, ok := env(k.ValueEnv); !ok {
					k.Digest = [32]byte{}
				}
			}
		}
	}
	return &Imported{Config: cfg, Origins: s.origins}, nil
}

func asProblem(file string, err error) error {
	p := config.Problem{File: file, Msg: err.Error()}
	if le, ok := err.(*lineError); ok {
		p.Line = le.line
	}
	return &config.Error{Problems: []config.Problem{p}}
}

// sortProblems orders problems by line and drops repeats: a value read
// twice (a variable that several keys use) fails the same way each time.
func sortProblems(ps []config.Problem) []config.Problem {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	seen := make(map[config.Problem]bool, len(ps))
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// lineOf maps a drawbridge path to its serverless.yml line, falling back
// to the parents as config.Config.Line does.
func (s *slsImport) lineOf(path string) int {
	for path != "" {
		if o, ok := s.origins[path]; ok {
			return o.Line
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (s *slsImport) from(path string, line int, key string) {
	if line > 0 {
		s.origins[path] = Origin{Line: line, Key: key}
	}
}

func (s *slsImport) errorf(line int, format string, args ...any) {
	s.problems = append(s.problems, config.Problem{File: s.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (s *slsImport) warnf(line int, format string, args ...any) {
	s.warnings = append(s.warnings, config.Problem{File: s.file, Line: line, Msg: "warning: " + fmt.Sprintf(format, args...)})
}

// fail records err (a lineError from the resolver).
func (s *slsImport) fail(err error) {
	if err == errReported {
		return
	}
	if le, ok := err.(*lineError); ok {
		s.errorf(le.line, "%s", le.msg)
	} else {
		s.errorf(0, "%v", err)
	}
}

// val resolves the variables of n; nil on error (recorded).
func (s *slsImport) val(n *snode) *snode {
	v, err := s.r.value(n)
	if err != nil {
		s.fail(err)
		return nil
	}
	return v
}

// rule says what to do with one key of a mapping.
type rule struct {
	use    bool   // drawbridge reads it
	reason string // else: ignored, with this reason
}

var use = rule{use: true}

func skip(reason string) rule { return rule{reason: reason} }

// keys checks the keys of mapping n (at what) against rules. A key without
// a rule is an error when strict (a typo there would drop a guard), a
// warning otherwise. It returns the resolved mapping, or nil.
func (s *slsImport) keys(n *snode, what string, strict bool, rules map[string]rule) *snode {
	n = s.val(n)
	if n == nil || n.kind == snNull {
		return nil
	}
	if n.kind != snMap {
		s.errorf(n.line, "%s: want a mapping, got %s", what, describe(n))
		return nil
	}
	for i, k := range n.keys {
		r, ok := rules[k]
		switch {
		case ok && r.use:
		case ok:
			s.warnf(n.kline[i], "%s: ignored: %s", join(what, k), r.reason)
		case strict:
			s.errorf(n.kline[i], "%s: unknown key %q (want one of %s)", what, k, ruleNames(rules))
		default:
			s.warnf(n.kline[i], "%s: ignored: unknown to drawbridge", join(what, k))
		}
	}
	return n
}

func join(what, key string) string {
	if what == "" {
		return key
	}
	return what + "." + key
}

func ruleNames(rules map[string]rule) string {
	var names []string
	for k, r := range rules {
		if r.use {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func describe(n *snode) string {
	switch n.kind {
	case snNull:
		return "nothing"
	case snMap:
		if len(n.keys) == 1 && (n.keys[0] == "Ref" || strings.HasPrefix(n.keys[0], "Fn::")) {
			return "the CloudFormation function " + n.keys[0] + ", which cannot be evaluated outside AWS"
		}
		return "a mapping"
	case snSeq:
		return "a list"
	}
	if n.tag != "" {
		return "the CloudFormation function " + n.tag + ", which cannot be evaluated outside AWS"
	}
	switch n.typ {
	case tInt:
		return "an integer"
	case tFloat:
		return "a decimal number"
	case tBool:
		return "a boolean"
	}
	return "text"
}

// text reads a scalar as a string.
func (s *slsImport) text(n *snode, what string) (string, bool) {
	n = s.val(n)
	if n == nil {
		return "", false
	}
	if n.kind != snScalar || n.tag != "" {
		s.errorf(n.line, "%s: want text, got %s", what, describe(n))
		return "", false
	}
	return n.str, true
}

func (s *slsImport) integer(n *snode, what string) (int64, bool) {
	n = s.val(n)
	if n == nil {
		return 0, false
	}
	if n.kind == snScalar && n.tag == "" && (n.typ == tInt || n.fromVar) {
		if v, err := strconv.ParseInt(n.str, 10, 64); err == nil {
			return v, true
		}
	}
	s.errorf(n.line, "%s: want an integer, got %s", what, describeValue(n))
	return 0, false
}

func (s *slsImport) number(n *snode, what string) (float64, bool) {
	n = s.val(n)
	if n == nil {
		return 0, false
	}
	if n.kind == snScalar && n.tag == "" && (n.typ == tInt || n.typ == tFloat || n.fromVar) {
		if v, err := strconv.ParseFloat(n.str, 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			return v, true
		}
	}
	s.errorf(n.line, "%s: want a number, got %s", what, describeValue(n))
	return 0, false
}

func (s *slsImport) boolean(n *snode, what string) (bool, bool) {
	n = s.val(n)
	if n == nil {
		return false, false
	}
	if n.kind == snScalar && n.tag == "" && (n.typ == tBool || n.fromVar) && (n.str == "true" || n.str == "false") {
		return n.str == "true", true
	}
	s.errorf(n.line, "%s: want true or false, got %s", what, describeValue(n))
	return false, false
}

func describeValue(n *snode) string {
	if n.kind == snScalar && n.tag == "" {
		return fmt.Sprintf("%s (%q)", describe(n), n.str)
	}
	return describe(n)
}

// list reads a sequence.
func (s *slsImport) list(n *snode, what string) []*snode {
	n = s.val(n)
	if n == nil || n.kind == snNull {
		return nil
	}
	if n.kind != snSeq {
		s.errorf(n.line, "%s: want a list, got %s", what, describe(n))
		return nil
	}
	return n.items
}

func (s *slsImport) run(root *snode) {
	top := s.keys(root, "", false, map[string]rule{
		"service": use, "provider": use, "functions": use, "custom": use, "plugins": use,
		"resources": skip(awsOnly), "package": skip(awsOnly), "layers": skip(awsOnly),
		"outputs": skip(awsOnly), "frameworkVersion": skip(awsOnly), "configValidationMode": skip(awsOnly),
		"useDotenv": skip(awsOnly), "variablesResolutionMode": skip(awsOnly), "org": skip(awsOnly),
		"app": skip(awsOnly), "tenant": skip(awsOnly), "params": skip(awsOnly), "stages": skip(awsOnly),
		"disabledDeprecations": skip(awsOnly), "deprecationNotificationMode": skip(awsOnly),
		"build": skip(awsOnly), "console": skip(awsOnly), "dashboard": skip(awsOnly),
	})
	if top == nil {
		if len(s.problems) == 0 {
			s.errorf(root.line, "serverless.yml: want a mapping at the top")
		}
		return
	}
	s.serviceName(top)
	s.pluginList(top)
	provider, pline := top.get("provider")
	if provider == nil {
		s.errorf(root.line, "serverless.yml: provider is required")
		return
	}
	p := s.keys(provider, "provider", false, providerRules)
	if p == nil {
		return
	}
	if name := p.at("name"); name != nil {
		if v, ok := s.text(name, "provider.name"); ok && v != "aws" {
			s.errorf(name.line, "provider.name: %q: drawbridge imports aws services only", v)
		}
	} else {
		s.errorf(pline, "provider.name is required (aws)")
	}
	s.stageAndRegion(p)
	s.endpointType(p)
	s.throttling(top)
	s.policy(p)
	s.apiKeys(top, p)
	s.httpAPIAuthorizers(p)
	s.functions(top, p)
	s.httpAPICORS(p)
}

var providerRules = map[string]rule{
	"name": use, "stage": use, "region": use, "resourcePolicy": use, "apiGateway": use,
	"environment": use, "timeout": use, "usagePlan": use, "apiKeys": use,
	"runtime": skip(awsOnly), "memorySize": skip(awsOnly), "architecture": skip(awsOnly),
	"deploymentBucket": skip(awsOnly), "deploymentMethod": skip(awsOnly), "deploymentPrefix": skip(awsOnly),
	"iam": skip(awsOnly), "iamRoleStatements": skip(awsOnly), "iamManagedPolicies": skip(awsOnly),
	"role": skip(awsOnly), "cfnRole": skip(awsOnly), "rolePermissionsBoundary": skip(awsOnly),
	"vpc": skip(awsOnly), "tags": skip(awsOnly), "stackTags": skip(awsOnly), "stackName": skip(awsOnly),
	"stackPolicy": skip(awsOnly), "stackParameters": skip(awsOnly), "notificationArns": skip(awsOnly),
	"logRetentionInDays": skip(awsOnly), "logs": skip(awsOnly), "tracing": skip(awsOnly),
	"layers": skip(awsOnly), "versionFunctions": skip(awsOnly), "lambdaHashingVersion": skip(awsOnly),
	"profile": skip(awsOnly), "endpointType": use, "vpcEndpointIds": skip(awsOnly), "apiName": skip(awsOnly),
	"eventBridge": skip(awsOnly), "kmsKeyArn": skip(awsOnly), "httpApi": use,
	"websocketsApiName": skip(awsOnly), "websocketsApiRouteSelectionExpression": skip(awsOnly),
	"alb": skip(awsOnly), "ecr": skip(awsOnly), "s3": skip(awsOnly), "disableRollback": skip(awsOnly),
	"rollbackConfiguration": skip(awsOnly), "logDataProtectionPolicy": skip(awsOnly),
	"cloudFront": skip(awsOnly), "runtimeManagement": skip(awsOnly),
}

func (s *slsImport) serviceName(top *snode) {
	n := top.at("service")
	if n == nil {
		s.errorf(top.line, "serverless.yml: service is required")
		return
	}
	if v := s.val(n); v != nil && v.kind == snMap {
		// the framework's old form: service: {name: x}
		n = v.at("name")
	}
	if name, ok := s.text(n, "service"); ok {
		s.service = name
	}
}

// The plugins whose configuration drawbridge reads.
const (
	pluginThrottling = "serverless-api-gateway-throttling"
	pluginAPIKey     = "serverless-add-api-key"
)

func (s *slsImport) pluginList(top *snode) {
	n := top.at("plugins")
	v := s.val(n)
	if v != nil && v.kind == snMap {
		n = v.at("modules") // {localPath, modules}
	}
	for i, item := range s.list(n, "plugins") {
		name, ok := s.text(item, fmt.Sprintf("plugins[%d]", i))
		if !ok {
			continue
		}
		s.plugins[name] = true
		if name != pluginThrottling && name != pluginAPIKey {
			s.warnf(item.line, "plugins: %s: ignored: %s", name, awsOnly)
		}
	}
}

func (s *slsImport) stageAndRegion(p *snode) {
	s.cfg.Stage = serverlessStage
	if v, ok := s.r.opts.lookup("stage"); ok {
		s.cfg.Stage = v
	} else if n, line := p.get("stage"); n != nil {
		if v, ok := s.text(n, "provider.stage"); ok {
			s.cfg.Stage = v
			s.from("$.stage", line, "provider.stage")
		}
	}
	s.r.stage = s.cfg.Stage
	if v, ok := s.r.opts.lookup("region"); ok {
		s.cfg.AWS.Region = v
	} else if n, line := p.get("region"); n != nil {
		if v, ok := s.text(n, "provider.region"); ok {
			s.cfg.AWS.Region = v
			s.from("$.aws.region", line, "provider.region")
		}
	}
}

var throttleRules = map[string]rule{"maxRequestsPerSecond": use, "maxConcurrentRequests": use}

// throttling reads custom.apiGatewayThrottling, the plugin's stage
// settings: maxRequestsPerSecond is the rate, maxConcurrentRequests the
// burst (the plugin writes them to throttling/rateLimit and
// throttling/burstLimit), 10000/5000 when left out.
func (s *slsImport) throttling(top *snode) {
	custom := s.val(top.at("custom"))
	if custom == nil || custom.kind != snMap {
		return
	}
	n, line := custom.get("apiGatewayThrottling")
	if n == nil {
		return
	}
	m := s.keys(n, "custom.apiGatewayThrottling", true, throttleRules)
	if m == nil {
		return
	}
	if !s.plugins[pluginThrottling] {
		s.warnf(line, "custom.apiGatewayThrottling is applied although plugins does not list %s", pluginThrottling)
	}
	t := &config.Throttle{Rate: pluginRate, Burst: pluginBurst}
	rl, bl := s.throttleFields(m, "custom.apiGatewayThrottling", t)
	s.from("$.throttle.rate", rl, "custom.apiGatewayThrottling.maxRequestsPerSecond")
	s.from("$.throttle.burst", bl, "custom.apiGatewayThrottling.maxConcurrentRequests")
	s.cfg.Throttle = t
	s.from("$.throttle", line, "custom.apiGatewayThrottling")
}

// throttleFields overrides t with the plugin's fields found in m and
// returns their lines.
func (s *slsImport) throttleFields(m *snode, what string, t *config.Throttle) (rateLine, burstLine int) {
	if n, line := m.get("maxRequestsPerSecond"); n != nil {
		if v, ok := s.number(n, what+".maxRequestsPerSecond"); ok {
			t.Rate = config.Number(v)
			rateLine = line
		}
	}
	if n, line := m.get("maxConcurrentRequests"); n != nil {
		if v, ok := s.integer(n, what+".maxConcurrentRequests"); ok {
			t.Burst = config.Int(v)
			burstLine = line
		}
	}
	return rateLine, burstLine
}

// policy reads provider.resourcePolicy or provider.apiGateway.resourcePolicy:
// a list of statements (or a whole policy document).
func (s *slsImport) policy(p *snode) {
	n, line := p.get("resourcePolicy")
	key := "provider.resourcePolicy"
	if ag := s.val(p.at("apiGateway")); ag != nil && ag.kind == snMap {
		if n2, line2 := ag.get("resourcePolicy"); n2 != nil {
			if n != nil {
				s.errorf(line2, "provider.apiGateway.resourcePolicy: set it or provider.resourcePolicy, not both")
				return
			}
			n, line, key = n2, line2, "provider.apiGateway.resourcePolicy"
		}
	}
	if n == nil {
		return
	}
	if key == "provider.resourcePolicy" {
		s.warnf(line, "provider.resourcePolicy: Serverless v3 reads provider.apiGateway.resourcePolicy and packages this one as an empty policy; drawbridge applies it")
	}
	v, err := s.r.plain(n)
	if err != nil {
		s.fail(err)
		return
	}
	var doc map[string]any
	switch v := v.(type) {
	case []any:
		doc = map[string]any{"Version": "2012-10-17", "Statement": v}
	case map[string]any:
		if _, ok := v["Statement"]; !ok {
			s.errorf(line, "%s: want a list of statements or a policy document with Statement", key)
			return
		}
		doc = v
	default:
		s.errorf(line, "%s: want a list of statements", key)
		return
	}
	b, err := json.Marshal(doc)
	if err != nil {
		s.errorf(line, "%s: %v", key, err)
		return
	}
	s.cfg.ResourcePolicy = config.Policy(b)
	s.from("$.resource_policy", line, key)
}

// customKeys holds the drawbridge.yaml keys a serverless.yml may set under
// custom.drawbridge: what drawbridge needs outside AWS that AWS never
// had (the listener, the state store, the egress allow list, ...). They
// are written as in drawbridge.yaml and checked as strictly.
type customKeys struct {
	Listen          string              `yaml:"listen"`
	Admin           string              `yaml:"admin"`
	ClientIP        config.ClientIP     `yaml:"client_ip"`
	Limits          config.Limits       `yaml:"limits"`
	Server          config.Server       `yaml:"server"`
	State           config.State        `yaml:"state"`
	AccountThrottle *config.Throttle    `yaml:"account_throttle"`
	Egress          config.Egress       `yaml:"egress"`
	IPSets          map[string][]string `yaml:"ip_sets"`
	// Authorizers complete the Lambda, Cognito and external authorizers
	// serverless.yml cannot describe (authorizers.go).
	Authorizers map[string]*config.Authorizer `yaml:"authorizers"`
}

// drawbridgeKeys reads custom.drawbridge from the AST (so its errors carry
// lines as drawbridge.yaml's do) into the config.
func (s *slsImport) drawbridgeKeys(body ast.Node) {
	custom, _ := astChild(body, "custom")
	n, _ := astChild(custom, "drawbridge")
	if n == nil {
		return
	}
	var nat customKeys
	if sn := s.r.root.at("custom").at("drawbridge"); hasVariable(sn) {
		// resolve, then decode the result; errors point to custom.drawbridge
		v, err := s.r.plain(sn)
		if err != nil {
			s.fail(err)
			return
		}
		b, err := yaml.Marshal(v)
		if err == nil {
			var doc ast.Node
			if doc, err = config.Document(s.file, b); err == nil {
				err = config.Decode(s.file, doc, &nat)
			}
		}
		if err != nil {
			s.errorf(sn.line, "custom.drawbridge: %s", firstProblem(err).Msg)
			return
		}
	} else if err := config.Decode(s.file, n, &nat); err != nil {
		p := firstProblem(err)
		s.errorf(p.Line, "custom.drawbridge: %s", p.Msg)
		return
	}
	c := s.cfg
	c.Listen, c.Admin, c.ClientIP, c.Limits, c.Server = nat.Listen, nat.Admin, nat.ClientIP, nat.Limits, nat.Server
	c.State, c.AccountThrottle, c.Egress, c.IPSets = nat.State, nat.AccountThrottle, nat.Egress, nat.IPSets
	s.customAuthz = nat.Authorizers
	if m, ok := unwrap(n).(*ast.MappingNode); ok {
		for _, mv := range m.Values {
			k := mv.Key.GetToken().Value
			s.from("$."+k, config.NodeLine(mv.Key), "custom.drawbridge."+k)
		}
	}
}

// hasVariable reports whether a ${...} appears in n or under it.
func hasVariable(n *snode) bool {
	if n == nil {
		return false
	}
	if n.kind == snScalar {
		return strings.Contains(n.str, "${")
	}
	for _, c := range append(n.vals, n.items...) {
		if hasVariable(c) {
			return true
		}
	}
	return false
}

// firstProblem is the Problem of a config.Document or config.Decode error.
func firstProblem(err error) config.Problem {
	var ce *config.Error
	if errors.As(err, &ce) && len(ce.Problems) > 0 {
		return ce.Problems[0]
	}
	return config.Problem{Msg: err.Error()}
}

func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
}

// astChild finds key in mapping n.
func astChild(n ast.Node, key string) (ast.Node, int) {
	var values []*ast.MappingValueNode
	switch m := unwrap(n).(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	}
	for _, mv := range values {
		if mv.Key != nil && mv.Key.GetToken() != nil && mv.Key.GetToken().Value == key {
			return mv.Value, config.NodeLine(mv.Key)
		}
	}
	return nil, 0
}

// endpointType refuses a private API: AWS serves it only through the
// VPC endpoints of provider.vpcEndpointIds, so it is closed to the
// internet, and drawbridge, which has no VPC endpoints, would open it to
// anyone who reaches its listener. Edge and regional APIs are public and
// need nothing.
func (s *slsImport) endpointType(p *snode) {
	n, line := p.get("endpointType")
	if n == nil {
		return
	}
	v, ok := s.text(n, "provider.endpointType")
	if !ok {
		return
	}
	if strings.EqualFold(v, "PRIVATE") {
		s.errorf(line, "provider.endpointType: PRIVATE: AWS serves this API only inside the VPC of its VPC endpoints, closed to the internet; drawbridge has no VPC endpoints and would serve it to anyone who reaches its listener. Restrict it yourself (custom.drawbridge.listen on a private address, or a resource policy with aws:SourceIp), then remove endpointType")
		return
	}
	s.warnf(line, "provider.endpointType: ignored: %s", awsOnly)
}
