package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

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
// The resources are the typed structs in samtypes.go, so a misspelt
// property is a compile error rather than a failed deploy; cfn-lint
// checks what they write (TestSAMLint).
func SAM(cfg *config.Config) ([]byte, error) {
	notes := Notes(cfg)
	t := &template{
		AWSTemplateFormatVersion: "2010-09-09",
		Transform:                "AWS::Serverless-2016-10-31",
		Description:              "drawbridge in front of " + strings.Join(targets(cfg), ", ") + " (written by drawbridge export sam)",
		Metadata: map[string]any{"Drawbridge": map[string]any{
			"Package":          "CodeUri dist/ must hold bootstrap (GOOS=linux GOARCH=arm64 go build -o dist/bootstrap ./cmd/drawbridge) and " + configFile,
			"NotEnforcedByAWS": nonNil(notes),
		}},
		Parameters: map[string]parameter{
			"VpcId":     {Type: "AWS::EC2::VPC::Id", Description: "VPC of the private backends"},
			"SubnetIds": {Type: "List<AWS::EC2::Subnet::Id>", Description: "private subnets the function runs in"},
		},
		Resources: map[string]resource{},
		Outputs: map[string]output{
			"ApiUrl": {Value: sub{"https://${Api}.execute-api.${AWS::Region}.amazonaws.com/" + cfg.Stage + "/"}},
		},
	}

	if err := securityGroup(t, cfg); err != nil {
		return nil, err
	}

	env := map[string]any{"DRAWBRIDGE_CONFIG": "/var/task/" + configFile}
	for _, name := range secretEnvs(cfg) {
		p := paramName(name)
		t.Parameters[p] = parameter{Type: "String", NoEcho: true, MinLength: 1,
			Description: "value of " + name + " for the drawbridge function"}
		env[name] = ref{p}
	}

	routeSettings := functions(t, cfg, env)
	if cfg.API != config.APIHTTP {
		api := restAPI{
			StageName:             cfg.Stage,
			Name:                  "drawbridge",
			EndpointConfiguration: endpointConfiguration{Type: "REGIONAL"},
			MethodSettings:        methodSettings(cfg),
		}
		if cfg.ResourcePolicy != "" {
			api.Auth = &apiAuth{ResourcePolicy: resourcePolicy{CustomStatements: statements(cfg)}}
		}
		t.Resources["Api"] = resource{typeAPI, api}
		keysAndPlans(t, cfg)
	} else {
		api := httpAPI{StageName: cfg.Stage}
		if s := cfg.Throttle; s != nil {
			api.DefaultRouteSettings = &routeThrottle{ThrottlingRateLimit: float64(s.Rate), ThrottlingBurstLimit: int(s.Burst)}
		}
		if len(routeSettings) > 0 {
			api.RouteSettings = routeSettings
		}
		api.Auth = jwtAuthorizers(cfg)
		t.Resources["Api"] = resource{typeHTTPAPI, api}
	}

	// Through JSON and back to maps so the YAML writer sorts every
	// mapping's keys, as a reader of a long template expects.
	raw, err := json.Marshal(t)
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
	return render(doc, notes)
}

// securityGroup adds the function's security group: egress exactly as
// egressRules says, host-name targets' CIDRs as parameters.
func securityGroup(t *template, cfg *config.Config) error {
	rules, err := egressRules(cfg)
	if err != nil {
		return err
	}
	sg := securityGroupProps{
		GroupDescription: "drawbridge: egress only to the backends",
		VpcId:            ref{"VpcId"},
	}
	for _, h := range hostTargets(cfg) {
		t.Parameters[h.param] = parameter{
			Type:           "String",
			Description:    fmt.Sprintf("CIDR of %s (security groups cannot allow a host name)", h.host),
			AllowedPattern: `^[0-9a-fA-F:.]+/[0-9]{1,3}$`,
		}
	}
	for _, r := range rules {
		e := sgEgress{IpProtocol: "tcp", FromPort: r.port, ToPort: r.port}
		switch {
		case r.param != "":
			e.CidrIp = ref{r.param}
		case r.ipv6:
			e.CidrIpv6 = r.cidr
		default:
			e.CidrIp = r.cidr
		}
		sg.SecurityGroupEgress = append(sg.SecurityGroupEgress, e)
	}
	if len(sg.SecurityGroupEgress) == 0 {
		// no rule at all would mean AWS's default, allow everything
		sg.SecurityGroupEgress = []sgEgress{{IpProtocol: "icmp", FromPort: -1, ToPort: -1, CidrIp: "127.0.0.1/32", Description: "no egress"}}
	}
	t.Resources["SecurityGroup"] = resource{typeSecurityGroup, sg}
	return nil
}

// functions adds one drawbridge function per distinct route timeout, with
// an event per route and method. It returns the HTTP API's per-route
// throttles, which go on the API.
func functions(t *template, cfg *config.Config, env map[string]any) map[string]routeThrottle {
	rest := cfg.API != config.APIHTTP
	routeSettings := map[string]routeThrottle{}
	for g, idx := range groupRoutes(cfg, func(r config.Route) int { return seconds(r.Timeout) }) {
		fn := function{
			CodeUri:       "dist/",
			Handler:       handler,
			Runtime:       runtime,
			Architectures: []string{"arm64"},
			MemorySize:    memoryMB,
			Timeout:       seconds(cfg.Routes[idx[0]].Timeout),
			Environment:   functionEnvironment{Variables: env},
			VpcConfig:     vpcConfig{SecurityGroupIds: []ref{{"SecurityGroup"}}, SubnetIds: ref{"SubnetIds"}},
			Policies:      []sub{{"arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"}},
			Events:        map[string]eventSource{},
		}
		for _, i := range idx {
			r := cfg.Routes[i]
			for _, m := range eventMethods(r) {
				name := fmt.Sprintf("Route%d%s", i, eventName(m))
				if rest {
					ev := apiEvent{RestApiId: ref{"Api"}, Path: awsPath(r), Method: strings.ToLower(m)}
					if r.APIKeyRequired {
						ev.Auth = &eventAuth{ApiKeyRequired: true}
					}
					fn.Events[name] = eventSource{Type: "Api", Properties: ev}
					continue
				}
				ev := httpAPIEvent{ApiId: ref{"Api"}, Path: awsPath(r), Method: strings.ToUpper(m), PayloadFormatVersion: "2.0"}
				if a := cfg.Authorizers[r.Authorizer]; a != nil && a.Type == config.AuthorizerJWT {
					ev.Auth = &httpEventAuth{Authorizer: samName(r.Authorizer), AuthorizationScopes: r.Scopes}
				}
				fn.Events[name] = eventSource{Type: "HttpApi", Properties: ev}
				if r.Throttle != nil {
					routeSettings[strings.ToUpper(m)+" "+awsPath(r)] = routeThrottle{
						ThrottlingRateLimit: float64(r.Throttle.Rate), ThrottlingBurstLimit: int(r.Throttle.Burst)}
				}
			}
		}
		t.Resources[functionName(g)] = resource{typeFunction, fn}
	}
	return routeSettings
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
func methodSettings(cfg *config.Config) []methodSetting {
	var out []methodSetting
	if s := cfg.Throttle; s != nil {
		out = append(out, methodSetting{ResourcePath: "/*", HttpMethod: "*",
			ThrottlingRateLimit: float64(s.Rate), ThrottlingBurstLimit: int(s.Burst)})
	}
	for _, r := range cfg.Routes {
		if r.Throttle == nil {
			continue
		}
		for _, m := range eventMethods(r) {
			if m == "ANY" {
				m = "*"
			}
			out = append(out, methodSetting{
				ResourcePath: "/" + strings.ReplaceAll(awsPath(r), "/", "~1"),
				HttpMethod:   m, ThrottlingRateLimit: float64(r.Throttle.Rate), ThrottlingBurstLimit: int(r.Throttle.Burst)})
		}
	}
	return out
}

// keysAndPlans adds an ApiKey per key (its value from a NoEcho parameter;
// a key known only by its SHA-256 gets a new value from AWS), a UsagePlan
// per plan and the UsagePlanKeys. Keys without a plan go in one plan
// without limits: API Gateway accepts a key only through a plan.
func keysAndPlans(t *template, cfg *config.Config) {
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
		stage := apiStage{ApiId: ref{"Api"}, Stage: ref{"Api.Stage"}}
		if len(p.Methods) > 0 {
			stage.Throttle = map[string]throttleSettings{}
			for m, th := range p.Methods {
				stage.Throttle[m] = throttleSettings{RateLimit: float64(th.Rate), BurstLimit: int(th.Burst)}
			}
		}
		up := usagePlan{UsagePlanName: display, ApiStages: []apiStage{stage}}
		if q := p.Quota; q != nil {
			up.Quota = &quotaSettings{Limit: int(q.Limit), Offset: int(q.Offset), Period: q.Period}
		}
		if th := p.Throttle; th != nil {
			up.Throttle = &throttleSettings{RateLimit: float64(th.Rate), BurstLimit: int(th.Burst)}
		}
		t.Resources[id] = resource{typeUsagePlan, up}
	}
	for i, k := range cfg.APIKeys {
		id := fmt.Sprintf("ApiKey%d", i+1)
		key := apiKey{Name: k.Name, Enabled: k.IsEnabled()}
		if k.ValueEnv != "" {
			key.Value = &ref{paramName(k.ValueEnv)}
		} else {
			key.Description = "known to drawbridge only by its SHA-256: AWS generates a new value; give it to clients and to drawbridge"
		}
		t.Resources[id] = resource{typeAPIKey, key}
		t.Resources[id+"Plan"] = resource{typeUsagePlanKey, usagePlanKey{KeyId: ref{id}, KeyType: "API_KEY", UsagePlanId: ref{planID[k.Plan]}}}
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
	for _, target := range cfg.TargetURLs() {
		if !slices.Contains(out, target) {
			out = append(out, target)
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

// jwtAuthorizers writes the HTTP API's JWT authorizers natively, so API
// Gateway checks the tokens before the function runs (the function checks
// them again). Request authorizers are not written: API Gateway would
// need a Lambda authorizer function; the drawbridge function calls them
// (Notes).
func jwtAuthorizers(cfg *config.Config) *httpAPIAuth {
	var auth *httpAPIAuth
	for name, a := range cfg.Authorizers {
		if a.Type != config.AuthorizerJWT {
			continue
		}
		if auth == nil {
			auth = &httpAPIAuth{Authorizers: map[string]jwtAuthorizer{}}
		}
		src := config.DefaultIdentitySource
		if len(a.IdentitySources) == 1 {
			if kind, n, ok := config.ParseIdentitySource(a.IdentitySources[0]); ok && kind == "query" {
				src = "$request.querystring." + n
			} else if ok && kind == "header" {
				src = "$request.header." + n
			}
		}
		auth.Authorizers[samName(name)] = jwtAuthorizer{IdentitySource: src,
			JwtConfiguration: jwtConfiguration{Issuer: a.Issuer, Audience: a.Audience}}
	}
	return auth
}

// samName is an authorizer name as a SAM key: letters and digits only
// (SAM builds logical ids from it).
func samName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "Authorizer"
	}
	return b.String()
}
