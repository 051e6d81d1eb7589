package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// A serverless.yml (Serverless Framework v3, provider aws) is read as
// drawbridge config: its http/httpApi events become routes, the function's
// environment.URL their target, and the API Gateway guards it asks AWS
// for (resource policy, API keys and usage plans, stage and endpoint
// throttling of the serverless-api-gateway-throttling plugin) become
// drawbridge's. docs/serverless.md has the whole mapping. Keys drawbridge
// does not need (VPC, IAM, layers, packaging) are reported as warnings,
// never dropped silently; keys that would guard a route but that drawbridge
// cannot honour (authorizers) are errors, so an import never opens a
// route that AWS kept closed.

// Serverless Framework defaults that differ from drawbridge's.
const (
	serverlessStage   = "dev"
	serverlessTimeout = 6 * time.Second // Lambda timeout when none is set
	restMaxTimeout    = 29 * time.Second
	httpMaxTimeout    = 30 * time.Second
	// the throttling plugin's defaults, API Gateway's account limits
	pluginRate  = 10000
	pluginBurst = 5000
)

const awsOnly = "not needed outside AWS"

// Imported is a serverless.yml read as drawbridge config, with where each
// drawbridge value came from (for `drawbridge import`'s comments).
type Imported struct {
	Config *Config
	// Origins maps a drawbridge path ("$.routes[0].timeout") to the
	// serverless.yml key it came from.
	Origins map[string]Origin
}

// Origin is a place in serverless.yml.
type Origin struct {
	Line int
	Key  string // "functions.proxy.timeout"
}

// ImportServerless reads a serverless.yml. opts are the values of
// ${opt:...} (--stage and so on).
func ImportServerless(file string, data []byte, env LookupEnv, opts ServerlessOptions) (*Imported, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	f, err := parseDoc(file, data)
	if err != nil {
		return nil, err
	}
	return importServerless(file, f.Docs[0].Body, env, opts)
}

// IsServerless reports whether data looks like a serverless.yml rather than
// a drawbridge.yaml; unreadable YAML is neither.
func IsServerless(data []byte) bool {
	f, err := parseBytes(data)
	if err != nil || len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return false
	}
	return isServerless(f.Docs[0].Body)
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
	cfg      *Config
	origins  map[string]Origin
	problems []Problem
	warnings []Problem
	service  string
	plugins  map[string]bool
	global   *Throttle // custom.apiGatewayThrottling, as the plugin fills it
	api      string    // rest or http, from the first event
	apiLine  int
}

func importServerless(file string, body ast.Node, env LookupEnv, opts ServerlessOptions) (*Imported, error) {
	root, err := buildTree(body)
	if err != nil {
		return nil, asProblem(file, err)
	}
	s := &slsImport{
		file:    file,
		r:       &resolver{root: root, env: env, opts: opts},
		cfg:     &Config{File: file},
		origins: map[string]Origin{},
		plugins: map[string]bool{},
	}
	s.run(root)
	if len(s.problems) > 0 {
		sortProblems(s.problems)
		return nil, &Error{Problems: s.problems}
	}
	sortProblems(s.warnings)
	s.cfg.Warnings = s.warnings
	venv := env
	if opts.WithoutSecrets {
		venv = func(name string) (string, bool) {
			if v, ok := env(name); ok {
				return v, ok
			}
			for _, k := range s.cfg.APIKeys {
				if k.ValueEnv == name {
					return "not-set", true
				}
			}
			return "", false
		}
	}
	cfg, err := validate(&validator{cfg: s.cfg, file: file, env: venv, lineOf: s.lineOf})
	if err != nil {
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
	if le, ok := err.(*lineError); ok {
		return problem(file, le.line, le.msg)
	}
	return problem(file, 0, err.Error())
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
}

// lineOf maps a drawbridge path to its serverless.yml line, falling back
// to the parents as validator.line does.
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
	s.problems = append(s.problems, Problem{File: s.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (s *slsImport) warnf(line int, format string, args ...any) {
	s.warnings = append(s.warnings, Problem{File: s.file, Line: line, Msg: "warning: " + fmt.Sprintf(format, args...)})
}

// fail records err (a lineError from the resolver) and reports false.
func (s *slsImport) fail(err error) bool {
	if le, ok := err.(*lineError); ok {
		s.errorf(le.line, "%s", le.msg)
	} else {
		s.errorf(0, "%v", err)
	}
	return false
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

// list reads a sequence (a single value counts as a list of one when
// single is true, as the framework allows for some keys).
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
	if name, _ := p.get("name"); name != nil {
		if v, ok := s.text(name, "provider.name"); ok && v != "aws" {
			s.errorf(name.line, "provider.name: %q: drawbridge imports aws services only", v)
		}
	} else {
		s.errorf(pline, "provider.name is required (aws)")
	}
	s.stageAndRegion(p)
	s.throttling(top)
	s.policy(p)
	s.apiKeys(top, p)
	s.functions(top, p)
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
	"profile": skip(awsOnly), "endpointType": skip(awsOnly), "apiName": skip(awsOnly),
	"eventBridge": skip(awsOnly), "kmsKeyArn": skip(awsOnly), "httpApi": skip(awsOnly),
	"websocketsApiName": skip(awsOnly), "websocketsApiRouteSelectionExpression": skip(awsOnly),
	"alb": skip(awsOnly), "ecr": skip(awsOnly), "s3": skip(awsOnly), "disableRollback": skip(awsOnly),
	"rollbackConfiguration": skip(awsOnly), "logDataProtectionPolicy": skip(awsOnly),
	"cloudFront": skip(awsOnly), "runtimeManagement": skip(awsOnly),
}

func (s *slsImport) serviceName(top *snode) {
	n, line := top.get("service")
	if n == nil {
		s.errorf(top.line, "serverless.yml: service is required")
		return
	}
	if v := s.val(n); v != nil && v.kind == snMap {
		// the framework's old form: service: {name: x}
		n, _ = v.get("name")
	}
	if name, ok := s.text(n, "service"); ok {
		s.service = name
	}
	_ = line
}

// The plugins whose configuration drawbridge reads.
const (
	pluginThrottling = "serverless-api-gateway-throttling"
	pluginAPIKey     = "serverless-add-api-key"
)

func (s *slsImport) pluginList(top *snode) {
	n, _ := top.get("plugins")
	v := s.val(n)
	if v != nil && v.kind == snMap {
		n, _ = v.get("modules") // {localPath, modules}
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
	custom := s.val(first(top.get("custom")))
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
	t := &Throttle{Rate: pluginRate, Burst: pluginBurst}
	rl, bl := s.throttleFields(m, "custom.apiGatewayThrottling", t)
	s.from("$.throttle.rate", rl, "custom.apiGatewayThrottling.maxRequestsPerSecond")
	s.from("$.throttle.burst", bl, "custom.apiGatewayThrottling.maxConcurrentRequests")
	s.cfg.Throttle = t
	s.global = t
	s.from("$.throttle", line, "custom.apiGatewayThrottling")
}

func first(n *snode, _ int) *snode { return n }

// throttleFields overrides t with the plugin's fields found in m and
// returns their lines.
func (s *slsImport) throttleFields(m *snode, what string, t *Throttle) (rateLine, burstLine int) {
	if n, line := m.get("maxRequestsPerSecond"); n != nil {
		if v, ok := s.number(n, what+".maxRequestsPerSecond"); ok {
			t.Rate = Number(v)
			rateLine = line
		}
	}
	if n, line := m.get("maxConcurrentRequests"); n != nil {
		if v, ok := s.integer(n, what+".maxConcurrentRequests"); ok {
			t.Burst = Int(v)
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
	if ag := s.val(first(p.get("apiGateway"))); ag != nil && ag.kind == snMap {
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
	s.cfg.ResourcePolicy = Policy(b)
	s.from("$.resource_policy", line, key)
}

// keyEnvName is the variable a key without a value is read from: AWS
// generates such keys, so their value must be given to drawbridge.
func keyEnvName(name string) string {
	var b strings.Builder
	b.WriteString("DRAWBRIDGE_KEY_")
	for _, c := range strings.ToUpper(name) {
		if c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// envOnly matches a value that is exactly ${env:NAME} (with an optional
// fallback): the key stays in the environment, as value_env.
var envOnly = regexp.MustCompile(`^\$\{\s*env:([A-Za-z_][A-Za-z0-9_]*)\s*(,[^{}]*)?\}$`)

// keyValue fills k's value_env or sha256 from a serverless key value: none
// (AWS would generate it) → value_env DRAWBRIDGE_KEY_<NAME>; ${env:X} →
// value_env X; any other value → its SHA-256, with a warning that the
// key is written in the file. The plain value is never kept.
func (s *slsImport) keyValue(k *APIKey, n *snode, line int, what string) {
	if n == nil {
		k.ValueEnv = keyEnvName(k.Name)
		return
	}
	if n.kind == snScalar && n.typ == tString {
		if m := envOnly.FindStringSubmatch(n.str); m != nil {
			if _, set := s.r.env(m[1]); set || m[2] == "" {
				k.ValueEnv = m[1]
				return
			}
		}
	}
	v := s.val(n)
	if v == nil {
		return
	}
	if v.kind == snMap {
		if enc, _ := v.get("encrypted"); enc != nil {
			s.errorf(line, "%s: KMS-encrypted values cannot be decrypted outside AWS: put the key in an environment variable and write value: ${env:NAME}", what)
			return
		}
	}
	val, ok := s.text(v, what)
	if !ok {
		return
	}
	if len(val) < 20 || len(val) > 128 {
		s.errorf(line, "%s: API Gateway keys are 20 to 128 characters, this one has %d", what, len(val))
		return
	}
	sum := sha256.Sum256([]byte(val))
	k.SHA256 = hex.EncodeToString(sum[:])
	s.warnf(line, "%s: the key is written in the file, so whoever reads the file can call the API: use value: ${env:NAME}", what)
}

var planRules = map[string]rule{
	"name": use, "quota": use, "throttle": use, "description": skip(awsOnly), "tags": skip(awsOnly),
}

// plan reads a usage plan body: quota {limit, period, offset}, throttle
// {burstLimit, rateLimit}.
func (s *slsImport) plan(m *snode, what, path string) UsagePlan {
	var up UsagePlan
	if q, line := m.get("quota"); q != nil {
		if qm := s.keys(q, what+".quota", true, map[string]rule{"limit": use, "period": use, "offset": use}); qm != nil {
			up.Quota = &Quota{}
			s.from(path+".quota", line, what+".quota")
			if n, l := qm.get("limit"); n != nil {
				if v, ok := s.integer(n, what+".quota.limit"); ok {
					up.Quota.Limit = Int(v)
					s.from(path+".quota.limit", l, what+".quota.limit")
				}
			}
			if n, l := qm.get("period"); n != nil {
				if v, ok := s.text(n, what+".quota.period"); ok {
					up.Quota.Period = strings.ToUpper(v)
					s.from(path+".quota.period", l, what+".quota.period")
				}
			}
			if n, l := qm.get("offset"); n != nil {
				if v, ok := s.integer(n, what+".quota.offset"); ok {
					up.Quota.Offset = Int(v)
					s.from(path+".quota.offset", l, what+".quota.offset")
				}
			}
		}
	}
	if t, line := m.get("throttle"); t != nil {
		if tm := s.keys(t, what+".throttle", true, map[string]rule{"burstLimit": use, "rateLimit": use}); tm != nil {
			up.Throttle = &Throttle{}
			s.from(path+".throttle", line, what+".throttle")
			if n, l := tm.get("rateLimit"); n != nil {
				if v, ok := s.number(n, what+".throttle.rateLimit"); ok {
					up.Throttle.Rate = Number(v)
					s.from(path+".throttle.rate", l, what+".throttle.rateLimit")
				}
			}
			if n, l := tm.get("burstLimit"); n != nil {
				if v, ok := s.integer(n, what+".throttle.burstLimit"); ok {
					up.Throttle.Burst = Int(v)
					s.from(path+".throttle.burst", l, what+".throttle.burstLimit")
				}
			}
		}
	}
	return up
}

// addPlan adds a named plan; the same name twice must mean the same plan.
func (s *slsImport) addPlan(name string, up UsagePlan, line int, what string) {
	if s.cfg.UsagePlans == nil {
		s.cfg.UsagePlans = map[string]UsagePlan{}
	}
	if old, ok := s.cfg.UsagePlans[name]; ok {
		if !samePlan(old, up) && (up.Quota != nil || up.Throttle != nil) {
			s.errorf(line, "%s: usage plan %q is defined twice with different limits", what, name)
		}
		return
	}
	s.cfg.UsagePlans[name] = up
	s.from("$.usage_plans."+name, line, what)
}

func samePlan(a, b UsagePlan) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func (s *slsImport) addKey(k APIKey, line int, what string) {
	for _, o := range s.cfg.APIKeys {
		if o.Name == k.Name {
			s.errorf(line, "%s: API key %q is defined twice", what, k.Name)
			return
		}
	}
	path := fmt.Sprintf("$.api_keys[%d]", len(s.cfg.APIKeys))
	s.cfg.APIKeys = append(s.cfg.APIKeys, k)
	s.from(path, line, what)
}

func (s *slsImport) apiKeys(top, p *snode) {
	if n, line := p.get("apiKeys"); n != nil {
		s.errorf(line, "provider.apiKeys: Serverless v3 reads API keys from provider.apiGateway.apiKeys; move them there")
	}
	s.pluginKeys(top, p)
	s.nativeKeys(p)
}

var pluginKeyRules = map[string]rule{
	"name": use, "value": use, "usagePlan": use, "description": skip(awsOnly), "customerId": skip(awsOnly),
}

// pluginKeys reads custom.apiKeys of serverless-add-api-key: a list, or a
// list per stage; each key's usagePlan, else provider.usagePlan, else a
// plan of its own with no limits ("<name>-usage-plan", as the plugin).
func (s *slsImport) pluginKeys(top, p *snode) {
	custom := s.val(first(top.get("custom")))
	if custom == nil || custom.kind != snMap {
		return
	}
	n, line := custom.get("apiKeys")
	if n == nil {
		return
	}
	if !s.plugins[pluginAPIKey] {
		s.warnf(line, "custom.apiKeys is applied although plugins does not list %s", pluginAPIKey)
	}
	what := "custom.apiKeys"
	if v := s.val(n); v != nil && v.kind == snMap {
		// stage-specific: custom.apiKeys.<stage>: [...]
		n, line = v.get(s.cfg.Stage)
		what += "." + s.cfg.Stage
		if n == nil {
			s.warnf(v.line, "custom.apiKeys has no keys for stage %s", s.cfg.Stage)
			return
		}
	}
	_ = line
	var defPlan *snode
	if up, _ := p.get("usagePlan"); up != nil {
		defPlan = s.keys(up, "provider.usagePlan", true, planRules)
	}
	for i, item := range s.list(n, what) {
		w := fmt.Sprintf("%s[%d]", what, i)
		m := s.keys(item, w, true, pluginKeyRules)
		if m == nil {
			continue
		}
		k := APIKey{}
		nn, _ := m.get("name")
		if nn == nil {
			s.errorf(m.line, "%s: name is required", w)
			continue
		}
		name, ok := s.text(nn, w+".name")
		if !ok {
			continue
		}
		k.Name = name
		val, vline := m.get("value")
		s.keyValue(&k, val, vline, w+".value")
		path := fmt.Sprintf("$.api_keys[%d]", len(s.cfg.APIKeys))
		planNode, pl := m.get("usagePlan")
		planWhat := w + ".usagePlan"
		if planNode == nil && defPlan != nil {
			planNode, pl, planWhat = defPlan, defPlan.line, "provider.usagePlan"
		}
		if planNode != nil {
			pm := s.keys(planNode, planWhat, true, planRules)
			if pm == nil {
				continue
			}
			pn, _ := pm.get("name")
			if pn == nil {
				s.errorf(pm.line, "%s: name is required", planWhat)
				continue
			}
			pname, ok := s.text(pn, planWhat+".name")
			if !ok {
				continue
			}
			s.addPlan(pname, s.plan(pm, planWhat, "$.usage_plans."+pname), pl, planWhat)
			k.Plan = pname
		} else {
			k.Plan = name + "-usage-plan"
			s.addPlan(k.Plan, UsagePlan{}, m.line, w)
		}
		s.from(path+".plan", pl, planWhat)
		s.from(path+".value_env", vline, w+".value")
		s.from(path+".name", m.line, w+".name")
		s.addKey(k, m.line, w)
	}
}

var nativeKeyRules = map[string]rule{
	"name": use, "value": use, "enabled": use, "description": skip(awsOnly), "customerId": skip(awsOnly),
}

var apiGatewayRules = map[string]rule{
	"resourcePolicy": use, "apiKeys": use, "usagePlan": use, "apiKeySourceType": use,
	"restApiId": skip(awsOnly), "restApiRootResourceId": skip(awsOnly), "restApiResources": skip(awsOnly),
	"websocketApiId": skip(awsOnly), "minimumCompressionSize": skip(awsOnly), "binaryMediaTypes": skip(awsOnly),
	"description": skip(awsOnly), "shouldStartNameWithService": skip(awsOnly), "metrics": skip(awsOnly),
	"disableDefaultEndpoint": skip(awsOnly), "request": skip(awsOnly), "stage": skip(awsOnly),
	"timeoutInMillis": skip(awsOnly),
}

// nativeKeys reads provider.apiGateway.apiKeys and usagePlan, the
// framework's own form. One usagePlan (a mapping) is named
// "<service>-<stage>" as the framework names it and holds every key; a
// list of {PLAN: {...}} names plans that keys are grouped under
// (apiKeys: [{PLAN: [key, ...]}]).
func (s *slsImport) nativeKeys(p *snode) {
	ag := s.keys(first(p.get("apiGateway")), "provider.apiGateway", false, apiGatewayRules)
	if ag == nil {
		return
	}
	if n, line := ag.get("apiKeySourceType"); n != nil {
		if v, ok := s.text(n, "provider.apiGateway.apiKeySourceType"); ok && strings.ToUpper(v) != "HEADER" {
			s.errorf(line, "provider.apiGateway.apiKeySourceType %s: drawbridge reads keys from the x-api-key header only", v)
		}
	}
	single := ""
	if n, line := ag.get("usagePlan"); n != nil {
		v := s.val(n)
		switch {
		case v == nil:
		case v.kind == snMap:
			single = s.service + "-" + s.cfg.Stage
			m := s.keys(v, "provider.apiGateway.usagePlan", true, planRules)
			if m != nil {
				s.addPlan(single, s.plan(m, "provider.apiGateway.usagePlan", "$.usage_plans."+single), line, "provider.apiGateway.usagePlan")
			}
		case v.kind == snSeq:
			for i, item := range v.items {
				w := fmt.Sprintf("provider.apiGateway.usagePlan[%d]", i)
				im := s.val(item)
				if im == nil || im.kind != snMap || len(im.keys) != 1 {
					s.errorf(item.line, "%s: want {PLAN_NAME: {quota, throttle}}", w)
					continue
				}
				name := im.keys[0]
				m := s.keys(im.vals[0], w+"."+name, true, planRules)
				up := UsagePlan{}
				if m != nil {
					up = s.plan(m, w+"."+name, "$.usage_plans."+name)
				}
				s.addPlan(name, up, im.kline[0], w)
			}
		default:
			s.errorf(v.line, "provider.apiGateway.usagePlan: want a mapping or a list of plans, got %s", describe(v))
		}
	}
	n, _ := ag.get("apiKeys")
	items := s.list(n, "provider.apiGateway.apiKeys")
	if len(items) > 0 && single == "" && len(s.cfg.UsagePlans) == 0 {
		// the framework makes a plan without limits for the keys
		single = s.service + "-" + s.cfg.Stage
		s.addPlan(single, UsagePlan{}, n.line, "provider.apiGateway.apiKeys")
	}
	for i, item := range items {
		w := fmt.Sprintf("provider.apiGateway.apiKeys[%d]", i)
		v := s.val(item)
		if v == nil {
			continue
		}
		if v.kind == snMap && len(v.keys) == 1 && v.keys[0] != "name" {
			// {PLAN: [keys]}
			plan := v.keys[0]
			if _, ok := s.cfg.UsagePlans[plan]; !ok {
				s.errorf(v.kline[0], "%s: usage plan %q is not in provider.apiGateway.usagePlan", w, plan)
				continue
			}
			for j, ki := range s.list(v.vals[0], w+"."+plan) {
				s.nativeKey(ki, fmt.Sprintf("%s.%s[%d]", w, plan, j), plan)
			}
			continue
		}
		if single == "" {
			s.errorf(v.line, "%s: with several usage plans, group keys under a plan name", w)
			continue
		}
		s.nativeKey(v, w, single)
	}
}

// nativeKey reads one framework key: a name, or {name, value, enabled}.
func (s *slsImport) nativeKey(n *snode, what, plan string) {
	v := s.val(n)
	if v == nil {
		return
	}
	k := APIKey{Plan: plan}
	path := fmt.Sprintf("$.api_keys[%d]", len(s.cfg.APIKeys))
	if v.kind == snScalar {
		name, ok := s.text(v, what)
		if !ok {
			return
		}
		k.Name = name
		s.keyValue(&k, nil, v.line, what)
		s.addKey(k, v.line, what)
		return
	}
	m := s.keys(v, what, true, nativeKeyRules)
	if m == nil {
		return
	}
	nn, _ := m.get("name")
	if nn == nil {
		s.errorf(m.line, "%s: name is required", what)
		return
	}
	name, ok := s.text(nn, what+".name")
	if !ok {
		return
	}
	k.Name = name
	val, vline := m.get("value")
	s.keyValue(&k, val, vline, what+".value")
	s.from(path+".value_env", vline, what+".value")
	if en, l := m.get("enabled"); en != nil {
		if b, ok := s.boolean(en, what+".enabled"); ok {
			k.Enabled = &b
			s.from(path+".enabled", l, what+".enabled")
		}
	}
	s.addKey(k, m.line, what)
}

var functionRules = map[string]rule{
	"events": use, "environment": use, "timeout": use,
	"handler": skip(awsOnly), "name": skip(awsOnly), "description": skip(awsOnly), "runtime": skip(awsOnly),
	"memorySize": skip(awsOnly), "vpc": skip(awsOnly), "role": skip(awsOnly), "layers": skip(awsOnly),
	"package": skip(awsOnly), "tags": skip(awsOnly), "reservedConcurrency": skip(awsOnly + "; set throttle.max_concurrent on the route instead"),
	"provisionedConcurrency": skip(awsOnly), "onError": skip(awsOnly), "destinations": skip(awsOnly),
	"image": skip(awsOnly), "architecture": skip(awsOnly), "ephemeralStorage": skip(awsOnly),
	"url": skip(awsOnly), "tracing": skip(awsOnly), "kmsKeyArn": skip(awsOnly), "disableLogs": skip(awsOnly),
	"logRetentionInDays": skip(awsOnly), "maximumRetryAttempts": skip(awsOnly), "maximumEventAge": skip(awsOnly),
	"condition": skip(awsOnly), "dependsOn": skip(awsOnly), "fileSystemConfig": skip(awsOnly),
	"snapStart": skip(awsOnly), "runtimeManagement": skip(awsOnly), "logs": skip(awsOnly),
	"iamRoleStatements": skip(awsOnly), "iamRoleStatementsName": skip(awsOnly), "versionFunction": skip(awsOnly),
}

// routeKey groups the events of one function that differ only in method
// into one route, as drawbridge.yaml would write them.
type routeKey struct {
	fn, path string
	private  bool
	throttle string
}

func (s *slsImport) functions(top, p *snode) {
	fns := s.val(first(top.get("functions")))
	if fns == nil || fns.kind == snNull {
		s.errorf(top.line, "functions: no functions, so no routes")
		return
	}
	if fns.kind != snMap {
		s.errorf(fns.line, "functions: want a mapping of function names, got %s", describe(fns))
		return
	}
	provEnv := s.val(first(p.get("environment")))
	provTimeout, ptl := p.get("timeout")
	index := map[routeKey]int{}
	for i, name := range fns.keys {
		what := "functions." + name
		fn := s.keys(fns.vals[i], what, false, functionRules)
		if fn == nil {
			continue
		}
		events := s.list(first(fn.get("events")), what+".events")
		if len(events) == 0 {
			s.warnf(fns.kline[i], "%s: ignored: it has no http or httpApi events", what)
			continue
		}
		target, tline, twhat := s.target(fn, provEnv, what)
		timeout, tol, towhat := s.timeout(fn, provTimeout, ptl, what)
		for j, ev := range events {
			ew := fmt.Sprintf("%s.events[%d]", what, j)
			e := s.val(ev)
			if e == nil {
				continue
			}
			if e.kind != snMap || len(e.keys) != 1 {
				s.errorf(e.line, "%s: want one event type such as http: or httpApi:", ew)
				continue
			}
			typ := e.keys[0]
			var r *eventRoute
			switch typ {
			case "http":
				r = s.httpEvent(e.vals[0], ew+".http", e.kline[0])
			case "httpApi":
				r = s.httpAPIEvent(e.vals[0], ew+".httpApi", e.kline[0])
			default:
				s.warnf(e.kline[0], "%s: %s event: ignored: %s", ew, typ, awsOnly)
				continue
			}
			if r == nil {
				continue
			}
			if tline <= 0 {
				if tline == 0 {
					s.errorf(e.kline[0], "%s: environment.URL is required: it is the target drawbridge forwards to", what)
					tline = -1 // once per function
				}
				continue
			}
			k := routeKey{fn: name, path: r.path, private: r.private, throttle: throttleID(r.throttle)}
			at, ok := index[k]
			if !ok {
				at = len(s.cfg.Routes)
				index[k] = at
				path := fmt.Sprintf("$.routes[%d]", at)
				s.cfg.Routes = append(s.cfg.Routes, Route{
					Path: r.path, Target: target, Timeout: Duration(timeout),
					APIKeyRequired: r.private, Throttle: r.throttle,
				})
				s.from(path, r.line, ew)
				s.from(path+".path", r.pathLine, ew+".path")
				s.from(path+".target", tline, twhat)
				s.from(path+".timeout", tol, towhat)
				s.from(path+".api_key_required", r.privateLine, ew+".private")
				s.from(path+".throttle", r.throttleLine, ew+".throttling")
				s.from(path+".throttle.rate", r.rateLine, r.rateKey)
				s.from(path+".throttle.burst", r.burstLine, r.burstKey)
			}
			rt := &s.cfg.Routes[at]
			if r.method == "" {
				rt.Methods = append(rt.Methods, AllMethods...)
			} else {
				rt.Methods = append(rt.Methods, r.method)
			}
			s.from(fmt.Sprintf("$.routes[%d].methods[%d]", at, len(rt.Methods)-1), r.methodLine, ew+".method")
		}
	}
	for i := range s.cfg.Routes {
		s.cfg.Routes[i].Methods = dedupe(s.cfg.Routes[i].Methods)
	}
	if s.api == "" {
		s.api = DefaultAPI
	}
	s.cfg.API = s.api
	if s.api == "http" && s.cfg.ResourcePolicy != "" {
		s.warnf(s.lineOf("$.resource_policy"), "the resource policy is enforced by drawbridge, although AWS HTTP APIs (httpApi events) have none")
	}
	s.capTimeouts()
	if len(s.cfg.Routes) == 0 && len(s.problems) == 0 {
		s.errorf(fns.line, "functions: no http or httpApi events, so no routes")
	}
}

func dedupe(ms []string) []string {
	seen := map[string]bool{}
	out := ms[:0]
	for _, m := range ms {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

func throttleID(t *Throttle) string {
	if t == nil {
		return ""
	}
	return fmt.Sprintf("%g/%d/%d", float64(t.Rate), t.Burst, t.MaxConcurrent)
}

// target is the function's environment.URL, else the provider's.
func (s *slsImport) target(fn, provEnv *snode, what string) (string, int, string) {
	for _, c := range []struct {
		env  *snode
		what string
	}{{s.val(first(fn.get("environment"))), what + ".environment.URL"}, {provEnv, "provider.environment.URL"}} {
		if c.env == nil || c.env.kind != snMap {
			continue
		}
		if u, line := c.env.get("URL"); u != nil {
			if v, ok := s.text(u, c.what); ok {
				return v, line, c.what
			}
			return "", -1, c.what
		}
	}
	return "", 0, ""
}

// timeout is the function's Lambda timeout (seconds; the framework's
// default 6), capped at API Gateway's integration limit.
func (s *slsImport) timeout(fn, prov *snode, pline int, what string) (time.Duration, int, string) {
	n, line := fn.get("timeout")
	w := what + ".timeout"
	if n == nil {
		n, line, w = prov, pline, "provider.timeout"
	}
	if n == nil {
		return serverlessTimeout, 0, ""
	}
	v, ok := s.integer(n, w)
	if !ok {
		return serverlessTimeout, line, w
	}
	if v <= 0 {
		s.errorf(line, "%s: must be a positive number of seconds", w)
		return serverlessTimeout, line, w
	}
	return time.Duration(min(v, 3600)) * time.Second, line, w
}

// capTimeouts applies API Gateway's integration limit (29 s REST, 30 s
// HTTP) to the Lambda timeouts, which may be longer.
func (s *slsImport) capTimeouts() {
	limit := restMaxTimeout
	if s.api == "http" {
		limit = httpMaxTimeout
	}
	for i := range s.cfg.Routes {
		r := &s.cfg.Routes[i]
		if time.Duration(r.Timeout) > limit {
			o := s.origins[fmt.Sprintf("$.routes[%d].timeout", i)]
			s.warnf(o.Line, "%s: %s: API Gateway ends requests after %s, so drawbridge uses %s", o.Key, time.Duration(r.Timeout), limit, limit)
			r.Timeout = Duration(limit)
		}
	}
}

// eventRoute is one http or httpApi event.
type eventRoute struct {
	path, method string // method "" = any
	private      bool
	throttle     *Throttle
	line         int
	pathLine     int
	methodLine   int
	privateLine  int
	throttleLine int
	rateLine     int
	burstLine    int
	rateKey      string
	burstKey     string
}

var httpEventRules = map[string]rule{
	"path": use, "method": use, "private": use, "throttling": use, "authorizer": use,
	"cors":          skip("drawbridge does not answer CORS preflights; let the backend do it"),
	"integration":   skip(awsOnly),
	"request":       skip("request validation and mapping are API Gateway features drawbridge does not have"),
	"response":      skip(awsOnly),
	"async":         skip(awsOnly),
	"operationId":   skip(awsOnly),
	"summary":       skip(awsOnly),
	"description":   skip(awsOnly),
	"documentation": skip(awsOnly),
	"connectionId":  skip(awsOnly),
}

var httpAPIEventRules = map[string]rule{
	"path": use, "method": use, "throttling": use, "authorizer": use, "private": use,
}

func (s *slsImport) flavour(api string, line int, what string) bool {
	if s.api == "" {
		s.api, s.apiLine = api, line
		return true
	}
	if s.api != api {
		s.errorf(line, "%s: http (REST) and httpApi events are mixed; drawbridge serves one API flavour (the first event, line %d, is %s)", what, s.apiLine, flavourName(s.api))
		return false
	}
	return true
}

func flavourName(api string) string {
	if api == "http" {
		return "httpApi"
	}
	return "http"
}

func (s *slsImport) httpEvent(n *snode, what string, line int) *eventRoute {
	if !s.flavour("rest", line, what) {
		return nil
	}
	r := &eventRoute{line: line, pathLine: line, methodLine: line}
	v := s.val(n)
	if v == nil {
		return nil
	}
	if v.kind == snScalar {
		// "GET forward"
		method, path, ok := strings.Cut(strings.TrimSpace(v.str), " ")
		if !ok {
			s.errorf(v.line, "%s: want \"METHOD path\" or a mapping with path and method", what)
			return nil
		}
		return s.finishEvent(r, method, strings.TrimSpace(path), what, v.line)
	}
	m := s.keys(v, what, true, httpEventRules)
	if m == nil {
		return nil
	}
	if a, l := m.get("authorizer"); a != nil {
		s.errorf(l, "%s.authorizer: authorizers are not supported: drawbridge would let through requests the authorizer rejects", what)
		return nil
	}
	if p, l := m.get("private"); p != nil {
		if b, ok := s.boolean(p, what+".private"); ok {
			r.private, r.privateLine = b, l
		}
	}
	s.endpointThrottle(m, r, what)
	return s.fields(m, r, what)
}

func (s *slsImport) httpAPIEvent(n *snode, what string, line int) *eventRoute {
	if !s.flavour("http", line, what) {
		return nil
	}
	r := &eventRoute{line: line, pathLine: line, methodLine: line}
	v := s.val(n)
	if v == nil {
		return nil
	}
	if v.kind == snScalar {
		str := strings.TrimSpace(v.str)
		if str == "*" {
			return s.finishEvent(r, "*", "/{proxy+}", what, v.line)
		}
		method, path, ok := strings.Cut(str, " ")
		if !ok {
			s.errorf(v.line, "%s: want \"METHOD /path\", \"*\" or a mapping with path and method", what)
			return nil
		}
		return s.finishEvent(r, method, strings.TrimSpace(path), what, v.line)
	}
	m := s.keys(v, what, true, httpAPIEventRules)
	if m == nil {
		return nil
	}
	if a, l := m.get("authorizer"); a != nil {
		s.errorf(l, "%s.authorizer: authorizers are not supported: drawbridge would let through requests the authorizer rejects", what)
		return nil
	}
	if _, l := m.get("private"); l != 0 {
		s.errorf(l, "%s.private: HTTP APIs have no API keys; use an http event for a private route", what)
		return nil
	}
	s.endpointThrottle(m, r, what)
	return s.fields(m, r, what)
}

func (s *slsImport) fields(m *snode, r *eventRoute, what string) *eventRoute {
	pn, pl := m.get("path")
	if pn == nil {
		s.errorf(m.line, "%s: path is required", what)
		return nil
	}
	path, ok := s.text(pn, what+".path")
	if !ok {
		return nil
	}
	r.pathLine = pl
	method := "*"
	if mn, ml := m.get("method"); mn != nil {
		if method, ok = s.text(mn, what+".method"); !ok {
			return nil
		}
		r.methodLine = ml
	} else if s.api == "rest" {
		s.errorf(m.line, "%s: method is required", what)
		return nil
	}
	return s.finishEvent(r, method, path, what, pl)
}

var proxyParam = regexp.MustCompile(`^\{[A-Za-z0-9_]+\+\}$`)

// finishEvent normalises the path ("forward" → "/forward", a trailing
// {proxy+} → "/*") and the method ("any", "*" → all).
func (s *slsImport) finishEvent(r *eventRoute, method, path, what string, line int) *eventRoute {
	m := strings.ToUpper(strings.TrimSpace(method))
	if m == "ANY" || m == "*" {
		m = ""
	}
	r.method = m
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		segs = nil
	}
	prefix := false
	for i, seg := range segs {
		switch {
		case i == len(segs)-1 && proxyParam.MatchString(seg):
			prefix = true
			segs = segs[:i]
		case strings.ContainsAny(seg, "{}"):
			s.errorf(line, "%s.path %q: path parameters such as %s are not supported; end the path in {proxy+} for a prefix route", what, path, seg)
			return nil
		}
	}
	p := "/" + strings.Join(segs, "/")
	if prefix {
		p = strings.TrimSuffix(p, "/") + "/*"
	}
	r.path = p
	return r
}

var endpointThrottleRules = map[string]rule{"maxRequestsPerSecond": use, "maxConcurrentRequests": use, "disabled": use}

// endpointThrottle reads an event's throttling (the plugin's per-endpoint
// settings): fields left out come from custom.apiGatewayThrottling, then
// the plugin defaults; disabled: true lifts the endpoint's limit to the
// account's (the plugin writes -1, "no method limit").
func (s *slsImport) endpointThrottle(m *snode, r *eventRoute, what string) {
	n, line := m.get("throttling")
	if n == nil {
		return
	}
	w := what + ".throttling"
	tm := s.keys(n, w, true, endpointThrottleRules)
	if tm == nil {
		return
	}
	if !s.plugins[pluginThrottling] {
		s.warnf(line, "%s is applied although plugins does not list %s", w, pluginThrottling)
	}
	r.throttleLine = line
	if d, _ := tm.get("disabled"); d != nil {
		if b, ok := s.boolean(d, w+".disabled"); ok && b {
			r.throttle = &Throttle{Rate: DefaultAccountRate, Burst: DefaultAccountBurst}
			return
		}
	}
	t := &Throttle{Rate: pluginRate, Burst: pluginBurst}
	if s.global != nil {
		t.Rate, t.Burst = s.global.Rate, s.global.Burst
	}
	r.rateLine, r.burstLine = s.throttleFields(tm, w, t)
	r.rateKey, r.burstKey = w+".maxRequestsPerSecond", w+".maxConcurrentRequests"
	r.throttle = t
}
