package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/apikey"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/ipset"
	"github.com/drawbridge/drawbridge/internal/policy"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/webhook"
)

// This file is the guards' Build half: it compiles the config's guard
// settings into the immutable structures the steps of guards.go read per
// request (keys, buckets, plans, policy replies), so a request parses
// nothing.

// Store keys. They are built once at Build, never per request, and stay
// the same across reloads so limits and counts carry over a SIGHUP
// (docs/guards.md, State).
const (
	accountKey    = "account"
	stageConcKey  = "concurrency:stage"
	routeKeyPfx   = "route:"
	routeConcPfx  = "concurrency:route:"
	keyBucketPfx  = "key:"
	quotaKeyPfx   = "quota:"
	leaseOverhang = 10 * time.Second // lease ttl beyond the route timeout
)

// plan is a usage plan, compiled.
type plan struct {
	name     string
	quota    *apikey.Quota // nil: no quota
	throttle *store.Bucket // template; nil: no per-key throttle
	methods  map[methodKey]config.Throttle
}

// methodKey names one method of one route: what a usage plan's
// "/path/METHOD" throttle override addresses.
type methodKey struct {
	route  *route
	method string
}

// key is a configured API key, compiled. Only its digest was ever kept.
type key struct {
	name     string
	plan     *plan // nil: in no plan, refused (API Gateway's "not in a plan for this stage")
	enabled  bool
	bucket   store.Bucket // per key per plan, shared by every route (aggregated)
	methods  map[methodKey]store.Bucket
	quotaKey string
}

// guards is a route's compiled guard configuration.
type guards struct {
	allow       *ipset.Set // nil: no allow_ips
	allowText   string     // for explain and the log
	keyRequired bool
	bucket      store.Bucket // route (or stage default) bucket
	hasBucket   bool
	stageMax    int64 // stage max_concurrent; 0: none
	routeMax    int64 // route max_concurrent; 0: none
	concKey     string
	caps        []store.Cap // stage's then route's max_concurrent, those set
	leaseTTL    time.Duration
	verifier    *webhook.Verifier
	provider    string
	cors        *corsRule   // nil: the route has no cors (cors.go)
	authz       *routeAuthz // nil: no authorizer (authorize.go)
	// denied are the policy-denial replies for an exact route, per method
	// and [implicit, explicit]: the ARN is fixed, so the body is built once.
	denied [numMethods][2]*reply
	// bound is the resource policy matched to an exact route's ARN, per
	// method: a request then costs only the statements' conditions. nil
	// for prefix and template routes, whose ARN names the request's own
	// path, and for other methods (the whole policy decides).
	bound [numMethods]*policy.Bound
}

func bucketText(b store.Bucket) string {
	return b.Key + " (rate " + strconv.FormatFloat(b.Rate, 'f', -1, 64) + "/s, burst " + strconv.FormatInt(b.Burst, 10) + ")"
}

// configError is a config problem Load cannot see (a policy the matcher
// refuses, a method override naming no route), as FILE:LINE: message.
func configError(cfg *config.Config, line int, format string, args ...any) error {
	p := config.Problem{File: cfg.File, Line: line, Msg: fmt.Sprintf(format, args...)}
	return errors.New(p.String())
}

// compileGuards builds the policy, every route's guards, the plans and
// the keys.
func (g *Gateway) compileGuards(cfg *config.Config, ipsets map[string][]string) error {
	g.id = policy.Identity{Region: cfg.AWS.Region, Account: cfg.AWS.AccountID, APIID: cfg.AWS.APIID}
	if cfg.ResourcePolicy != "" {
		p, err := policy.CompileFor([]byte(cfg.ResourcePolicy), g.id)
		if err != nil {
			return configError(cfg, cfg.Line("$.resource_policy"), "resource_policy: %v", err)
		}
		g.policy = p
	}
	if t := cfg.AccountThrottle; t != nil {
		g.account = store.Bucket{Key: accountKey, Rate: float64(t.Rate), Burst: int64(t.Burst)}
		g.hasAccount = true
	}
	named := map[string][]string{}
	for k, v := range ipsets {
		named[k] = v
	}
	for k, v := range cfg.IPSets { // the config's own sets win over local copies
		named[k] = v
	}

	for _, r := range g.routes {
		if err := g.compileRoute(cfg, r, named); err != nil {
			return err
		}
	}
	if err := g.compilePlans(cfg); err != nil {
		return err
	}
	return g.compileKeys(cfg)
}

// compileRoute fills r.guards.
func (g *Gateway) compileRoute(cfg *config.Config, r *route, named map[string][]string) error {
	rc := r.cfg
	gd := &r.guards
	if len(rc.AllowIPs) > 0 {
		set, err := ipset.Compile(rc.AllowIPs, named)
		if err != nil {
			return configError(cfg, rc.Line, "route %s: allow_ips: %v", rc.Path, err)
		}
		gd.allow, gd.allowText = set, strings.Join(rc.AllowIPs, ", ")
	}
	gd.keyRequired = rc.APIKeyRequired
	gd.authz = g.routeAuthorizer(rc)
	// The route's own throttle replaces the stage default field by
	// field, as an API Gateway method setting overrides the stage's;
	// zero fields inherit (docs/guards.md).
	var t config.Throttle
	if cfg.Throttle != nil {
		t = *cfg.Throttle
		gd.stageMax = int64(cfg.Throttle.MaxConcurrent)
	}
	if rt := rc.Throttle; rt != nil {
		if rt.Rate != 0 || rt.Burst != 0 {
			t.Rate, t.Burst = rt.Rate, rt.Burst
		}
		gd.routeMax = int64(rt.MaxConcurrent)
	}
	// A route is its path and methods: two route entries sharing a path
	// are two routes, with a bucket and a cap each.
	id := rc.Path + " " + strings.Join(rc.Methods, ",")
	if cfg.Throttle != nil || rc.Throttle != nil && (rc.Throttle.Rate != 0 || rc.Throttle.Burst != 0) {
		gd.bucket = store.Bucket{Key: routeKeyPfx + id, Rate: float64(t.Rate), Burst: int64(t.Burst)}
		gd.hasBucket = true
	}
	gd.concKey = routeConcPfx + id
	if gd.stageMax != 0 {
		gd.caps = append(gd.caps, store.Cap{Key: stageConcKey, Max: gd.stageMax})
	}
	if gd.routeMax != 0 {
		gd.caps = append(gd.caps, store.Cap{Key: gd.concKey, Max: gd.routeMax})
	}
	gd.leaseTTL = time.Duration(rc.Timeout) + leaseOverhang
	if v := rc.Verify; v != nil {
		ver, err := webhook.New(webhook.Spec{
			Provider: v.Provider, Secrets: v.Secrets, Header: v.Header, Algorithm: v.Algorithm,
			Encoding: v.Encoding, Prefix: v.Prefix, Tolerance: time.Duration(v.Tolerance),
		})
		if err != nil {
			return configError(cfg, rc.Line, "route %s: verify: %v", rc.Path, err)
		}
		gd.verifier, gd.provider = ver, strings.ToLower(v.Provider)
	}
	if !r.prefix && r.tmpl == nil && (g.policy != nil || gd.allow != nil) {
		for mi := range numMethods - 1 {
			if r.methods&(1<<mi) == 0 {
				continue
			}
			gd.bound[mi] = g.policy.Bind(cfg.Stage, methodNames[mi], rc.Path)
			arn := policy.ARN(g.id.Region, g.id.Account, g.id.APIID, cfg.Stage, methodNames[mi], rc.Path)
			for ex := range 2 {
				rp := g.replies[policyDenied]
				rp.body = policy.DenyBody(arn, ex == 1)
				gd.denied[mi][ex] = &rp
			}
		}
	}
	return nil
}

// compilePlans builds the usage plans, resolving "/path/METHOD" overrides
// to routes.
func (g *Gateway) compilePlans(cfg *config.Config) error {
	byPath := map[string][]*route{}
	for _, r := range g.routes {
		byPath[r.cfg.Path] = append(byPath[r.cfg.Path], r)
	}
	g.plans = map[string]*plan{}
	for name, pc := range cfg.UsagePlans {
		p := &plan{name: name}
		if q := pc.Quota; q != nil {
			aq := apikey.Quota{Limit: int64(q.Limit), Offset: int64(q.Offset), Unit: apikey.Unit(q.Period)}
			if err := aq.Validate(); err != nil {
				return configError(cfg, cfg.Line("$.usage_plans."+name+".quota"), "usage_plans.%s.quota: %v", name, err)
			}
			p.quota = &aq
		}
		if t := pc.Throttle; t != nil {
			p.throttle = &store.Bucket{Rate: float64(t.Rate), Burst: int64(t.Burst)}
		}
		p.methods = map[methodKey]config.Throttle{}
		for m, t := range pc.Methods {
			i := strings.LastIndexByte(m, '/')
			path, method := m[:i], strings.ToUpper(m[i+1:])
			var hit *route
			for _, r := range byPath[path] {
				if r.allows(methodIndex(method), method) {
					hit = r
				}
			}
			if hit == nil {
				return configError(cfg, cfg.Line("$.usage_plans."+name+".methods."+m), "usage_plans.%s.methods: %q names no configured route and method (want /path/METHOD of a route, e.g. %s/GET)", name, m, g.routes[0].cfg.Path)
			}
			p.methods[methodKey{hit, method}] = t
		}
		g.plans[name] = p
	}
	return nil
}

// compileKeys builds the keys, each with its buckets and quota counter.
func (g *Gateway) compileKeys(cfg *config.Config) error {
	g.keys = map[[32]byte]*key{}
	for i := range cfg.APIKeys {
		kc := &cfg.APIKeys[i]
		k := &key{name: kc.Name, enabled: kc.IsEnabled(), plan: g.plans[kc.Plan]}
		if p := k.plan; p != nil {
			id := keyBucketPfx + kc.Name + ":plan:" + p.name
			if p.throttle != nil {
				k.bucket = *p.throttle
				k.bucket.Key = id
			}
			k.methods = map[methodKey]store.Bucket{}
			for mk, t := range p.methods {
				k.methods[mk] = store.Bucket{Key: id + ":" + mk.route.cfg.Path + "/" + mk.method, Rate: float64(t.Rate), Burst: int64(t.Burst)}
			}
			k.quotaKey = quotaKeyPfx + p.name + ":key:" + kc.Name
		}
		if _, dup := g.keys[kc.Digest]; dup {
			return configError(cfg, kc.Line, "api_keys %q: the same key value as another key (values must be unique)", kc.Name)
		}
		g.keys[kc.Digest] = k
	}
	return nil
}

// needsStore reports whether any guard keeps state.
func (g *Gateway) needsStore() bool {
	if g.hasAccount || len(g.keys) > 0 {
		return true
	}
	for _, r := range g.routes {
		if r.guards.hasBucket || r.guards.stageMax > 0 || r.guards.routeMax > 0 {
			return true
		}
	}
	return false
}
