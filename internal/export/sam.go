package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/apigateway"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"
	"github.com/awslabs/goformation/v7/cloudformation/serverless"
	"github.com/goccy/go-yaml"

	"github.com/drawbridge/drawbridge/internal/config"
)

// SAM writes a SAM template (YAML) for cfg: an API Gateway REST API (or
// HTTP API for api: http) with the resource policy, API keys, usage plans
// and stage and method throttling; the drawbridge function
// (provided.al2023, 512 MB, the routes' timeouts) in a VPC given as
// parameters; and a security group whose egress is exactly egress.allow,
// or the targets' addresses. The function package (CodeUri dist/) holds
// the bootstrap binary and drawbridge.yaml.
//
// The resources are built with goformation's types; three properties its
// schema lacks or types too narrowly (Api Auth.ResourcePolicy, a list
// parameter as SubnetIds, HttpApi RouteSettings as a map) are set on the
// JSON it produces.
func SAM(cfg *config.Config) ([]byte, error) {
	t := cloudformation.NewTemplate()
	t.Transform = &cloudformation.Transform{String: ptr("AWS::Serverless-2016-10-31")}
	t.Description = "drawbridge in front of " + strings.Join(targets(cfg), ", ") + " (written by drawbridge export sam)"
	notes := Notes(cfg)
	t.Metadata = map[string]any{"Drawbridge": map[string]any{
		"Package":          "CodeUri dist/ must hold bootstrap (GOOS=linux GOARCH=arm64 go build -o dist/bootstrap ./cmd/drawbridge) and " + configFile,
		"NotEnforcedByAWS": nonNil(notes),
	}}
	t.Parameters["VpcId"] = cloudformation.Parameter{Type: "AWS::EC2::VPC::Id", Description: ptr("VPC of the private backends")}
	t.Parameters["SubnetIds"] = cloudformation.Parameter{Type: "List<AWS::EC2::Subnet::Id>", Description: ptr("private subnets the function runs in")}

	if err := securityGroup(t, cfg); err != nil {
		return nil, err
	}

	env := map[string]string{"DRAWBRIDGE_CONFIG": "/var/task/" + configFile}
	for _, name := range secretEnvs(cfg) {
		p := paramName(name)
		t.Parameters[p] = cloudformation.Parameter{Type: "String", NoEcho: ptr(true), MinLength: ptr(1),
			Description: ptr("value of " + name + " for the drawbridge function")}
		env[name] = cloudformation.Ref(p)
	}

	routeSettings := functions(t, cfg, env)
	if cfg.API != config.APIHTTP {
		t.Resources["Api"] = &serverless.Api{
			StageName:             cfg.Stage,
			Name:                  ptr("drawbridge"),
			EndpointConfiguration: &serverless.Api_EndpointConfiguration{Type: ptr("REGIONAL")},
			MethodSettings:        methodSettings(cfg),
		}
		keysAndPlans(t, cfg)
	} else {
		api := &serverless.HttpApi{StageName: ptr(cfg.Stage)}
		if s := cfg.Throttle; s != nil {
			api.DefaultRouteSettings = &serverless.HttpApi_RouteSettings{ThrottlingRateLimit: ptr(float64(s.Rate)), ThrottlingBurstLimit: ptr(int(s.Burst))}
		}
		t.Resources["Api"] = api
	}
	t.Outputs["ApiUrl"] = cloudformation.Output{Value: cloudformation.Sub("https://${Api}.execute-api.${AWS::Region}.amazonaws.com/" + cfg.Stage + "/")}

	raw, err := t.JSON()
	if err != nil {
		return nil, fmt.Errorf("sam: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("sam: %w", err)
	}
	integers(doc)
	patch(doc, cfg, routeSettings)
	return render(doc, notes)
}

// securityGroup adds the function's security group: egress exactly as
// egressRules says, host-name targets' CIDRs as parameters.
func securityGroup(t *cloudformation.Template, cfg *config.Config) error {
	rules, err := egressRules(cfg)
	if err != nil {
		return err
	}
	sg := &ec2.SecurityGroup{
		GroupDescription: "drawbridge: egress only to the backends",
		VpcId:            cloudformation.RefPtr("VpcId"),
	}
	for _, h := range hostTargets(cfg) {
		t.Parameters[h.param] = cloudformation.Parameter{
			Type:           "String",
			Description:    ptr(fmt.Sprintf("CIDR of %s (security groups cannot allow a host name)", h.host)),
			AllowedPattern: ptr(`^[0-9a-fA-F:.]+/[0-9]{1,3}$`),
		}
	}
	for _, r := range rules {
		e := ec2.SecurityGroup_Egress{IpProtocol: "tcp", FromPort: ptr(r.port), ToPort: ptr(r.port)}
		switch {
		case r.param != "":
			e.CidrIp = cloudformation.RefPtr(r.param)
		case r.ipv6:
			e.CidrIpv6 = ptr(r.cidr)
		default:
			e.CidrIp = ptr(r.cidr)
		}
		sg.SecurityGroupEgress = append(sg.SecurityGroupEgress, e)
	}
	if len(sg.SecurityGroupEgress) == 0 {
		// no rule at all would mean AWS's default, allow everything
		sg.SecurityGroupEgress = []ec2.SecurityGroup_Egress{{IpProtocol: "icmp", FromPort: ptr(-1), ToPort: ptr(-1), CidrIp: ptr("127.0.0.1/32"), Description: ptr("no egress")}}
	}
	t.Resources["SecurityGroup"] = sg
	return nil
}

// functions adds one drawbridge function per distinct route timeout, with
// an event per route and method. It returns the HTTP API's per-route
// throttles, which go on the API.
func functions(t *cloudformation.Template, cfg *config.Config, env map[string]string) map[string]any {
	rest := cfg.API != config.APIHTTP
	routeSettings := map[string]any{}
	for g, idx := range groupRoutes(cfg, func(r config.Route) int { return seconds(r.Timeout) }) {
		fn := &serverless.Function{
			CodeUri:       &serverless.Function_CodeUri{String: ptr("dist/")},
			Handler:       ptr(handler),
			Runtime:       ptr(runtime),
			Architectures: []string{"arm64"},
			MemorySize:    ptr(memoryMB),
			Timeout:       ptr(seconds(cfg.Routes[idx[0]].Timeout)),
			Environment:   &serverless.Function_FunctionEnvironment{Variables: env},
			VpcConfig:     &serverless.Function_VpcConfig{SecurityGroupIds: []string{cloudformation.Ref("SecurityGroup")}, SubnetIds: []string{}},
			Policies: &serverless.Function_Policies{StringArray: &[]string{
				cloudformation.Sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"),
			}},
			Events: map[string]serverless.Function_EventSource{},
		}
		for _, i := range idx {
			r := cfg.Routes[i]
			for _, m := range eventMethods(r) {
				name := fmt.Sprintf("Route%d%s", i, eventName(m))
				if rest {
					ev := &serverless.Function_ApiEvent{RestApiId: cloudformation.RefPtr("Api"), Path: awsPath(r), Method: strings.ToLower(m)}
					if r.APIKeyRequired {
						ev.Auth = &serverless.Function_Auth{ApiKeyRequired: ptr(true)}
					}
					fn.Events[name] = serverless.Function_EventSource{Type: "Api", Properties: &serverless.Function_Properties{ApiEvent: ev}}
					continue
				}
				ev := &serverless.Function_HttpApiEvent{ApiId: cloudformation.RefPtr("Api"), Path: ptr(awsPath(r)), Method: ptr(strings.ToUpper(m)), PayloadFormatVersion: ptr("2.0")}
				fn.Events[name] = serverless.Function_EventSource{Type: "HttpApi", Properties: &serverless.Function_Properties{HttpApiEvent: ev}}
				if r.Throttle != nil {
					routeSettings[strings.ToUpper(m)+" "+awsPath(r)] = map[string]any{
						"ThrottlingRateLimit": float64(r.Throttle.Rate), "ThrottlingBurstLimit": int(r.Throttle.Burst)}
				}
			}
		}
		t.Resources[functionName(g)] = fn
	}
	return routeSettings
}

// patch sets on goformation's JSON what its schema cannot say.
func patch(doc map[string]any, cfg *config.Config, routeSettings map[string]any) {
	rest := cfg.API != config.APIHTTP
	res := doc["Resources"].(map[string]any)
	for _, r := range res {
		if r.(map[string]any)["Type"] == "AWS::Serverless::Function" {
			vpc := r.(map[string]any)["Properties"].(map[string]any)["VpcConfig"].(map[string]any)
			vpc["SubnetIds"] = map[string]any{"Ref": "SubnetIds"}
		}
	}
	apiProps := res["Api"].(map[string]any)["Properties"].(map[string]any)
	if rest && cfg.ResourcePolicy != "" {
		apiProps["Auth"] = map[string]any{"ResourcePolicy": map[string]any{"CustomStatements": statements(cfg)}}
	}
	if !rest && len(routeSettings) > 0 {
		apiProps["RouteSettings"] = routeSettings
	}
}

// integers turns JSON numbers back into int64 or float64, so YAML
// writes MemorySize: 512, not 512.0.
func integers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = integers(x)
		}
	case []any:
		for i, x := range v {
			v[i] = integers(x)
		}
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	}
	return v
}

func functionName(group int) string {
	if group == 0 {
		return "Drawbridge"
	}
	return fmt.Sprintf("Drawbridge%d", group+1)
}

// eventMethods: ANY for a route that takes every method.
func eventMethods(r config.Route) []string {
	if allMethods(r.Methods) {
		return []string{"ANY"}
	}
	return r.Methods
}

func eventName(m string) string {
	return strings.ToUpper(m[:1]) + strings.ToLower(m[1:])
}

// methodSettings: the stage throttle for "/*" "*", then each throttled
// route's methods (ResourcePath with "/" written "~1", as CloudFormation
// wants).
func methodSettings(cfg *config.Config) []any {
	var out []any
	if s := cfg.Throttle; s != nil {
		out = append(out, map[string]any{"ResourcePath": "/*", "HttpMethod": "*",
			"ThrottlingRateLimit": float64(s.Rate), "ThrottlingBurstLimit": int(s.Burst)})
	}
	for _, r := range cfg.Routes {
		if r.Throttle == nil {
			continue
		}
		for _, m := range eventMethods(r) {
			if m == "ANY" {
				m = "*"
			}
			out = append(out, map[string]any{
				"ResourcePath": "/" + strings.ReplaceAll(awsPath(r), "/", "~1"),
				"HttpMethod":   m, "ThrottlingRateLimit": float64(r.Throttle.Rate), "ThrottlingBurstLimit": int(r.Throttle.Burst)})
		}
	}
	return out
}

// keysAndPlans adds an ApiKey per key (its value from a NoEcho parameter;
// a key known only by its SHA-256 gets a new value from AWS), a UsagePlan
// per plan and the UsagePlanKeys. Keys without a plan go in one plan
// without limits: API Gateway accepts a key only through a plan.
func keysAndPlans(t *cloudformation.Template, cfg *config.Config) {
	plans := map[string]config.UsagePlan{}
	for n, p := range cfg.UsagePlans {
		plans[n] = p
	}
	for _, k := range cfg.APIKeys {
		if k.Plan == "" {
			plans[""] = config.UsagePlan{}
		}
	}
	names := make([]string, 0, len(plans))
	for n := range plans {
		names = append(names, n)
	}
	sort.Strings(names)
	planID := map[string]string{}
	for i, n := range names {
		p := plans[n]
		id := fmt.Sprintf("UsagePlan%d", i+1)
		planID[n] = id
		display := n
		if display == "" {
			display = "drawbridge-keys"
		}
		stage := apigateway.UsagePlan_ApiStage{ApiId: cloudformation.RefPtr("Api"), Stage: cloudformation.RefPtr("Api.Stage")}
		if len(p.Methods) > 0 {
			stage.Throttle = map[string]apigateway.UsagePlan_ThrottleSettings{}
			for m, th := range p.Methods {
				stage.Throttle[m] = apigateway.UsagePlan_ThrottleSettings{RateLimit: ptr(float64(th.Rate)), BurstLimit: ptr(int(th.Burst))}
			}
		}
		up := &apigateway.UsagePlan{UsagePlanName: ptr(display), ApiStages: []apigateway.UsagePlan_ApiStage{stage}}
		if q := p.Quota; q != nil {
			up.Quota = &apigateway.UsagePlan_QuotaSettings{Limit: ptr(int(q.Limit)), Period: ptr(q.Period)}
			if q.Offset != 0 {
				up.Quota.Offset = ptr(int(q.Offset))
			}
		}
		if th := p.Throttle; th != nil {
			up.Throttle = &apigateway.UsagePlan_ThrottleSettings{RateLimit: ptr(float64(th.Rate)), BurstLimit: ptr(int(th.Burst))}
		}
		t.Resources[id] = up
	}
	for i, k := range cfg.APIKeys {
		id := fmt.Sprintf("ApiKey%d", i+1)
		key := &apigateway.ApiKey{Name: ptr(k.Name), Enabled: ptr(k.IsEnabled())}
		if k.ValueEnv != "" {
			key.Value = cloudformation.RefPtr(paramName(k.ValueEnv))
		} else {
			key.Description = ptr("known to drawbridge only by its SHA-256: AWS generates a new value; give it to clients and to drawbridge")
		}
		t.Resources[id] = key
		t.Resources[id+"Plan"] = &apigateway.UsagePlanKey{KeyId: cloudformation.Ref(id), KeyType: "API_KEY", UsagePlanId: cloudformation.Ref(planID[k.Plan])}
	}
}

// render writes the template as YAML, the notes first as comments.
func render(doc map[string]any, notes []string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# SAM template written by `drawbridge export sam`.\n")
	b.WriteString("# Deploy: GOOS=linux GOARCH=arm64 go build -o dist/bootstrap ./cmd/drawbridge; cp drawbridge.yaml dist/; sam deploy --guided\n")
	writeNotes(&b, notes)
	order := []string{"AWSTemplateFormatVersion", "Transform", "Description", "Metadata", "Parameters", "Resources", "Outputs"}
	var ms yaml.MapSlice
	for _, k := range order {
		if v, ok := doc[k]; ok {
			ms = append(ms, yaml.MapItem{Key: k, Value: v})
		}
	}
	out, err := yaml.MarshalWithOptions(ms, yaml.Indent(2), yaml.IndentSequence(true))
	if err != nil {
		return nil, fmt.Errorf("sam: %w", err)
	}
	b.Write(out)
	return b.Bytes(), nil
}

func targets(cfg *config.Config) []string {
	var out []string
	for _, r := range cfg.Routes {
		if !slices.Contains(out, r.Target) {
			out = append(out, r.Target)
		}
	}
	return out
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func ptr[T any](v T) *T { return &v }
