package export

// The CloudFormation and SAM resources `export sam` writes, as typed
// structs: only the properties drawbridge sets, each named as in the AWS
// resource reference (hence RestApiId, not RestAPIID), so a misspelt
// property is a compile error. A property that takes a literal or an
// intrinsic function (a Ref to a parameter) is typed any and holds a
// string or a ref. cfn-lint checks the result in TestSAMLint, and
// testdata/sam-*.yaml pins it byte for byte.
//
// These replace github.com/awslabs/goformation, whose generated types for
// every AWS resource were 247 of the 328 third-party packages a first
// build compiled, for the seven resource types here (docs/install.md has
// the figures).

const (
	typeFunction      = "AWS::Serverless::Function"
	typeAPI           = "AWS::Serverless::Api"
	typeHTTPAPI       = "AWS::Serverless::HttpApi"
	typeSecurityGroup = "AWS::EC2::SecurityGroup"
	typeUsagePlan     = "AWS::ApiGateway::UsagePlan"
	typeAPIKey        = "AWS::ApiGateway::ApiKey"
	typeUsagePlanKey  = "AWS::ApiGateway::UsagePlanKey"
)

type template struct {
	AWSTemplateFormatVersion string
	Transform                string
	Description              string
	Metadata                 map[string]any
	Parameters               map[string]parameter
	Resources                map[string]resource
	Outputs                  map[string]output
}

type parameter struct {
	Type           string
	Description    string `json:",omitempty"`
	AllowedPattern string `json:",omitempty"`
	MinLength      int    `json:",omitempty"`
	NoEcho         bool   `json:",omitempty"`
}

type output struct {
	Value any
}

// resource is one entry of Resources; Properties is one of the
// ...Props structs below, by Type.
type resource struct {
	Type       string
	Properties any
}

// ref is the intrinsic function Ref: a parameter's value or a resource's
// id.
type ref struct {
	Ref string
}

// sub is the intrinsic function Fn::Sub: a string with ${...} replaced.
type sub struct {
	Sub string `json:"Fn::Sub"`
}

// function is AWS::Serverless::Function.
type function struct {
	CodeUri       string
	Handler       string
	Runtime       string
	Architectures []string
	MemorySize    int
	Timeout       int
	Environment   functionEnvironment
	VpcConfig     vpcConfig
	Policies      []sub
	Events        map[string]eventSource
}

type functionEnvironment struct {
	Variables map[string]any // string or ref
}

type vpcConfig struct {
	SecurityGroupIds []ref
	SubnetIds        ref // the List<AWS::EC2::Subnet::Id> parameter
}

// eventSource is one of a function's Events; Properties is an apiEvent
// (Type Api) or an httpAPIEvent (Type HttpApi).
type eventSource struct {
	Type       string
	Properties any
}

type apiEvent struct {
	RestApiId ref
	Path      string
	Method    string
	Auth      *eventAuth `json:",omitempty"`
}

type eventAuth struct {
	ApiKeyRequired bool
}

type httpAPIEvent struct {
	ApiId                ref
	Path                 string
	Method               string
	PayloadFormatVersion string
	Auth                 *httpEventAuth `json:",omitempty"`
}

// httpEventAuth names a route's JWT authorizer (sam.go, jwtAuthorizers).
type httpEventAuth struct {
	Authorizer          string
	AuthorizationScopes []string `json:",omitempty"`
}

// restAPI is AWS::Serverless::Api.
type restAPI struct {
	StageName             string
	Name                  string
	EndpointConfiguration endpointConfiguration
	MethodSettings        []methodSetting `json:",omitempty"`
	Auth                  *apiAuth        `json:",omitempty"`
}

type endpointConfiguration struct {
	Type string
}

type methodSetting struct {
	ResourcePath         string
	HttpMethod           string
	ThrottlingRateLimit  float64
	ThrottlingBurstLimit int
}

type apiAuth struct {
	ResourcePolicy resourcePolicy
}

type resourcePolicy struct {
	CustomStatements []any // IAM policy statements, as config has them
}

// httpAPI is AWS::Serverless::HttpApi.
type httpAPI struct {
	StageName            string
	DefaultRouteSettings *routeThrottle           `json:",omitempty"`
	RouteSettings        map[string]routeThrottle `json:",omitempty"` // by "METHOD /path"
	Auth                 *httpAPIAuth             `json:",omitempty"`
}

// httpAPIAuth holds an HTTP API's JWT authorizers, by name.
type httpAPIAuth struct {
	Authorizers map[string]jwtAuthorizer
}

type jwtAuthorizer struct {
	IdentitySource   string
	JwtConfiguration jwtConfiguration
}

// jwtConfiguration's keys are lower case in SAM.
type jwtConfiguration struct {
	Issuer   string   `json:"issuer"`
	Audience []string `json:"audience"`
}

type routeThrottle struct {
	ThrottlingRateLimit  float64
	ThrottlingBurstLimit int
}

// securityGroupProps is AWS::EC2::SecurityGroup.
type securityGroupProps struct {
	GroupDescription    string
	VpcId               ref
	SecurityGroupEgress []sgEgress
}

type sgEgress struct {
	IpProtocol  string
	FromPort    int
	ToPort      int
	CidrIp      any    `json:",omitempty"` // string or ref
	CidrIpv6    string `json:",omitempty"`
	Description string `json:",omitempty"`
}

// usagePlan is AWS::ApiGateway::UsagePlan.
type usagePlan struct {
	UsagePlanName string
	ApiStages     []apiStage
	Quota         *quotaSettings    `json:",omitempty"`
	Throttle      *throttleSettings `json:",omitempty"`
}

type apiStage struct {
	ApiId    ref
	Stage    ref
	Throttle map[string]throttleSettings `json:",omitempty"` // by "/path/METHOD"
}

type quotaSettings struct {
	Limit  int
	Offset int `json:",omitempty"`
	Period string
}

type throttleSettings struct {
	RateLimit  float64
	BurstLimit int
}

// apiKey is AWS::ApiGateway::ApiKey.
type apiKey struct {
	Name        string
	Enabled     bool
	Value       *ref   `json:",omitempty"` // absent: AWS generates one
	Description string `json:",omitempty"`
}

// usagePlanKey is AWS::ApiGateway::UsagePlanKey.
type usagePlanKey struct {
	KeyId       ref
	KeyType     string
	UsagePlanId ref
}
