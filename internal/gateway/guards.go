package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/apikey"
	"github.com/drawbridge/drawbridge/internal/policy"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/throttle"
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

// step is one guard. Steps run in the order docs/guards.md gives and
// explains; the first that denies ends the request. run does no I/O but
// the Store, and in a dry call (explain) it reads state without
// consuming any.
type step struct {
	name string // shown by explain and in the log's "guard"
	run  func(*call, time.Time) verdict
	// note, when set, is the step's explain line, written from what run
	// left in the call; steps without it write c.note themselves.
	note func(*call, time.Time) string
}

// steps lists the guards, cheapest first, so a request that will be
// refused costs as little as possible (docs/guards.md). explain walks the
// same list, so the order lives here only.
func (g *Gateway) newSteps() []step {
	return []step{
		{name: "limits", run: g.limits},
		{name: "allow_ips", run: g.allowIPs},
		{name: "resource_policy", run: g.resourcePolicy},
		{name: "authorizer", run: g.authorize},
		{name: "api_key", run: g.apiKey},
		{name: "throttle", run: g.throttle, note: g.throttleNote},
		{name: "quota", run: g.quota, note: g.quotaNote},
		{name: "concurrency", run: g.concurrency, note: g.concurrencyNote},
		{name: "body", run: g.readBody},
		{name: "signature", run: g.signature},
		{name: "match", run: g.matchRoute},
	}
}

// storeFailed is a step's answer to the one store error of steps 4-6
// (counted once, by admission): 503, failing closed, unless state.on_error
// is open and the step is a throttle or a max_concurrent, which then lets
// the request pass (with no lease: nothing to release). A quota always
// fails closed: an unreachable counter must not grant unmetered use.
func (g *Gateway) storeFailed(c *call, err error, throttleOnly bool) verdict {
	c.cause = err
	c.rule = "state store"
	if throttleOnly && g.failOpen {
		return allowed
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
	if g.policy.ReadsHeaders() {
		if v := r.Header["User-Agent"]; len(v) > 0 {
			pr.UserAgent = v[0]
		}
		if v := r.Header["Referer"]; len(v) > 0 {
			pr.Referer = v[0]
		}
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

// admission is steps 4-6's one result: the request's store.AdmitRequest
// and what the store answered, made by the first of the three steps that
// runs. Each step then reads its own stage from it, so the steps, their
// order and their replies do not depend on the driver (one script on
// redis, the separate calls on the embedded drivers) nor on the mode
// (explain reads through store.Peek what serving does through
// store.Admit). It lives in the call: no allocation.
type admission struct {
	made    bool
	req     store.AdmitRequest
	res     store.AdmitResult
	err     error          // counted once in storeErrors
	peek    *store.Preview // explain: the state store.Peek read
	buckets [4]store.Bucket
}

// admit makes the request's one store call, once: store.Admit when
// serving, store.Peek in explain, which reads state and consumes none.
// The levels a token is taken from are account, route or stage default,
// the key's plan, the plan's override for this method; the caps (the
// stage's and the route's max_concurrent) are the route's, made at Build.
func (g *Gateway) admit(c *call, now time.Time) *admission {
	a := &c.adm
	if a.made {
		return a
	}
	a.made = true
	bs := a.buckets[:0]
	if g.hasAccount {
		bs = append(bs, g.account)
	}
	gd := &c.route.guards
	if gd.hasBucket {
		bs = append(bs, gd.bucket)
	}
	a.req = store.AdmitRequest{N: 1, LeaseTTL: gd.leaseTTL}
	if k := c.key; k != nil {
		if k.plan.throttle != nil {
			bs = append(bs, k.bucket)
		}
		if len(k.methods) > 0 {
			if b, ok := k.methods[methodKey{c.route, c.r.Method}]; ok {
				bs = append(bs, b)
			}
		}
		if k.plan.quota != nil {
			a.req.QuotaKey, a.req.Quota = k.quotaKey, k.plan.quota.At(now)
		}
	}
	a.req.Buckets, a.req.Caps = bs, gd.caps
	if c.probe {
		g.probeAdmit(c, a, now)
		return a
	}
	if c.dry {
		p, err := store.Peek(c.r.Context(), g.store, now, a.req)
		a.res, a.err, a.peek = p.AdmitResult, err, &p
	} else {
		a.res, a.err = store.Admit(c.r.Context(), g.store, now, a.req)
	}
	if a.err != nil {
		g.storeErrors.Inc()
	}
	return a
}

// probeAdmit is admit for Early. Only a throttle's refusal is decided
// without serving: a refused Take takes nothing, so store.Peek's refusal
// is the one Admit would give at the same instant. An admitted request,
// or a quota or max_concurrent refusal (which follow taken tokens), is
// left undecided, as is any store that is not in this process: reading
// it first would add a round trip to every request it lets on.
func (g *Gateway) probeAdmit(c *call, a *admission, now time.Time) {
	if a.req.Empty() {
		a.res = store.AdmitResult{Take: store.TakeResult{OK: true, Denied: -1}, Denied: -1}
		return
	}
	if _, local := g.store.(store.Local); !local {
		c.undecided = true
		return
	}
	p, err := store.Peek(c.r.Context(), g.store, now, a.req)
	if err != nil || p.Refused != store.Throttled {
		c.undecided = true
		return
	}
	a.res = p.AdmitResult
}

// throttle is step 4: one token from every level the request is subject
// to, all or none.
func (g *Gateway) throttle(c *call, now time.Time) verdict {
	a := g.admit(c, now)
	switch {
	case len(a.req.Buckets) == 0:
		return skipped
	case a.err != nil:
		return g.storeFailed(c, a.err, true)
	case a.res.Take.OK:
		return allowed
	}
	c.rule = a.req.Buckets[a.res.Take.Denied].Key
	c.retryAfter = int(throttle.RetryAfterSeconds(a.res.Take.RetryAfter))
	return deny(throttled)
}

// quota is step 5: one request counted against the key's plan quota for
// the current UTC calendar period. A refused request is not counted.
func (g *Gateway) quota(c *call, now time.Time) verdict {
	a := g.admit(c, now)
	switch {
	case a.req.QuotaKey == "":
		return skipped
	case a.err != nil:
		return g.storeFailed(c, a.err, false)
	case a.res.Refused != store.OverQuota:
		return allowed
	}
	c.rule = a.req.QuotaKey
	// Seconds until the period resets: when a retry can succeed.
	c.retryAfter = int(throttle.RetryAfterSeconds(c.key.plan.quota.ResetAt(now).Sub(now)))
	return deny(quotaExceeded)
}

// concurrency is step 6: a lease on the stage's and the route's
// max_concurrent, all or none. The leases are released by ServeHTTP's
// deferred release however the request ends (answered, failed, panicked).
func (g *Gateway) concurrency(c *call, now time.Time) verdict {
	a := g.admit(c, now)
	switch {
	case len(a.req.Caps) == 0:
		return skipped
	case a.err != nil:
		return g.storeFailed(c, a.err, true)
	case a.res.Refused != store.OverConcurrency:
		return allowed
	}
	c.rule = a.req.Caps[a.res.Denied].Key
	c.cause = errConcurrency
	// A slot frees when some request ends: no better estimate than the
	// smallest Retry-After.
	c.retryAfter = 1
	return deny(throttled)
}

// throttleNote is step 4's explain line: the tokens store.Peek read in
// every bucket, and the one that refuses.
func (g *Gateway) throttleNote(c *call, _ time.Time) string {
	a := &c.adm
	switch {
	case len(a.req.Buckets) == 0:
		return "no throttle applies"
	case a.err != nil:
		return g.storeFailedNote(a.err, true)
	}
	notes := make([]string, len(a.req.Buckets))
	for i, b := range a.req.Buckets {
		notes[i] = fmt.Sprintf("%s: %.1f tokens", bucketText(b), a.peek.Tokens[i])
	}
	note := strings.Join(notes, "; ")
	if !a.res.Take.OK {
		note = "over " + bucketText(a.req.Buckets[a.res.Take.Denied]) + "; " + note
	}
	return note
}

// quotaNote is step 5's explain line: the key's counter as it stands.
func (g *Gateway) quotaNote(c *call, now time.Time) string {
	a := &c.adm
	switch {
	case a.req.QuotaKey == "":
		return "no usage-plan quota applies"
	case a.err != nil:
		return g.storeFailedNote(a.err, false)
	}
	k, q, res := c.key, c.key.plan.quota, a.res.Quota
	return fmt.Sprintf("plan %q quota %d/%s: %d used, %d remaining, resets %s", k.plan.name, q.Limit, q.Unit, res.Used, res.Remaining(), q.ResetAt(now).Format(time.RFC3339))
}

// concurrencyNote is step 6's explain line: the leases every cap holds, up
// to the one that is full.
func (g *Gateway) concurrencyNote(c *call, _ time.Time) string {
	a := &c.adm
	switch {
	case len(a.req.Caps) == 0:
		return "no max_concurrent"
	case a.err != nil:
		return g.storeFailedNote(a.err, true)
	}
	read := len(a.req.Caps)
	if a.res.Refused == store.OverConcurrency {
		read = a.res.Denied + 1
	}
	notes := make([]string, read)
	for i, cp := range a.req.Caps[:read] {
		notes[i] = fmt.Sprintf("%s: %d of %d in flight", cp.Key, a.peek.InUse[i], cp.Max)
	}
	return strings.Join(notes, "; ")
}

// storeFailedNote explains storeFailed's answer.
func (g *Gateway) storeFailedNote(err error, throttleOnly bool) string {
	if throttleOnly && g.failOpen {
		return fmt.Sprintf("state store failed (%v); state.on_error: open lets it pass", err)
	}
	return fmt.Sprintf("state store failed: %v", err)
}

// release gives back the request's concurrency leases: those an admitted
// request holds, and any a refused one's store could not give back.
// Releasing the zero Lease is a no-op. The request's context may be
// cancelled by now (the client went away): the release must happen all
// the same, so it runs under a context of its own.
func (g *Gateway) release(c *call) {
	for _, l := range c.adm.res.Leases {
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
	if c.probe {
		c.undecided = true // a webhook's refusal is not decided early
		return allowed
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
