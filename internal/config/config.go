// Package config reads drawbridge.yaml into plain data.
//
// It imports nothing else of drawbridge: the packages that act on the
// configuration compile these values into their own runtime objects. Every
// error names the file and line (FILE:LINE: message), and no error ever
// contains a secret: secrets only arrive through environment variables
// whose names, not values, appear in messages.
package config

import (
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// API Gateway's limits, which drawbridge's defaults follow and which the
// serverless.yml reader and the export templates apply.
const (
	// RESTMaxTimeout and HTTPMaxTimeout are the longest a REST API and an
	// HTTP API wait for their integration.
	RESTMaxTimeout = 29 * time.Second
	HTTPMaxTimeout = 30 * time.Second
	// DefaultAccountRate and DefaultAccountBurst are the account-level
	// throttle every API in a region shares by default.
	DefaultAccountRate  = 10000
	DefaultAccountBurst = 5000
)

// MaxTimeout is API Gateway's integration limit for api (rest or http).
func MaxTimeout(api API) time.Duration {
	if api == APIHTTP {
		return HTTPMaxTimeout
	}
	return RESTMaxTimeout
}

// Defaults of the keys a drawbridge.yaml leaves out (docs/config.md).
const (
	DefaultStage       = "prod"
	DefaultAPI         = APIREST
	DefaultListen      = ":8080"
	DefaultAdmin       = "127.0.0.1:9090"
	DefaultMaxBody     = 10 << 20 // 10 MiB, as API Gateway
	DefaultMaxHeader   = 64 << 10
	DefaultTimeout     = RESTMaxTimeout
	DefaultReadHeader  = 10 * time.Second
	DefaultIdle        = 120 * time.Second
	DefaultShutdown    = 30 * time.Second
	DefaultForwarder   = ForwarderLean
	DefaultStatePath   = "drawbridge.db"
	DefaultStatePrefix = "drawbridge:"
	// Edge bounds (docs/hardening.md): HAProxy's 101 headers, Envoy's
	// 10,000 connections per listener.
	DefaultMaxHeaders      = 100
	DefaultMaxForwardedFor = 30
	DefaultMaxInflight     = 10000
	DefaultMaxConnections  = 10000
	DefaultMaxConnsPerIP   = 256
	// DefaultMaxBodyMemory is the memory all request bodies in flight may
	// hold together (docs/hardening.md): with Go's GC headroom, a
	// gateway under a body flood stays under 512 MiB.
	DefaultMaxBodyMemory = 128 << 20
	// DefaultMaxStreams is HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS, as
	// Envoy's edge guidance (Go's own default is 250).
	DefaultMaxStreams = 100
)

// Config is one loaded configuration. Zero values of optional blocks mean
// "not configured"; Load fills the documented defaults.
type Config struct {
	// File is the path the config was read from, for messages.
	File string `yaml:"-"`

	Stage  string `yaml:"stage"`  // appears in policy resources and ARNs
	API    API    `yaml:"api"`    // rest | http: which flavour's responses to mimic
	Listen string `yaml:"listen"` // host:port of the public listener
	Admin  string `yaml:"admin"`  // host:port of /healthz /readyz /metrics; AdminOff disables

	// AWS names the placeholders that appear in policy-denial ARNs.
	AWS AWS `yaml:"aws"`

	ClientIP        ClientIP            `yaml:"client_ip"`
	Limits          Limits              `yaml:"limits"`
	Server          Server              `yaml:"server"`
	State           State               `yaml:"state"`
	Throttle        *Throttle           `yaml:"throttle"`         // stage default, per route
	AccountThrottle *Throttle           `yaml:"account_throttle"` // one bucket for all routes
	Egress          Egress              `yaml:"egress"`
	TLS             *TLS                `yaml:"tls"`    // nil: plain HTTP/1.1
	Agents          *Agents             `yaml:"agents"` // nil: no agent listener (docs/agent.md)
	IPSets          map[string][]string `yaml:"ip_sets"`

	// ResourcePolicy is the IAM policy document, kept as JSON text. It is
	// written inline as YAML or JSON, or read from ResourcePolicyFile.
	ResourcePolicy     Policy `yaml:"resource_policy"`
	ResourcePolicyFile string `yaml:"resource_policy_file"`

	UsagePlans map[string]UsagePlan `yaml:"usage_plans"`
	APIKeys    []APIKey             `yaml:"api_keys"`
	Routes     []Route              `yaml:"routes"`

	// Authorizers by name, for routes' authorizer: (authorizer.go).
	Authorizers map[string]*Authorizer `yaml:"authorizers"`

	// CORS applies to every route without a cors of its own (nil: none).
	CORS *CORS `yaml:"cors"`

	Log     Log              `yaml:"log"` // the request log (log.go)
	Console `yaml:",inline"` // admin_auth, admin_tls, admin_hosts (console.go)
	// Tracing exports OpenTelemetry traces (nil: off; tracing.go).
	Tracing *Tracing `yaml:"tracing"`

	// Warnings are problems that do not stop the gateway (routes open to
	// anyone, for instance); check prints them.
	Warnings []Problem `yaml:"-"`

	// Lines maps a key's path ("$.routes[0].timeout") to the line of File
	// that set it; Line reads it.
	Lines map[string]int `yaml:"-"`
}

// API names the API Gateway flavour whose answers drawbridge mimics (api).
type API string

const (
	// APIREST: a REST API (v1), the default.
	APIREST API = "rest"
	// APIHTTP: an HTTP API (v2).
	APIHTTP API = "http"
)

// AdminOff as Config.Admin turns the admin listener off.
const AdminOff = "off"

// AWS holds the identifiers that appear in resource-policy ARNs.
type AWS struct {
	Region    string `yaml:"region"`     // default us-east-1
	AccountID string `yaml:"account_id"` // default 123456789012
	APIID     string `yaml:"api_id"`     // default drawbridge
}

// ClientIP says whom to believe about the client's address.
type ClientIP struct {
	// TrustedProxies are CIDRs (or single addresses) whose X-Forwarded-For
	// is believed. Empty: the TCP peer is the client.
	TrustedProxies []string `yaml:"trusted_proxies"`

	prefixes []netip.Prefix // TrustedProxies as parsed by Validate
}

// Prefixes is TrustedProxies as Validate parsed them (IPv4-in-IPv6
// unmapped, masked), so that the gateway, the edge and the Lambda
// adapter read one parse. Empty before Validate. Shared: do not modify.
func (c *ClientIP) Prefixes() []netip.Prefix { return c.prefixes }

// Limits bound what a request may carry.
type Limits struct {
	MaxBodyBytes   Int `yaml:"max_body_bytes"`   // default 10 MiB
	MaxHeaderBytes Int `yaml:"max_header_bytes"` // default 64 KiB
	// MaxBodyMemory is the memory all bodies being read or held may take
	// together (default 128 MiB, or 3 × MaxBodyBytes if that is more);
	// beyond it, 503 with Connection: close.
	MaxBodyMemory Int `yaml:"max_body_memory"`
	// MaxHeaders bounds the header lines of a request (default 100): Go
	// itself accepts 20,000 small ones.
	MaxHeaders Int `yaml:"max_headers"`
	// MaxForwardedFor bounds the X-Forwarded-For entries, all lines
	// together (default 30).
	MaxForwardedFor Int `yaml:"max_forwarded_for"`
	// MaxInflight caps requests being served at once (default 10000);
	// beyond it, 503 with Connection: close.
	MaxInflight Int `yaml:"max_inflight"`
	// MaxConnections caps open client connections (default 10000) and
	// MaxConnsPerIP those from one peer address (default 256; trusted
	// proxies are exempt). Beyond them a new connection gets a 503 and is
	// closed.
	MaxConnections Int `yaml:"max_connections"`
	MaxConnsPerIP  Int `yaml:"max_conns_per_ip"`
}

// TLS turns the public listener into HTTPS with HTTP/2 (h2c is never
// offered).
type TLS struct {
	Cert string `yaml:"cert"` // PEM certificate chain file
	Key  string `yaml:"key"`  // PEM private key file
	// ClientCA, when set, requires a client certificate signed by one of
	// these PEM CAs (API Gateway's mutual TLS).
	ClientCA string `yaml:"client_ca"`
	// MaxConcurrentStreams per HTTP/2 connection (default 100).
	MaxConcurrentStreams Int `yaml:"max_concurrent_streams"`

	Line int `yaml:"-"`
}

// WriteTimeoutMargin is what server.write_timeout adds, by default, to the
// longest route timeout: the time left to write an answer the target gave
// at its route's deadline (docs/hardening.md).
const WriteTimeoutMargin = 10 * time.Second

// Server holds the public listener's timeouts.
type Server struct {
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"` // default 10s
	IdleTimeout       Duration `yaml:"idle_timeout"`        // default 120s
	ShutdownTimeout   Duration `yaml:"shutdown_timeout"`    // default 30s: SIGTERM drain
	// ReadBodyTimeout bounds the time from a request's start to the end
	// of its body; zero: the route's timeout alone.
	ReadBodyTimeout Duration `yaml:"read_body_timeout"`
	// WriteTimeout bounds a request from the end of its header to the
	// last byte of its answer, so a client that reads slowly cannot hold
	// the request and its backend connection (docs/hardening.md). Default:
	// the longest route timeout plus WriteTimeoutMargin.
	WriteTimeout Duration `yaml:"write_timeout"`
	// Forwarder picks the upstream path (default lean).
	Forwarder Forwarder `yaml:"forwarder"`
}

// Forwarder names an upstream path (server.forwarder).
type Forwarder string

const (
	// ForwarderLean: pooled connections driven by the serving goroutine.
	ForwarderLean Forwarder = "lean"
	// ForwarderReverseProxy: httputil.ReverseProxy and http.Transport, the
	// reference path.
	ForwarderReverseProxy Forwarder = "reverseproxy"
)

// State selects where limits, quotas and deliveries live.
type State struct {
	Driver string `yaml:"driver"` // memory | embedded (default) | redis
	Path   string `yaml:"path"`   // embedded: bbolt file, default drawbridge.db
	// URL is the redis server: redis://, rediss:// (TLS),
	// redis+sentinel://h1:26379,h2:26379/MASTER[/db] or
	// redis+cluster://h1:6379,h2:6379 (docs/redis.md).
	URL    string `yaml:"url"`
	Prefix string `yaml:"prefix"` // redis key prefix, default "drawbridge:"
	// Sentinel and Cluster are the long forms of the redis+sentinel://
	// and redis+cluster:// URLs: the redis driver takes exactly one of
	// url, sentinel and cluster.
	Sentinel *StateSentinel `yaml:"sentinel"`
	Cluster  *StateCluster  `yaml:"cluster"`
	// TLS turns TLS on for any form and says what to trust.
	TLS *StateTLS `yaml:"tls"`
	// PasswordEnv names the environment variable holding the Redis
	// password (and UsernameEnv the ACL user): kept out of the config
	// file, and out of every log line and error.
	PasswordEnv string `yaml:"password_env"`
	UsernameEnv string `yaml:"username_env"`
	// WaitReplicas is how many replicas must hold an async delivery
	// before it is answered 202 (Redis WAIT); 0: do not wait.
	WaitReplicas Int `yaml:"wait_replicas"`
	// OnError is what guarded routes do when the store fails: closed
	// (default, 503) or open (throttles only).
	OnError OnError `yaml:"on_error"`
}

// OnError is what guarded routes do when the state store fails
// (state.on_error).
type OnError string

const (
	// OnErrorClosed: refuse with 503, the default.
	OnErrorClosed OnError = "closed"
	// OnErrorOpen: let throttles pass.
	OnErrorOpen OnError = "open"
)

// StateSentinel is a Redis Sentinel deployment: the sentinels' addresses
// and the name they monitor the primary under.
type StateSentinel struct {
	Master string   `yaml:"master"`
	Addrs  []string `yaml:"addrs"` // host:port of each sentinel
	// PasswordEnv names the variable holding the sentinels' own password,
	// when they require one (requirepass in sentinel.conf).
	PasswordEnv string `yaml:"password_env"`
}

// StateCluster is a Redis Cluster: any of its nodes; the rest are found.
type StateCluster struct {
	Addrs []string `yaml:"addrs"`
}

// StateTLS configures TLS to Redis: files in PEM. CA empty: the system
// roots; Cert and Key: a client certificate, both or neither.
type StateTLS struct {
	CA         string `yaml:"ca"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	ServerName string `yaml:"server_name"`
}

// Throttle is a token bucket (rate per second, burst capacity) with an
// optional cap on requests in flight. Zero MaxConcurrent: no cap.
type Throttle struct {
	Rate          Number `yaml:"rate"`
	Burst         Int    `yaml:"burst"`
	MaxConcurrent Int    `yaml:"max_concurrent"`
}

// Egress lists what the forwarder may dial.
type Egress struct {
	Allow []string `yaml:"allow"` // "CIDR:port[,port]"; default: the targets' own addresses
	Lines []int    `yaml:"-"`     // line of each Allow entry, for messages
}

// UsagePlan is an API Gateway usage plan: a quota and a per-key throttle.
type UsagePlan struct {
	Quota    *Quota    `yaml:"quota"`
	Throttle *Throttle `yaml:"throttle"`
	// Methods overrides the plan's throttle per "/path/METHOD", as API
	// Gateway's usage-plan method throttling.
	Methods map[string]Throttle `yaml:"methods"`
}

// Quota is a request budget per calendar period in UTC.
type Quota struct {
	Limit  Int    `yaml:"limit"`
	Period string `yaml:"period"` // DAY | WEEK | MONTH
	Offset Int    `yaml:"offset"` // subtracted from the first period
}

// APIKey is one key. Its value never appears in the file: either its
// SHA-256 (sha256) or the name of the environment variable holding it.
type APIKey struct {
	Name     string `yaml:"name"`
	Plan     string `yaml:"plan"`
	ValueEnv string `yaml:"value_env"`
	SHA256   string `yaml:"sha256"`
	Enabled  *bool  `yaml:"enabled"` // default true

	// Digest is the SHA-256 of the key, from SHA256 or hashed from the
	// environment at load. The plain key is not kept.
	Digest [32]byte `yaml:"-"`
	Line   int      `yaml:"-"`
}

// IsEnabled reports whether the key may be used (enabled defaults to true).
func (k *APIKey) IsEnabled() bool { return k.Enabled == nil || *k.Enabled }

// Route is one public path and where it goes.
type Route struct {
	// Path is exact ("/forward"), a prefix ("/hooks/*": "/hooks/a/b"
	// goes to the target path + "/a/b"; bare "/hooks" matches with an
	// empty rest) or a template ("/items/{id}", "/files/{path+}": one
	// segment per {name}, the non-empty rest for a last {name+}; the
	// request path from the first parameter on goes to the target path +
	// "/42", as a prefix route's rest).
	Path           string    `yaml:"path"`
	Methods        []string  `yaml:"methods"` // default: all
	Target         string    `yaml:"target"`
	Timeout        Duration  `yaml:"timeout"` // default 29s
	APIKeyRequired bool      `yaml:"api_key_required"`
	AllowIPs       []string  `yaml:"allow_ips"` // ip_sets names or CIDRs
	Throttle       *Throttle `yaml:"throttle"`
	Response       Response  `yaml:"response"` // passthrough (default) | envelope
	Verify         *Verify   `yaml:"verify"`
	Delivery       *Delivery `yaml:"delivery"`
	WebSocket      bool      `yaml:"websocket"` // allow Upgrade: websocket
	// AllowMetadata lets this route reach the cloud metadata endpoint its
	// target names by IP address; otherwise always denied (check warns).
	AllowMetadata bool `yaml:"allow_metadata"`
	// CORS replaces the top-level cors for this route (nil: the top's).
	CORS *CORS `yaml:"cors"`
	// Via sends the route's requests through a connected agent of this
	// name (agents.tokens) instead of dialing Target (docs/agent.md).
	Via string `yaml:"via"`
	// Authorizer names an authorizers: entry that must admit each request.
	Authorizer string `yaml:"authorizer"`
	// Scopes (jwt authorizer): the token needs at least one of these.
	Scopes []string `yaml:"scopes"`
	// AuthorizerHeaders maps a header the target receives to a verified
	// claim (jwt) or a context key of the authorizer's answer (request).
	AuthorizerHeaders map[string]string `yaml:"authorizer_headers"`
	// Match and Targets route on the event and fan out (match.go).
	Match   *Match   `yaml:"match"`
	Targets []Target `yaml:"targets"`

	Line int `yaml:"-"` // where the route starts, for messages

	target *url.URL // Target as parsed by Validate
	lanes  []Lane   // filled by Validate (match.go)
}

// TargetURL is Target as Validate parsed and checked it (an absolute http
// or https URL with a host and no credentials, query or fragment), or nil
// before Validate. A copy: the caller may change it.
func (r *Route) TargetURL() *url.URL {
	if r.target == nil {
		return nil
	}
	u := *r.target
	return &u
}

// Prefix reports whether the route matches a path prefix ("/hooks/*").
func (r *Route) Prefix() bool { return len(r.Path) >= 2 && r.Path[len(r.Path)-2:] == "/*" }

// Base is the route path without a trailing "/*".
func (r *Route) Base() string {
	if r.Prefix() {
		return r.Path[:len(r.Path)-2]
	}
	return r.Path
}

// Response is how a route hands back its target's answer (routes[].response).
type Response string

const (
	// ResponsePassthrough: the target's answer as it is, the default.
	ResponsePassthrough Response = "passthrough"
	// ResponseEnvelope: {"result": "<target body as text>"} with the
	// target's status, as the original Python forwarder.
	ResponseEnvelope Response = "envelope"
)

// Verify configures webhook signature checks on a route.
type Verify struct {
	Provider   string   `yaml:"provider"` // github | gitlab | bitbucket | stripe | slack | standard | hmac
	SecretEnv  string   `yaml:"secret_env"`
	SecretEnvs []string `yaml:"secret_envs"` // several, for rotation
	Header     string   `yaml:"header"`      // hmac
	Algorithm  string   `yaml:"algorithm"`   // hmac: sha1 | sha256 | sha512
	Encoding   string   `yaml:"encoding"`    // hmac: hex | base64
	Prefix     string   `yaml:"prefix"`      // hmac: e.g. "sha256="
	Tolerance  Duration `yaml:"tolerance"`   // stripe, slack, standard

	// Secrets are read from the environment at load. Never logged.
	Secrets [][]byte `yaml:"-"`
}

// Delivery says whether a route forwards at once (sync) or stores and
// forwards (async).
type Delivery struct {
	Mode        DeliveryMode `yaml:"mode"` // sync (default) | async
	IDHeader    string       `yaml:"id_header"`
	Retry       Retry        `yaml:"retry"`
	Concurrency Int          `yaml:"concurrency"`
	// Sign, OrderBy and Coalesce: match.go.
	Sign     *Sign  `yaml:"sign"`
	OrderBy  string `yaml:"order_by"`
	Coalesce string `yaml:"coalesce"`
}

// DeliveryMode is how a route's requests reach the target
// (routes[].delivery.mode).
type DeliveryMode string

const (
	// DeliverySync: forwarded at once, the target's answer returned.
	DeliverySync DeliveryMode = "sync"
	// DeliveryAsync: stored, answered 202, delivered by the worker.
	DeliveryAsync DeliveryMode = "async"
)

// Retry is the async delivery retry schedule.
type Retry struct {
	MaxAttempts Int      `yaml:"max_attempts"`
	MaxAge      Duration `yaml:"max_age"`
	Base        Duration `yaml:"base"`
	Max         Duration `yaml:"max"`
}

// Problem is one finding at a place in a file.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return p.File + ":" + strconv.Itoa(p.Line) + ": " + p.Msg
	}
	return p.File + ": " + p.Msg
}
