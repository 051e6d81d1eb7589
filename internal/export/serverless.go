package export

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/drawbridge/drawbridge/internal/config"
)

// Serverless writes a serverless.yml (Serverless Framework v3) for cfg
// with the plugins the original blog setup used: the stage and endpoint
// throttling of serverless-api-gateway-throttling and the keys and usage
// plans of serverless-add-api-key. Its functions run the drawbridge
// binary (bootstrap, provided.al2023) with drawbridge.yaml packaged next
// to it; each keeps environment.URL, so `drawbridge import` reads the file
// back into the same guards.
func Serverless(cfg *config.Config) ([]byte, error) {
	notes := append(Notes(cfg), serverlessNotes(cfg)...)
	rest := cfg.API != config.APIHTTP
	region := cfg.AWS.Region
	if region == "" {
		region = "us-east-1"
	}
	env := yaml.MapSlice{{Key: "DRAWBRIDGE_CONFIG", Value: configFile}}
	for _, name := range secretEnvs(cfg) {
		env = append(env, yaml.MapItem{Key: name, Value: "${env:" + name + "}"})
	}
	provider := yaml.MapSlice{
		{Key: "name", Value: "aws"},
		{Key: "runtime", Value: runtime},
		{Key: "architecture", Value: "arm64"},
		{Key: "stage", Value: "${opt:stage, '" + cfg.Stage + "'}"},
		{Key: "region", Value: "${opt:region, '" + region + "'}"},
		{Key: "memorySize", Value: memoryMB},
		{Key: "environment", Value: env},
	}
	if rest && cfg.ResourcePolicy != "" {
		stmts := statements(cfg)
		// v3 reads provider.apiGateway.resourcePolicy; the blog's older
		// provider.resourcePolicy packages an empty Policy
		provider = append(provider, yaml.MapItem{Key: "apiGateway", Value: yaml.MapSlice{{Key: "resourcePolicy", Value: stmts}}})
	}

	if auth := jwtAuthorizers(cfg); !rest && auth != nil {
		// The HTTP API's JWT authorizers, as `drawbridge import` reads them back.
		names := make([]string, 0, len(auth.Authorizers))
		for n := range auth.Authorizers {
			names = append(names, n)
		}
		sort.Strings(names)
		as := yaml.MapSlice{}
		for _, n := range names {
			a := auth.Authorizers[n]
			as = append(as, yaml.MapItem{Key: n, Value: yaml.MapSlice{
				{Key: "identitySource", Value: a.IdentitySource},
				{Key: "issuerUrl", Value: a.JwtConfiguration.Issuer},
				{Key: "audience", Value: a.JwtConfiguration.Audience},
			}})
		}
		provider = append(provider, yaml.MapItem{Key: "httpApi", Value: yaml.MapSlice{{Key: "authorizers", Value: as}}})
	}

	custom := yaml.MapSlice{
		{Key: "vpcId", Value: "vpc-REPLACE"},
		{Key: "subnetIds", Value: []string{"subnet-REPLACE"}},
	}
	for _, h := range hostTargets(cfg) {
		custom = append(custom, yaml.MapItem{Key: lowerFirst(h.param), Value: "192.0.2.1/32"})
	}
	if len(cfg.Egress.Allow) > 0 {
		// drawbridge's own keys; `drawbridge import` reads them back
		custom = append(custom, yaml.MapItem{Key: "drawbridge", Value: yaml.MapSlice{
			{Key: "egress", Value: yaml.MapSlice{{Key: "allow", Value: cfg.Egress.Allow}}},
		}})
	}
	if t := cfg.Throttle; t != nil {
		custom = append(custom, yaml.MapItem{Key: "apiGatewayThrottling", Value: yaml.MapSlice{
			{Key: "maxRequestsPerSecond", Value: number(float64(t.Rate))},
			{Key: "maxConcurrentRequests", Value: int64(t.Burst)},
		}})
	}
	if rest && len(cfg.APIKeys) > 0 {
		var keys []yaml.MapSlice
		for _, k := range cfg.APIKeys {
			if !k.IsEnabled() {
				continue
			}
			key := yaml.MapSlice{{Key: "name", Value: k.Name}}
			if k.ValueEnv != "" {
				key = append(key, yaml.MapItem{Key: "value", Value: "${env:" + k.ValueEnv + "}"})
			}
			if p, ok := cfg.UsagePlans[k.Plan]; ok {
				key = append(key, yaml.MapItem{Key: "usagePlan", Value: pluginPlan(k.Plan, p)})
			}
			keys = append(keys, key)
		}
		custom = append(custom, yaml.MapItem{Key: "apiKeys", Value: keys})
	}

	rules, err := egressRules(cfg)
	if err != nil {
		return nil, err
	}
	var egress []yaml.MapSlice
	for _, r := range rules {
		rule := yaml.MapSlice{{Key: "IpProtocol", Value: "tcp"}, {Key: "FromPort", Value: r.port}, {Key: "ToPort", Value: r.port}}
		switch {
		case r.param != "":
			rule = append(rule, yaml.MapItem{Key: "CidrIp", Value: "${self:custom." + lowerFirst(r.param) + "}"})
		case r.ipv6:
			rule = append(rule, yaml.MapItem{Key: "CidrIpv6", Value: r.cidr})
		default:
			rule = append(rule, yaml.MapItem{Key: "CidrIp", Value: r.cidr})
		}
		egress = append(egress, rule)
	}
	if len(egress) == 0 {
		egress = []yaml.MapSlice{{{Key: "IpProtocol", Value: "icmp"}, {Key: "FromPort", Value: -1}, {Key: "ToPort", Value: -1}, {Key: "CidrIp", Value: "127.0.0.1/32"}}}
	}

	functions := yaml.MapSlice{}
	for gi, idx := range groupRoutes(cfg, func(r config.Route) [2]string { return [2]string{r.Target, fmt.Sprint(seconds(r.Timeout))} }) {
		first := cfg.Routes[idx[0]]
		var events []yaml.MapSlice
		for _, i := range idx {
			r := cfg.Routes[i]
			for _, m := range eventMethods(r) {
				ev := yaml.MapSlice{{Key: "path", Value: strings.TrimPrefix(awsPath(r), "/")}, {Key: "method", Value: strings.ToLower(m)}}
				if !rest {
					ev[0].Value = awsPath(r)
					if m == "ANY" {
						ev[1].Value = "*"
					}
				}
				if rest && r.APIKeyRequired {
					ev = append(ev, yaml.MapItem{Key: "private", Value: true})
				}
				if a := cfg.Authorizers[r.Authorizer]; !rest && a != nil && a.Type == config.AuthorizerJWT {
					az := yaml.MapSlice{{Key: "name", Value: samName(r.Authorizer)}}
					if len(r.Scopes) > 0 {
						az = append(az, yaml.MapItem{Key: "scopes", Value: r.Scopes})
					}
					ev = append(ev, yaml.MapItem{Key: "authorizer", Value: az})
				}
				if t := r.Throttle; t != nil {
					ev = append(ev, yaml.MapItem{Key: "throttling", Value: yaml.MapSlice{
						{Key: "maxRequestsPerSecond", Value: number(float64(t.Rate))},
						{Key: "maxConcurrentRequests", Value: int64(t.Burst)},
					}})
				}
				kind := "http"
				if !rest {
					kind = "httpApi"
				}
				events = append(events, yaml.MapSlice{{Key: kind, Value: ev}})
			}
		}
		name := "drawbridge"
		if gi > 0 {
			name = fmt.Sprintf("drawbridge%d", gi+1)
		}
		functions = append(functions, yaml.MapItem{Key: name, Value: yaml.MapSlice{
			{Key: "handler", Value: handler},
			{Key: "timeout", Value: seconds(first.Timeout)},
			{Key: "environment", Value: yaml.MapSlice{{Key: "URL", Value: first.Target}}},
			{Key: "vpc", Value: yaml.MapSlice{
				{Key: "securityGroupIds", Value: []any{map[string]any{"Ref": "DrawbridgeSecurityGroup"}}},
				{Key: "subnetIds", Value: "${self:custom.subnetIds}"},
			}},
			{Key: "events", Value: events},
		}})
	}

	plugins := []string{"serverless-api-gateway-throttling"}
	if rest && len(cfg.APIKeys) > 0 {
		plugins = append(plugins, "serverless-add-api-key")
	}
	doc := yaml.MapSlice{
		{Key: "service", Value: "drawbridge"},
		{Key: "frameworkVersion", Value: "3"},
		{Key: "plugins", Value: plugins},
		{Key: "provider", Value: provider},
		{Key: "package", Value: yaml.MapSlice{{Key: "patterns", Value: []string{"!**", handler, configFile}}}},
		{Key: "custom", Value: custom},
		{Key: "functions", Value: functions},
		{Key: "resources", Value: yaml.MapSlice{{Key: "Resources", Value: yaml.MapSlice{
			{Key: "DrawbridgeSecurityGroup", Value: yaml.MapSlice{
				{Key: "Type", Value: "AWS::EC2::SecurityGroup"},
				{Key: "Properties", Value: yaml.MapSlice{
					{Key: "GroupDescription", Value: "drawbridge: egress only to the backends"},
					{Key: "VpcId", Value: "${self:custom.vpcId}"},
					{Key: "SecurityGroupEgress", Value: egress},
				}},
			}},
		}}}},
	}
	out, err := yaml.MarshalWithOptions(doc, yaml.Indent(2), yaml.IndentSequence(true))
	if err != nil {
		return nil, fmt.Errorf("serverless: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("# serverless.yml written by `drawbridge export serverless` (Serverless Framework v3).\n")
	b.WriteString("# Package: GOOS=linux GOARCH=arm64 go build -o bootstrap ./cmd/drawbridge, put drawbridge.yaml\n")
	b.WriteString("# beside it, replace custom.vpcId and custom.subnetIds, export the variables named by ${env:...}.\n")
	writeNotes(&b, notes)
	b.Write(out)
	return b.Bytes(), nil
}

// serverlessNotes: what the two plugins cannot say.
func serverlessNotes(cfg *config.Config) []string {
	var n []string
	for name, p := range cfg.UsagePlans {
		if len(p.Methods) > 0 {
			n = append(n, fmt.Sprintf("usage plan %s: per-method throttles are not supported by serverless-add-api-key; use export sam", name))
		}
	}
	for _, k := range cfg.APIKeys {
		switch {
		case k.ValueEnv == "":
			n = append(n, fmt.Sprintf("api key %s: known only by its SHA-256, so AWS generates a new value", k.Name))
		case !k.IsEnabled():
			n = append(n, fmt.Sprintf("api key %s is disabled and left out: serverless-add-api-key has no enabled flag", k.Name))
		}
		if k.Plan == "" {
			n = append(n, fmt.Sprintf("api key %s: has no plan; serverless-add-api-key gives it one without limits (%s-usage-plan)", k.Name, k.Name))
		}
	}
	return n
}

// pluginPlan is a usage plan in serverless-add-api-key's spelling.
func pluginPlan(name string, p config.UsagePlan) yaml.MapSlice {
	plan := yaml.MapSlice{{Key: "name", Value: name}}
	if q := p.Quota; q != nil {
		quota := yaml.MapSlice{{Key: "limit", Value: int64(q.Limit)}, {Key: "period", Value: q.Period}}
		if q.Offset != 0 {
			quota = append(quota, yaml.MapItem{Key: "offset", Value: int64(q.Offset)})
		}
		plan = append(plan, yaml.MapItem{Key: "quota", Value: quota})
	}
	if t := p.Throttle; t != nil {
		plan = append(plan, yaml.MapItem{Key: "throttle", Value: yaml.MapSlice{
			{Key: "burstLimit", Value: int64(t.Burst)}, {Key: "rateLimit", Value: number(float64(t.Rate))},
		}})
	}
	return plan
}

// number writes whole rates as integers.
func number(f float64) any {
	if f == float64(int64(f)) {
		return int64(f)
	}
	return f
}

func lowerFirst(s string) string { return strings.ToLower(s[:1]) + s[1:] }
