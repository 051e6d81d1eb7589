package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/drawbridge/drawbridge/internal/routepath"
)

// Error is a failed load: one Problem per line of output.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// LookupEnv reads an environment variable; os.LookupEnv in production,
// a map in tests.
type LookupEnv func(name string) (string, bool)

// Load reads and validates the drawbridge.yaml at path, with secrets from
// the process environment.
func Load(path string) (*Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, os.LookupEnv)
}

// ReadFile reads a config file; its error is an *Error naming the file.
func ReadFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Problems: []Problem{{File: path, Msg: "cannot read config: " + errText(err)}}}
	}
	return data, nil
}

// errText strips the path from an os error: the Problem already names it.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse decodes and validates a drawbridge.yaml read from file (the name
// is used in messages and to resolve resource_policy_file). Other formats
// are read by their own packages, which hand the result to Validate.
func Parse(file string, data []byte, env LookupEnv) (*Config, error) {
	body, err := Document(file, data)
	if err != nil {
		return nil, err
	}
	cfg := &Config{}
	if err := Decode(file, body, cfg); err != nil {
		return nil, err
	}
	cfg.File = file
	cfg.Lines = yamlLines(body)
	return Validate(cfg, env)
}

func problem(file string, line int, msg string) error {
	return &Error{Problems: []Problem{{File: file, Line: line, Msg: msg}}}
}

// Document reads data as exactly one YAML document and returns its body.
// A malformed file is an *Error with the line the parser stopped at.
func Document(file string, data []byte) (ast.Node, error) {
	f, err := parseBytes(data)
	if err != nil {
		return nil, problem(file, yamlLine(err), yamlMessage(err))
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return nil, problem(file, 0, "config is empty")
	}
	if len(f.Docs) > 1 {
		return nil, problem(file, docLine(f.Docs[1]), "more than one YAML document")
	}
	return f.Docs[0].Body, nil
}

// Decode decodes node into v as Parse decodes drawbridge.yaml: strictly
// (an unknown key is an error), with the config's own scalar types. Its
// error is an *Error with one Problem at the offending line of file.
func Decode(file string, node ast.Node, v any) error {
	if err := decode(node, v); err != nil {
		var ne *nodeError
		if errors.As(err, &ne) {
			return problem(file, ne.line, ne.msg)
		}
		return problem(file, yamlLine(err), yamlMessage(err))
	}
	return nil
}

// Validate fills the defaults of cfg and checks it, whatever format it
// was read from: drawbridge.yaml and serverless.yml get the same checks.
// Problems are reported at cfg.File and cfg.Line of the key, so a reader
// of another format fills cfg.Lines with its own lines first. env reads
// the secrets (nil: none is set).
func Validate(cfg *Config, env LookupEnv) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	if cfg.Lines == nil {
		cfg.Lines = map[string]int{}
	}
	v := &validator{cfg: cfg, file: cfg.File, env: env}
	v.run()
	if len(v.problems) > 0 {
		return nil, &Error{Problems: v.problems}
	}
	cfg.Warnings = append(cfg.Warnings, v.warnings...)
	return cfg, nil
}

// parseBytes is parser.ParseBytes made panic-safe, as decode.
func parseBytes(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, errors.New("malformed YAML that the parser cannot read")
		}
	}()
	return parser.ParseBytes(data, 0)
}

// decode turns the AST into cfg. goccy/go-yaml can panic on odd input
// (found by FuzzParse: "routes:  ! " dereferences a nil sequence), and a
// config file must never crash the gateway, so a panic becomes an error.
func decode(body ast.Node, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &nodeError{line: NodeLine(body), msg: "malformed YAML that the parser cannot decode"}
		}
	}()
	return yaml.NodeToValue(body, v, yaml.Strict())
}

func docLine(d *ast.DocumentNode) int {
	if d.Body != nil && d.Body.GetToken() != nil {
		return d.Body.GetToken().Position.Line
	}
	return 0
}

// yamlLine digs the line out of a goccy/go-yaml error.
func yamlLine(err error) int {
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
		return ye.GetToken().Position.Line
	}
	return 0
}

var goTypeNoise = regexp.MustCompile(`cannot unmarshal (.+?) into Go struct field \S+ of type (\S+)`)

// yamlMessage is the library's message without its source excerpt (which
// could show a neighbouring line) and with Go type names made readable.
func yamlMessage(err error) string {
	var ye yaml.Error
	msg := err.Error()
	if errors.As(err, &ye) {
		msg = ye.GetMessage()
	}
	if m := goTypeNoise.FindStringSubmatch(msg); m != nil {
		msg = "wrong type: got " + yamlKind(m[1]) + ", want " + yamlKind(m[2])
	}
	return msg
}

func yamlKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map"):
		return "a mapping"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool", goType == "*bool":
		return "a boolean (true or false)"
	}
	return "a mapping"
}

// Policy is an IAM policy document as compact JSON text ("" when unset).
type Policy string

// UnmarshalYAML accepts the document as YAML, or as a string of JSON.
func (p *Policy) UnmarshalYAML(node ast.Node) error {
	var v any
	if node.Type() == ast.StringType || node.Type() == ast.LiteralType {
		s := node.GetToken().Value
		if ln, ok := node.(*ast.LiteralNode); ok {
			s = ln.Value.Value
		}
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nodeErrorf(node, "resource_policy: not a JSON document: %v", err)
		}
	} else if err := yaml.NodeToValue(node, &v); err != nil {
		return nodeErrorf(node, "resource_policy: %s", yamlMessage(err))
	}
	if _, ok := v.(map[string]any); !ok {
		return nodeErrorf(node, "resource_policy: want a policy document (a mapping with Statement)")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nodeErrorf(node, "resource_policy: %v", err)
	}
	*p = Policy(b)
	return nil
}

type validator struct {
	cfg      *Config
	file     string
	env      LookupEnv
	problems []Problem
	warnings []Problem
}

// line finds the line of a path such as "$.routes[2].timeout", falling
// back to its parents when the key is absent.
func (v *validator) line(path string) int { return v.cfg.Line(path) }

func (v *validator) errorf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: v.file, Line: v.line(path), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) warnf(line int, format string, args ...any) {
	v.warnings = append(v.warnings, Problem{File: v.file, Line: line, Msg: "warning: " + fmt.Sprintf(format, args...)})
}

func (v *validator) run() {
	c := v.cfg
	setDefault(&c.Stage, DefaultStage)
	setDefault(&c.API, DefaultAPI)
	setDefault(&c.Listen, DefaultListen)
	setDefault(&c.Admin, DefaultAdmin)
	setDefault(&c.AWS.Region, "us-east-1")
	setDefault(&c.AWS.AccountID, "123456789012")
	setDefault(&c.AWS.APIID, "drawbridge")
	setDefault(&c.State.Driver, "embedded")
	setDefault(&c.State.Path, DefaultStatePath)
	setDefault(&c.State.Prefix, DefaultStatePrefix)
	setDefault(&c.State.OnError, OnErrorClosed)
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = DefaultMaxBody
	}
	if c.Limits.MaxHeaderBytes == 0 {
		c.Limits.MaxHeaderBytes = DefaultMaxHeader
	}
	if c.Limits.MaxBodyMemory == 0 {
		c.Limits.MaxBodyMemory = max(DefaultMaxBodyMemory, 3*c.Limits.MaxBodyBytes)
	}
	setInt(&c.Limits.MaxHeaders, DefaultMaxHeaders)
	setInt(&c.Limits.MaxForwardedFor, DefaultMaxForwardedFor)
	setInt(&c.Limits.MaxInflight, DefaultMaxInflight)
	setInt(&c.Limits.MaxConnections, DefaultMaxConnections)
	setInt(&c.Limits.MaxConnsPerIP, DefaultMaxConnsPerIP)
	setDuration(&c.Server.ReadHeaderTimeout, DefaultReadHeader)
	setDuration(&c.Server.IdleTimeout, DefaultIdle)
	setDuration(&c.Server.ShutdownTimeout, DefaultShutdown)
	setDefault(&c.Server.Forwarder, DefaultForwarder)
	if c.AccountThrottle == nil {
		c.AccountThrottle = &Throttle{Rate: DefaultAccountRate, Burst: DefaultAccountBurst}
	}

	if !stageName.MatchString(c.Stage) {
		v.errorf("$.stage", "stage %q: use 1-128 letters, digits, '-' or '_'", c.Stage)
	}
	oneOf(v, "$.api", "api", c.API, APIREST, APIHTTP)
	v.hostPort("$.listen", "listen", c.Listen)
	if c.Admin != AdminOff {
		v.hostPort("$.admin", "admin", c.Admin)
	}
	v.console()
	oneOf(v, "$.state.driver", "state.driver", c.State.Driver, "memory", "embedded", "redis")
	oneOf(v, "$.state.on_error", "state.on_error", c.State.OnError, OnErrorClosed, OnErrorOpen)
	oneOf(v, "$.server.forwarder", "server.forwarder", c.Server.Forwarder, ForwarderReverseProxy, ForwarderLean)
	if c.Limits.MaxBodyBytes < 0 {
		v.errorf("$.limits.max_body_bytes", "limits.max_body_bytes must be positive")
	}
	if c.Limits.MaxHeaderBytes < 0 {
		v.errorf("$.limits.max_header_bytes", "limits.max_header_bytes must be positive")
	}
	if c.Limits.MaxBodyMemory/3 < c.Limits.MaxBodyBytes { // divided: 3 × a huge max_body_bytes would overflow
		// A body is copied once when complete, and large bodies may use
		// seven eighths of the budget: below 3×, one body of the maximum
		// size could never be read.
		v.errorf("$.limits.max_body_memory", "limits.max_body_memory must be at least 3 × limits.max_body_bytes (%d)", 3*c.Limits.MaxBodyBytes)
	}
	for _, l := range []struct {
		key string
		n   Int
	}{{"max_headers", c.Limits.MaxHeaders}, {"max_forwarded_for", c.Limits.MaxForwardedFor}, {"max_inflight", c.Limits.MaxInflight},
		{"max_connections", c.Limits.MaxConnections}, {"max_conns_per_ip", c.Limits.MaxConnsPerIP}} {
		if l.n < 0 {
			v.errorf("$.limits."+l.key, "limits.%s must be positive", l.key)
		}
	}
	v.tls()
	for i := range c.Egress.Allow {
		c.Egress.Lines = append(c.Egress.Lines, v.line(fmt.Sprintf("$.egress.allow[%d]", i)))
	}
	c.ClientIP.prefixes = nil // Validate may be called again on a config it filled
	for i, s := range c.ClientIP.TrustedProxies {
		p, err := ParsePrefix(s)
		if err != nil {
			v.errorf(fmt.Sprintf("$.client_ip.trusted_proxies[%d]", i), "client_ip.trusted_proxies: %v", err)
			continue
		}
		c.ClientIP.prefixes = append(c.ClientIP.prefixes, p)
	}
	v.throttle("$.throttle", "throttle", c.Throttle)
	v.throttle("$.account_throttle", "account_throttle", c.AccountThrottle)
	for name, cidrs := range c.IPSets {
		for i, s := range cidrs {
			if _, err := ParsePrefix(s); err != nil {
				v.errorf(fmt.Sprintf("$.ip_sets.%s[%d]", name, i), "ip_sets.%s: %v", name, err)
			}
		}
	}
	v.cors("$.cors", "cors", c.CORS)
	v.log()
	v.policy()
	v.plans()
	v.keys()
	v.authorizers()
	v.routes()
	v.agents()
	v.writeTimeout()
	v.tracing()
}

// writeTimeout defaults server.write_timeout to a little over the longest
// route timeout, and warns when one set by hand would cut a route's
// answers (or its 504) short.
func (v *validator) writeTimeout() {
	c := v.cfg
	var longest Duration
	for _, r := range c.Routes {
		longest = max(longest, r.Timeout)
	}
	if c.Server.WriteTimeout == 0 {
		c.Server.WriteTimeout = longest + Duration(WriteTimeoutMargin)
		return
	}
	if c.Server.WriteTimeout <= longest {
		v.warnf(v.line("$.server.write_timeout"), "server.write_timeout %v is not over the longest route timeout (%v): answers that take that long are cut off",
			time.Duration(c.Server.WriteTimeout), time.Duration(longest))
	}
}

func setDefault[S ~string](s *S, def S) {
	if *s == "" {
		*s = def
	}
}

func setInt(n *Int, def Int) {
	if *n == 0 {
		*n = def
	}
}

// tls checks the listener's TLS block; the files are read by serve, which
// reports their errors at this line.
func (v *validator) tls() {
	t := v.cfg.TLS
	if t == nil {
		return
	}
	t.Line = v.line("$.tls")
	if t.Cert == "" || t.Key == "" {
		v.errorf("$.tls", "tls: cert and key are both required")
	}
	for _, f := range []*string{&t.Cert, &t.Key, &t.ClientCA} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(filepath.Dir(v.file), *f) // as resource_policy_file
		}
	}
	setInt(&t.MaxConcurrentStreams, DefaultMaxStreams)
	if t.MaxConcurrentStreams < 0 || t.MaxConcurrentStreams > 1<<31-1 {
		v.errorf("$.tls.max_concurrent_streams", "tls.max_concurrent_streams must be positive")
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

func oneOf[S ~string](v *validator, path, key string, got S, allowed ...S) {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		if got == a {
			return
		}
		names[i] = string(a)
	}
	v.errorf(path, "%s: %q is not one of %s", key, got, strings.Join(names, ", "))
}

func (v *validator) hostPort(path, key, s string) {
	host, port, err := splitHostPort(s)
	if err != nil {
		v.errorf(path, "%s: %q is not host:port", key, s)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.errorf(path, "%s: bad port %q", key, port)
	}
	_ = host
}

func (v *validator) throttle(path, key string, t *Throttle) {
	if t == nil {
		return
	}
	if t.Rate < 0 {
		v.errorf(path+".rate", "%s.rate must not be negative", key)
	}
	if t.Burst < 0 {
		v.errorf(path+".burst", "%s.burst must not be negative", key)
	}
	if t.MaxConcurrent < 0 {
		v.errorf(path+".max_concurrent", "%s.max_concurrent must not be negative", key)
	}
}

func (v *validator) policy() {
	c := v.cfg
	if c.ResourcePolicyFile == "" {
		return
	}
	if c.ResourcePolicy != "" {
		v.errorf("$.resource_policy_file", "set resource_policy or resource_policy_file, not both")
		return
	}
	path := c.ResourcePolicyFile
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(v.file), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		v.errorf("$.resource_policy_file", "resource_policy_file: %s", errText(err))
		return
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		v.errorf("$.resource_policy_file", "resource_policy_file %s: %s", c.ResourcePolicyFile, yamlMessage(err))
		return
	}
	if _, ok := doc.(map[string]any); !ok {
		v.errorf("$.resource_policy_file", "resource_policy_file %s: want a policy document", c.ResourcePolicyFile)
		return
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(doc); err != nil {
		v.errorf("$.resource_policy_file", "resource_policy_file: %v", err)
		return
	}
	c.ResourcePolicy = Policy(bytes.TrimSpace(buf.Bytes()))
	// The gateway compiles the policy later; its errors point here.
	c.Lines["$.resource_policy"] = v.line("$.resource_policy_file")
}

func (v *validator) plans() {
	for name, p := range v.cfg.UsagePlans {
		path := "$.usage_plans." + name
		if q := p.Quota; q != nil {
			if q.Limit <= 0 {
				v.errorf(path+".quota.limit", "usage_plans.%s.quota.limit must be positive", name)
			}
			oneOf(v, path+".quota.period", "usage_plans."+name+".quota.period", q.Period, "DAY", "WEEK", "MONTH")
			if q.Offset < 0 || (q.Limit > 0 && q.Offset >= q.Limit) {
				v.errorf(path+".quota.offset", "usage_plans.%s.quota.offset must be between 0 and limit-1", name)
			}
		}
		v.throttle(path+".throttle", "usage_plans."+name+".throttle", p.Throttle)
		for m, t := range p.Methods {
			tp := path + ".methods"
			if i := strings.LastIndexByte(m, '/'); i <= 0 || i == len(m)-1 || m[0] != '/' {
				v.errorf(tp, "usage_plans.%s.methods: %q is not /path/METHOD", name, m)
			}
			v.throttle(tp, "usage_plans."+name+".methods", &t)
		}
	}
}

func (v *validator) keys() {
	seen := map[string]bool{}
	for i := range v.cfg.APIKeys {
		k := &v.cfg.APIKeys[i]
		path := fmt.Sprintf("$.api_keys[%d]", i)
		k.Line = v.line(path)
		if k.Name == "" {
			v.errorf(path, "api_keys[%d]: name is required", i)
		} else if seen[k.Name] {
			v.errorf(path+".name", "api_keys: duplicate key name %q", k.Name)
		}
		seen[k.Name] = true
		if k.Plan != "" {
			if _, ok := v.cfg.UsagePlans[k.Plan]; !ok {
				v.errorf(path+".plan", "api_keys %q: unknown usage plan %q", k.Name, k.Plan)
			}
		}
		switch {
		case k.ValueEnv != "" && k.SHA256 != "":
			v.errorf(path, "api_keys %q: set value_env or sha256, not both", k.Name)
		case k.SHA256 != "":
			if !hexDigest.MatchString(k.SHA256) {
				v.errorf(path+".sha256", "api_keys %q: sha256 must be 64 hex digits", k.Name)
				continue
			}
			hex.Decode(k.Digest[:], []byte(k.SHA256))
		case k.ValueEnv != "":
			val, ok := v.env(k.ValueEnv)
			if !ok || val == "" {
				v.errorf(path+".value_env", "api_keys %q: environment variable %s is not set", k.Name, k.ValueEnv)
				continue
			}
			if !keyFormat.MatchString(val) {
				// A key outside API Gateway's format is refused at the
				// edge as unknown, so it could never be used; the value
				// itself stays out of the message.
				v.errorf(path+".value_env", "api_keys %q: the value of %s is not an API key: use 20-128 letters and digits", k.Name, k.ValueEnv)
				continue
			}
			k.Digest = sha256.Sum256([]byte(val))
		default:
			v.errorf(path, "api_keys %q: set value_env or sha256", k.Name)
		}
	}
}

// AllMethods is what a route without methods accepts.
var AllMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

func (v *validator) routes() {
	c := v.cfg
	if len(c.Routes) == 0 {
		v.errorf("$.routes", "no routes: add at least one under routes:")
	}
	type key struct{ path, method string }
	first := map[key]int{}
	firstIdx := map[key]int{}
	lanes := map[string]int{}
	for i := range c.Routes {
		r := &c.Routes[i]
		path := fmt.Sprintf("$.routes[%d]", i)
		r.Line = v.line(path)
		if msg := routepath.Check(r.Path); msg != "" {
			v.errorf(path+".path", "routes[%d].path %q: %s", i, r.Path, msg)
		}
		if len(r.Methods) == 0 || (len(r.Methods) == 1 && (r.Methods[0] == "ANY" || r.Methods[0] == "*")) {
			r.Methods = AllMethods
		}
		sibling := -1 // an earlier route sharing the path and a method
		for j, m := range r.Methods {
			m = strings.ToUpper(m)
			r.Methods[j] = m
			if !methodToken.MatchString(m) {
				v.errorf(fmt.Sprintf("%s.methods[%d]", path, j), "routes[%d]: bad method %q", i, m)
				continue
			}
			k := key{routepath.Shape(r.Path), m}
			if at, dup := first[k]; dup {
				if c.Routes[firstIdx[k]].Match == nil {
					// It serves every request: this one never would.
					v.errorf(path+".path", "duplicate route %s %s (first defined at line %d)", m, r.Path, at)
				} else if sibling < 0 {
					sibling = firstIdx[k]
				}
				continue
			}
			first[k], firstIdx[k] = r.Line, i
		}
		if len(r.Targets) == 0 {
			v.target(path, i, r)
		} else {
			r.target = nil
		}
		if r.Timeout == 0 {
			r.Timeout = Duration(DefaultTimeout)
		}
		setDefault(&r.Response, ResponsePassthrough)
		oneOf(v, path+".response", fmt.Sprintf("routes[%d].response", i), r.Response, ResponsePassthrough, ResponseEnvelope)
		v.throttle(path+".throttle", fmt.Sprintf("routes[%d].throttle", i), r.Throttle)
		for j, a := range r.AllowIPs {
			if _, ok := c.IPSets[a]; ok || a == "github-hooks" {
				continue
			}
			if _, err := ParsePrefix(a); err != nil {
				v.errorf(fmt.Sprintf("%s.allow_ips[%d]", path, j), "routes[%d].allow_ips: %q is neither an ip_sets name nor a CIDR", i, a)
			}
		}
		v.cors(path+".cors", fmt.Sprintf("routes[%d].cors", i), r.CORS)
		if r.Verify != nil {
			v.verify(path+".verify", i, r.Verify)
		}
		v.routeAuthorizer(path, i, r)
		if r.Delivery == nil {
			r.Delivery = &Delivery{Mode: DeliverySync}
		}
		setDefault(&r.Delivery.Mode, DeliverySync)
		oneOf(v, path+".delivery.mode", fmt.Sprintf("routes[%d].delivery.mode", i), r.Delivery.Mode, DeliverySync, DeliveryAsync)
		if r.Delivery.Mode == DeliveryAsync {
			v.async(path+".delivery", i, r.Delivery)
		}
		// A route matched after another on its path and method delivers
		// on lanes of its own; routes that merely share a path (other
		// methods) share its lane, as before there was match.
		laneBase := r.Path
		if lanes[r.Path]++; sibling >= 0 {
			laneBase += "@" + strconv.Itoa(lanes[r.Path])
		}
		v.routing(path, i, r, laneBase)
		if sibling >= 0 {
			v.siblings(path, i, sibling)
		}
		if sibling < 0 && !r.APIKeyRequired && len(r.AllowIPs) == 0 && r.Verify == nil && r.Authorizer == "" && c.ResourcePolicy == "" {
			v.warnf(r.Line, "route %s is open to anyone: no api_key_required, allow_ips, verify, authorizer or resource_policy", r.Path)
		}
	}
}

// async checks a store-and-forward route: its queue must survive a
// restart, and its retry numbers must make sense.
func (v *validator) async(path string, i int, d *Delivery) {
	if v.cfg.State.Driver == "memory" {
		v.errorf(path+".mode", "routes[%d].delivery.mode: async needs state.driver embedded (a memory queue would lose events on restart)", i)
	}
	if d.Concurrency < 0 {
		v.errorf(path+".concurrency", "routes[%d].delivery.concurrency must be positive", i)
	}
	if d.Retry.MaxAttempts < 0 {
		v.errorf(path+".retry.max_attempts", "routes[%d].delivery.retry.max_attempts must be positive", i)
	}
	if d.Retry.Base > 0 && d.Retry.Max > 0 && d.Retry.Max < d.Retry.Base {
		v.errorf(path+".retry.max", "routes[%d].delivery.retry.max must be at least retry.base", i)
	}
}

func (v *validator) target(path string, i int, r *Route) {
	r.target = nil // Validate may be called again on a config it filled
	if r.Target == "" {
		v.errorf(path, "routes[%d]: target is required", i)
		return
	}
	u, err := url.Parse(r.Target)
	switch {
	case err != nil:
		v.errorf(path+".target", "routes[%d].target: not a URL", i)
	case u.Scheme != "http" && u.Scheme != "https":
		v.errorf(path+".target", "routes[%d].target: scheme must be http or https", i)
	case u.Host == "":
		v.errorf(path+".target", "routes[%d].target: missing host", i)
	case u.User != nil:
		v.errorf(path+".target", "routes[%d].target: credentials in the URL are not supported", i)
	case u.RawQuery != "" || u.Fragment != "":
		v.errorf(path+".target", "routes[%d].target: must not have a query or fragment", i)
	default:
		r.target = u
	}
}

var providers = []string{"github", "gitlab", "bitbucket", "stripe", "slack", "standard", "hmac"}

func (v *validator) verify(path string, i int, w *Verify) {
	oneOf(v, path+".provider", fmt.Sprintf("routes[%d].verify.provider", i), w.Provider, providers...)
	names := w.SecretEnvs
	if w.SecretEnv != "" {
		names = append([]string{w.SecretEnv}, names...)
	}
	if len(names) == 0 {
		v.errorf(path, "routes[%d].verify: secret_env is required", i)
	}
	for _, n := range names {
		val, ok := v.env(n)
		if !ok || val == "" {
			v.errorf(path+".secret_env", "routes[%d].verify: environment variable %s is not set or empty", i, n)
			continue
		}
		w.Secrets = append(w.Secrets, []byte(val))
	}
	if w.Provider == "hmac" && w.Header == "" {
		v.errorf(path, "routes[%d].verify: hmac needs header", i)
	}
}

// Template reports whether the route path has {parameters}.
func (r *Route) Template() bool { return strings.Contains(r.Path, "{") }

// ParsePrefix reads a CIDR or a single address, unmapping IPv4-in-IPv6 so
// that policy checks compare like with like.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func splitHostPort(s string) (host, port string, err error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", errors.New("missing port")
	}
	host, port = s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return host, port, nil
}
