package serverless

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/drawbridge/drawbridge/internal/apikey"
	"github.com/drawbridge/drawbridge/internal/config"
)

// API keys and usage plans, in the plugin's and the framework's spellings.

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
func (s *slsImport) keyValue(k *config.APIKey, n *snode, line int, what string) {
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
		if enc := v.at("encrypted"); enc != nil {
			s.errorf(line, "%s: KMS-encrypted values cannot be decrypted outside AWS: put the key in an environment variable and write value: ${env:NAME}", what)
			return
		}
	}
	val, ok := s.text(v, what)
	if !ok {
		return
	}
	if !apikey.Valid(val) {
		s.errorf(line, "%s: API Gateway keys are 20 to 128 letters and digits, this one has %d characters", what, len(val))
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
func (s *slsImport) plan(m *snode, what, path string) config.UsagePlan {
	var up config.UsagePlan
	if q, line := m.get("quota"); q != nil {
		w := what + ".quota"
		if qm := s.keys(q, w, true, map[string]rule{"limit": use, "period": use, "offset": use}); qm != nil {
			up.Quota = &config.Quota{}
			s.from(path+".quota", line, w)
			s.field(qm, "limit", w, path+".quota.limit", func(n *snode, w string) bool {
				v, ok := s.integer(n, w)
				up.Quota.Limit = config.Int(v)
				return ok
			})
			s.field(qm, "period", w, path+".quota.period", func(n *snode, w string) bool {
				v, ok := s.text(n, w)
				up.Quota.Period = strings.ToUpper(v)
				return ok
			})
			s.field(qm, "offset", w, path+".quota.offset", func(n *snode, w string) bool {
				v, ok := s.integer(n, w)
				up.Quota.Offset = config.Int(v)
				return ok
			})
		}
	}
	if t, line := m.get("throttle"); t != nil {
		w := what + ".throttle"
		if tm := s.keys(t, w, true, map[string]rule{"burstLimit": use, "rateLimit": use}); tm != nil {
			up.Throttle = &config.Throttle{}
			s.from(path+".throttle", line, w)
			s.field(tm, "rateLimit", w, path+".throttle.rate", func(n *snode, w string) bool {
				v, ok := s.number(n, w)
				up.Throttle.Rate = config.Number(v)
				return ok
			})
			s.field(tm, "burstLimit", w, path+".throttle.burst", func(n *snode, w string) bool {
				v, ok := s.integer(n, w)
				up.Throttle.Burst = config.Int(v)
				return ok
			})
		}
	}
	return up
}

// name reads the required text key "name" of m.
func (s *slsImport) name(m *snode, what string) (string, bool) {
	n := m.at("name")
	if n == nil {
		s.errorf(m.line, "%s: name is required", what)
		return "", false
	}
	return s.text(n, what+".name")
}

// field reads m's key with read and records that path came from it.
func (s *slsImport) field(m *snode, key, what, path string, read func(n *snode, what string) bool) {
	if n, line := m.get(key); n != nil && read(n, what+"."+key) {
		s.from(path, line, what+"."+key)
	}
}

// addPlan adds a named plan; the same name twice must mean the same plan.
func (s *slsImport) addPlan(name string, up config.UsagePlan, line int, what string) {
	if s.cfg.UsagePlans == nil {
		s.cfg.UsagePlans = map[string]config.UsagePlan{}
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

func samePlan(a, b config.UsagePlan) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func (s *slsImport) addKey(k config.APIKey, line int, what string) {
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
	legacy := false
	if n, line := p.get("apiKeys"); n != nil {
		if v := frameworkMajor(top); v >= 3 {
			// v3 no longer reads this spelling: on AWS these keys do not
			// exist and the private routes answer 403 to everyone.
			s.errorf(line, "provider.apiKeys: Serverless v3 reads API keys from provider.apiGateway.apiKeys; move them there")
		} else {
			legacy = true
			s.warnf(line, "provider.apiKeys: read as Serverless v1 and v2 read it (with provider.usagePlan); v3 reads only provider.apiGateway.apiKeys and usagePlan, so move them there before upgrading")
		}
	}
	s.pluginKeys(top, p)
	s.nativeKeys(p, legacy)
}

// frameworkMajor is the major version frameworkVersion names ("3",
// ">=2.1 <3", "^3.26.0" → its first number), or 0 when it is not given.
func frameworkMajor(top *snode) int {
	n := top.at("frameworkVersion")
	if n == nil || n.kind != snScalar {
		return 0
	}
	v := strings.TrimLeft(n.str, "^~>=< v")
	major := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			break
		}
		major = major*10 + int(c-'0')
	}
	return major
}

var pluginKeyRules = map[string]rule{
	"name": use, "value": use, "usagePlan": use, "description": skip(awsOnly), "customerId": skip(awsOnly),
}

// pluginKeys reads custom.apiKeys of serverless-add-api-key: a list, or a
// list per stage; each key's usagePlan, else provider.usagePlan, else a
// plan of its own with no limits ("<name>-usage-plan", as the plugin).
func (s *slsImport) pluginKeys(top, p *snode) {
	custom := s.val(top.at("custom"))
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
		n = v.at(s.cfg.Stage)
		what += "." + s.cfg.Stage
		if n == nil {
			s.warnf(v.line, "custom.apiKeys has no keys for stage %s", s.cfg.Stage)
			return
		}
	}
	var defPlan *snode
	if up := p.at("usagePlan"); up != nil {
		defPlan = s.keys(up, "provider.usagePlan", true, planRules)
	}
	for i, item := range s.list(n, what) {
		w := fmt.Sprintf("%s[%d]", what, i)
		m := s.keys(item, w, true, pluginKeyRules)
		if m == nil {
			continue
		}
		name, ok := s.name(m, w)
		if !ok {
			continue
		}
		k := config.APIKey{Name: name}
		val, vline := m.get("value")
		s.keyValue(&k, val, vline, w+".value")
		path := fmt.Sprintf("$.api_keys[%d]", len(s.cfg.APIKeys))
		planNode, pl := m.get("usagePlan")
		planWhat := w + ".usagePlan"
		if planNode == nil && defPlan != nil {
			planNode, pl, planWhat = defPlan, defPlan.line, "provider.usagePlan"
		}
		if planNode != nil {
			pm := planNode
			if planNode != defPlan { // provider.usagePlan is checked once
				pm = s.keys(planNode, planWhat, true, planRules)
			}
			if pm == nil {
				continue
			}
			pname, ok := s.name(pm, planWhat)
			if !ok {
				continue
			}
			s.addPlan(pname, s.plan(pm, planWhat, "$.usage_plans."+pname), pl, planWhat)
			k.Plan = pname
		} else {
			k.Plan = name + "-usage-plan"
			s.addPlan(k.Plan, config.UsagePlan{}, m.line, w)
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
	"restApiId": use, "restApiRootResourceId": skip(awsOnly), "restApiResources": skip(awsOnly),
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
//
// legacy reads provider.apiKeys and provider.usagePlan instead, where
// Serverless v1 and v2 had them.
func (s *slsImport) nativeKeys(p *snode, legacy bool) {
	ag := s.keys(p.at("apiGateway"), "provider.apiGateway", false, apiGatewayRules)
	src, at := ag, "provider.apiGateway"
	if legacy {
		src, at = p, "provider"
	}
	if ag != nil {
		s.sharedAPI(ag)
	}
	if src == nil {
		return
	}
	single := s.keyPlans(src, at)
	s.keyList(src, at, single)
}

// sharedAPI refuses routes added to an API made elsewhere and an API key
// source drawbridge does not read.
func (s *slsImport) sharedAPI(ag *snode) {
	if n, line := ag.get("restApiId"); n != nil {
		// The routes join an API another stack made; what guards them there
		// (its resource policy, authorizers, keys, endpoint type) is in
		// that stack, not here, so serving this file alone would open them.
		s.errorf(line, "provider.apiGateway.restApiId: these routes are added to a shared API made elsewhere, whose resource policy, authorizers, API keys and endpoint type protect them on AWS but are not in this file; write a drawbridge.yaml (drawbridge import serverless, then add those guards) or declare the API in this file")
	}
	if n, line := ag.get("apiKeySourceType"); n != nil {
		if v, ok := s.text(n, "provider.apiGateway.apiKeySourceType"); ok && strings.ToUpper(v) != "HEADER" {
			s.errorf(line, "provider.apiGateway.apiKeySourceType %s: drawbridge reads keys from the x-api-key header only", v)
		}
	}
}

// keyPlans reads AT.usagePlan; single names the one plan every key goes
// in, or is "" when plans are listed by name.
func (s *slsImport) keyPlans(src *snode, at string) (single string) {
	if n, line := src.get("usagePlan"); n != nil {
		v := s.val(n)
		switch {
		case v == nil:
		case v.kind == snMap:
			single = s.service + "-" + s.cfg.Stage
			m := s.keys(v, at+".usagePlan", true, planRules)
			if m != nil {
				s.addPlan(single, s.plan(m, at+".usagePlan", "$.usage_plans."+single), line, at+".usagePlan")
			}
		case v.kind == snSeq:
			for i, item := range v.items {
				w := fmt.Sprintf("%s.usagePlan[%d]", at, i)
				im := s.val(item)
				if im == nil || im.kind != snMap || len(im.keys) != 1 {
					s.errorf(item.line, "%s: want {PLAN_NAME: {quota, throttle}}", w)
					continue
				}
				name := im.keys[0]
				m := s.keys(im.vals[0], w+"."+name, true, planRules)
				up := config.UsagePlan{}
				if m != nil {
					up = s.plan(m, w+"."+name, "$.usage_plans."+name)
				}
				s.addPlan(name, up, im.kline[0], w)
			}
		default:
			s.errorf(v.line, "%s.usagePlan: want a mapping or a list of plans, got %s", at, describe(v))
		}
	}
	return single
}

// keyList reads AT.apiKeys into single, or into the plans they are
// grouped under.
func (s *slsImport) keyList(src *snode, at, single string) {
	n := src.at("apiKeys")
	items := s.list(n, at+".apiKeys")
	if len(items) > 0 && single == "" && len(s.cfg.UsagePlans) == 0 {
		// the framework makes a plan without limits for the keys
		single = s.service + "-" + s.cfg.Stage
		s.addPlan(single, config.UsagePlan{}, n.line, at+".apiKeys")
	}
	for i, item := range items {
		w := fmt.Sprintf("%s.apiKeys[%d]", at, i)
		v := s.val(item)
		if v == nil {
			continue
		}
		if v.kind == snMap && len(v.keys) == 1 && !nativeKeyRules[v.keys[0]].use && nativeKeyRules[v.keys[0]].reason == "" {
			// {PLAN: [keys]}
			plan := v.keys[0]
			if _, ok := s.cfg.UsagePlans[plan]; !ok {
				s.errorf(v.kline[0], "%s: usage plan %q is not in %s.usagePlan", w, plan, at)
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
	k := config.APIKey{Plan: plan}
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
	val, vline := m.get("value")
	if m.at("name") == nil && val != nil {
		// {value: ...} alone: AWS names such a key itself; drawbridge needs
		// a name for logs and usage, so it takes the key's place in the list.
		k.Name = fmt.Sprintf("%s-key%d", plan, len(s.cfg.APIKeys)+1)
		s.warnf(m.line, "%s: the key has no name; it is called %s in logs and usage", what, k.Name)
	} else {
		name, ok := s.name(m, what)
		if !ok {
			return
		}
		k.Name = name
	}
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
