package gateway

import (
	"context"
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
	"github.com/drawbridge/drawbridge/internal/throttle"
	"github.com/drawbridge/drawbridge/internal/webhook"
)

// verdict is one step's decision. The zero verdict lets the request go on.
type verdict struct {
	reason reason // pass: go on; anything else: answer with that reply
	skip   bool   // the step does not apply to this request (explain says "skip")
}

var (
	allowed = verdict{}
	skipped = verdict{skip: true}
)

func deny(rs reason) verdict { return verdict{reason: rs} }

// step is one guard. Steps run in DESIGN §1's order; the first that
// denies ends the request. run does no I/O but the Store, and in a dry
// call (explain) it reads state without consuming any.
type step struct {
	name string // shown by explain and in the log's "guard"
	run  func(*call, time.Time) verdict
}

// steps lists the guards, cheapest first (DESIGN §1). explain walks the
// same list, so the order lives here only.
func (g *Gateway) newSteps() []step {
	return []step{
		{"limits", g.limits},
		{"allow_ips", g.allowIPs},
		{"resource_policy", g.resourcePolicy},
		{"api_key", g.apiKey},
		{"throttle", g.throttle},
		{"quota", g.quota},
		{"concurrency", g.concurrency},
		{"body", g.readBody},
		{"signature", g.signature},
	}
}

// Store keys. They are built once at Build, never per request, and stay
// the same across reloads so limits carry over (DESIGN §6).
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
	leaseTTL    time.Duration
	verifier    *webhook.Verifier
	provider    string
	// denied are the policy-denial replies for an exact route, per method
	// and [implicit, explicit]: the ARN is fixed, so the body is built once.
	denied [numMethods][2]*reply
	// bound is the resource policy matched to an exact route's ARN, per
	// method: a request then costs only the statements' conditions. nil
	// for prefix routes and other methods (the whole policy decides).
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
	if !r.prefix && (g.policy != nil || gd.allow != nil) {
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

// storeFailed turns a Store error into 503 (fail closed, DESIGN §6), or
// lets a throttle pass when state.on_error is open.
func (g *Gateway) storeFailed(c *call, err error, throttleOnly bool) verdict {
	g.storeErrors.Inc()
	return g.onStoreError(c, err, throttleOnly)
}

// onStoreError is storeFailed for an error already counted: the one
// Admit error that steps 4-6 each answer for their own stage.
func (g *Gateway) onStoreError(c *call, err error, throttleOnly bool) verdict {
	c.cause = err
	c.rule = "state store"
	if throttleOnly && g.failOpen {
		if c.dry {
			c.notef("state store failed (%v); state.on_error: open lets it pass", err)
		}
		return allowed
	}
	if c.dry {
		c.notef("state store failed: %v", err)
	}
	return deny(unavailable)
}

// limits is step 1: header size and declared body length, checked before
// anything is read.
func (g *Gateway) limits(c *call, _ time.Time) verdict {
	if g.maxHeader > 0 {
		n := int64(len(c.r.RequestURI))
		for k, vs := range c.r.Header {
			for _, v := range vs {
				n += int64(len(k) + len(v) + 4)
			}
		}
		if n > g.maxHeader {
			if c.dry {
				c.notef("headers are %d bytes, over limits.max_header_bytes %d", n, g.maxHeader)
			}
			c.rule = "limits.max_header_bytes"
			return deny(headersTooLarge)
		}
	}
	if c.r.ContentLength > g.maxBody {
		if c.dry {
			c.notef("declared Content-Length %d is over limits.max_body_bytes %d", c.r.ContentLength, g.maxBody)
		}
		c.rule = "limits.max_body_bytes"
		return deny(tooLarge)
	}
	if c.dry {
		c.notef("headers and declared length within limits")
	}
	return allowed
}

// allowIPs is step 2a: the route's allow_ips, a shorthand for a resource
// policy statement "Deny unless the source IP is in these sets", so its
// denial is the explicit-deny policy answer.
func (g *Gateway) allowIPs(c *call, _ time.Time) verdict {
	gd := &c.route.guards
	if gd.allow == nil {
		if c.dry {
			c.notef("route has no allow_ips")
		}
		return skipped
	}
	if gd.allow.Contains(c.client) {
		if c.dry {
			c.notef("client %s is in allow_ips [%s]", addrString(c.client), gd.allowText)
		}
		return allowed
	}
	if c.dry {
		c.notef("client %s is not in allow_ips [%s]", addrString(c.client), gd.allowText)
	}
	c.rule = "allow_ips"
	g.policyReply(c, true)
	return deny(policyDenied)
}

// resourcePolicy is step 2b: the IAM resource policy.
func (g *Gateway) resourcePolicy(c *call, now time.Time) verdict {
	if g.policy == nil {
		if c.dry {
			c.notef("no resource_policy")
		}
		return skipped
	}
	r := c.r
	pr := policy.Request{
		Stage:    g.stage,
		Method:   r.Method,
		Path:     r.URL.Path,
		SourceIP: c.client,
		Now:      now,
		Secure:   r.TLS != nil,
	}
	if v := r.Header["User-Agent"]; len(v) > 0 {
		pr.UserAgent = v[0]
	}
	if v := r.Header["Referer"]; len(v) > 0 {
		pr.Referer = v[0]
	}
	var d policy.Decision
	if b := c.route.guards.bound[methodIndex(r.Method)]; b != nil {
		d = b.Evaluate(&pr) // exact route: its ARN was matched at build
	} else {
		d = g.policy.Evaluate(&pr)
	}
	if c.dry {
		c.note = d.String() + " for " + policy.ARNFor(g.id, &pr) + " from " + addrString(c.client)
	}
	if d.Allowed() {
		return allowed
	}
	c.decision, c.hasDecision = d, true
	g.policyReply(c, d.Explicit())
	return deny(policyDenied)
}

// policyReply picks the 403 naming the request's ARN: prebuilt for exact
// routes, built here for prefix routes and unusual methods.
func (g *Gateway) policyReply(c *call, explicit bool) {
	ex := 0
	if explicit {
		ex = 1
	}
	if mi := methodIndex(c.r.Method); mi < numMethods-1 {
		if rp := c.route.guards.denied[mi][ex]; rp != nil {
			c.reply = rp
			return
		}
	}
	rp := g.replies[policyDenied]
	rp.body = policy.DenyBody(policy.ARN(g.id.Region, g.id.Account, g.id.APIID, g.stage, c.r.Method, c.r.URL.Path), explicit)
	c.reply = &rp
}

// apiKey is step 3: x-api-key (any case; net/http canonicalises it) must
// be a configured, enabled key in a usage plan. Its format is checked
// before hashing; the lookup is on the SHA-256 digest, so the plain key is
// never compared nor kept.
func (g *Gateway) apiKey(c *call, _ time.Time) verdict {
	if !c.route.guards.keyRequired {
		if c.dry {
			c.notef("route does not require an API key (no plan throttle or quota applies)")
		}
		return skipped
	}
	c.rule = "api_key"
	v := c.r.Header["X-Api-Key"]
	if len(v) == 0 || v[0] == "" {
		if c.dry {
			c.notef("no x-api-key header")
		}
		c.cause = errNoKey
		return deny(keyRejected)
	}
	if !apikey.Valid(v[0]) {
		if c.dry {
			c.notef("x-api-key is not 20-128 letters and digits")
		}
		c.cause = errBadKey
		return deny(keyRejected)
	}
	k := g.keys[apikey.Hash(v[0])]
	switch {
	case k == nil:
		if c.dry {
			c.notef("x-api-key matches no configured key")
		}
		c.cause = errUnknownKey
		return deny(keyRejected)
	case !k.enabled:
		if c.dry {
			c.notef("key %q is disabled", k.name)
		}
		c.rule = "api_key " + k.name
		c.cause = errDisabledKey
		return deny(keyRejected)
	case k.plan == nil:
		if c.dry {
			c.notef("key %q is in no usage plan for stage %s", k.name, g.stage)
		}
		c.rule = "api_key " + k.name
		c.cause = errNoPlan
		return deny(keyRejected)
	}
	c.key = k
	c.rule = ""
	if c.dry {
		c.notef("key %q, usage plan %q", k.name, k.plan.name)
	}
	return allowed
}

var (
	errNoKey       = errors.New("no x-api-key header")
	errBadKey      = errors.New("x-api-key has not the key format")
	errUnknownKey  = errors.New("unknown API key")
	errDisabledKey = errors.New("API key disabled")
	errNoPlan      = errors.New("API key in no usage plan for this stage")
	errConcurrency = errors.New("max_concurrent reached")
)

// requestBuckets are the levels step 4 takes a token from: account,
// route or stage default, the key's plan, the plan's override for this
// method. They live in c.buckets: no allocation.
func (g *Gateway) requestBuckets(c *call) []store.Bucket {
	bs := c.buckets[:0]
	if g.hasAccount {
		bs = append(bs, g.account)
	}
	if gd := &c.route.guards; gd.hasBucket {
		bs = append(bs, gd.bucket)
	}
	if k := c.key; k != nil {
		if k.plan.throttle != nil {
			bs = append(bs, k.bucket)
		}
		if len(k.methods) > 0 {
			if b, ok := k.methods[methodKey{c.route, c.r.Method}]; ok {
				bs = append(bs, b)
			}
		}
	}
	return bs
}

// admission is steps 4-6 done in one Store call (store.Admitter: one
// round trip on the redis driver instead of three). The first of the
// three steps that applies makes the call; each step then reads its own
// stage's verdict from the result, so the steps, their order and their
// replies stay as they are. A dry call (explain) never admits: it reads.
// It is allocated by the call that needs it, so that a call struct on the
// embedded drivers stays as small as it was.
type admission struct {
	res  store.AdmitResult
	err  error
	caps [store.MaxCaps]store.Cap
	slot [store.MaxCaps]int // index in c.leases of caps[i]
	n    int                // caps in use
}

// admit makes the call once per request. A store error is counted once;
// each step then answers it by its own stage's on_error rule, so an
// unreachable store still fails a quota closed whatever on_error says,
// and lets throttle and max_concurrent pass with on_error: open (with no
// lease: nothing to release).
func (g *Gateway) admit(c *call, now time.Time) {
	if c.adm != nil {
		return
	}
	a := &admission{}
	c.adm = a
	r := store.AdmitRequest{N: 1, Buckets: g.requestBuckets(c)}
	if k := c.key; k != nil && k.plan.quota != nil {
		r.QuotaKey, r.Quota = k.quotaKey, k.plan.quota.At(now)
	}
	gd := &c.route.guards
	if gd.stageMax != 0 {
		a.caps[a.n], a.slot[a.n] = store.Cap{Key: stageConcKey, Max: gd.stageMax}, 0
		a.n++
	}
	if gd.routeMax != 0 {
		a.caps[a.n], a.slot[a.n] = store.Cap{Key: gd.concKey, Max: gd.routeMax}, 1
		a.n++
	}
	r.Caps, r.LeaseTTL = a.caps[:a.n], gd.leaseTTL
	a.res, a.err = g.admitter.Admit(c.r.Context(), now, r)
	if a.err != nil {
		g.storeErrors.Inc()
		return
	}
	if a.res.Refused == store.Admitted {
		for i := range a.n {
			c.leases[a.slot[i]] = a.res.Leases[i]
		}
	}
}

// throttle is step 4: one token from every level the request is subject
// to (requestBuckets), all or none, in one Store call.
func (g *Gateway) throttle(c *call, now time.Time) verdict {
	bs := g.requestBuckets(c)
	if len(bs) == 0 {
		if c.dry {
			c.notef("no throttle applies")
		}
		return skipped
	}
	ctx := c.r.Context()
	var res store.TakeResult
	switch {
	case c.dry:
		res = store.TakeResult{OK: true, Denied: -1}
		for i, b := range bs {
			tokens, err := g.store.Tokens(ctx, now, b)
			if err != nil {
				return g.storeFailed(c, err, true)
			}
			c.notef("%s: %.1f tokens", bucketText(b), tokens)
			l := throttle.Limit{Rate: b.Rate, Burst: b.Burst}
			if tokens < 1 {
				if w := throttle.Wait(tokens, l, 1); res.OK || w > res.RetryAfter {
					res = store.TakeResult{Denied: i, RetryAfter: w}
				}
			}
		}
	case g.admitter != nil:
		if g.admit(c, now); c.adm.err != nil {
			return g.onStoreError(c, c.adm.err, true)
		}
		res = c.adm.res.Take
	default:
		var err error
		if res, err = g.store.Take(ctx, now, 1, bs); err != nil {
			return g.storeFailed(c, err, true)
		}
	}
	if res.OK {
		return allowed
	}
	b := bs[res.Denied]
	c.rule = b.Key
	c.retryAfter = int(throttle.RetryAfterSeconds(res.RetryAfter))
	if c.dry {
		c.note = "over " + bucketText(b) + "; " + c.note
	}
	return deny(throttled)
}

// quota is step 5: one request counted against the key's plan quota for
// the current UTC calendar period. A refused request is not counted.
func (g *Gateway) quota(c *call, now time.Time) verdict {
	k := c.key
	if k == nil || k.plan.quota == nil {
		if c.dry {
			c.notef("no usage-plan quota applies")
		}
		return skipped
	}
	q := k.plan.quota
	sq := q.At(now)
	var res store.QuotaResult
	var err error
	switch {
	case c.dry:
		res, err = g.store.Usage(c.r.Context(), k.quotaKey, sq)
	case g.admitter != nil:
		if g.admit(c, now); c.adm.err != nil {
			return g.onStoreError(c, c.adm.err, false)
		}
		res = c.adm.res.Quota
	default:
		res, err = g.store.Count(c.r.Context(), k.quotaKey, sq)
	}
	if err != nil {
		return g.storeFailed(c, err, false)
	}
	if c.dry {
		c.notef("plan %q quota %d/%s: %d used, %d remaining, resets %s", k.plan.name, q.Limit, q.Unit, res.Used, res.Remaining(), q.ResetAt(now).Format(time.RFC3339))
	}
	if res.OK {
		return allowed
	}
	c.rule = k.quotaKey
	// Seconds until the period resets: when a retry can succeed.
	c.retryAfter = int(throttle.RetryAfterSeconds(q.ResetAt(now).Sub(now)))
	return deny(quotaExceeded)
}

// concurrency is step 6: a lease on the stage's and the route's
// max_concurrent. Leases are released by ServeHTTP's deferred release
// however the request ends (answered, failed, panicked).
func (g *Gateway) concurrency(c *call, now time.Time) verdict {
	gd := &c.route.guards
	if gd.stageMax == 0 && gd.routeMax == 0 {
		if c.dry {
			c.notef("no max_concurrent")
		}
		return skipped
	}
	if !c.dry && g.admitter != nil {
		if g.admit(c, now); c.adm.err != nil {
			return g.onStoreError(c, c.adm.err, true)
		}
		if a := c.adm; a.res.Refused == store.OverConcurrency {
			c.rule = a.caps[a.res.Denied].Key
			c.cause = errConcurrency
			c.retryAfter = 1
			return deny(throttled)
		}
		return allowed
	}
	ctx := c.r.Context()
	caps := [2]struct {
		key string
		max int64
	}{{stageConcKey, gd.stageMax}, {gd.concKey, gd.routeMax}}
	for i, cp := range caps {
		if cp.max == 0 {
			continue
		}
		if c.dry {
			n, err := g.store.InUse(ctx, cp.key, now)
			if err != nil {
				return g.storeFailed(c, err, true)
			}
			c.notef("%s: %d of %d in flight", cp.key, n, cp.max)
			if n >= cp.max {
				c.rule = cp.key
				c.retryAfter = 1
				return deny(throttled)
			}
			continue
		}
		l, ok, err := g.store.Acquire(ctx, cp.key, cp.max, gd.leaseTTL, now)
		if err != nil {
			return g.storeFailed(c, err, true)
		}
		if !ok {
			c.rule = cp.key
			c.cause = errConcurrency
			// A slot frees when some request ends: no better estimate
			// than the smallest Retry-After.
			c.retryAfter = 1
			return deny(throttled)
		}
		c.leases[i] = l
	}
	return allowed
}

// release gives back the request's concurrency leases. Releasing the zero
// Lease is a no-op. The request's context may be cancelled by now (the
// client went away): the release must happen all the same, so it runs
// under a context of its own.
func (g *Gateway) release(c *call) {
	for _, l := range c.leases {
		if l.ID != 0 {
			if err := g.store.Release(context.Background(), l); err != nil {
				g.storeErrors.Inc()
				g.log.Warn("concurrency lease not released; it expires with its ttl", "key", l.Key, "error", err.Error())
			}
		}
	}
}

// signature is step 8: the route's webhook verifier over the raw body.
func (g *Gateway) signature(c *call, now time.Time) verdict {
	gd := &c.route.guards
	if gd.verifier == nil {
		if c.dry {
			c.notef("route has no verify")
		}
		return skipped
	}
	if err := gd.verifier.Verify(c.r.Header, c.body, now); err != nil {
		if c.dry {
			c.notef("%s signature rejected: %v", gd.provider, err)
		}
		c.rule = "verify " + gd.provider
		c.cause = err
		return deny(signatureRejected)
	}
	if c.dry {
		c.notef("%s signature valid", gd.provider)
	}
	return allowed
}

// bodyDry is step 7 in a dry call: the body is the one given to Explain.
func (g *Gateway) bodyDry(c *call) verdict {
	c.bodyDone = true
	c.notef("%d bytes (given to explain)", len(c.body))
	return allowed
}
