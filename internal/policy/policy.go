// Package policy compiles an API Gateway resource policy (an IAM policy
// document) into a matcher and evaluates requests against it the way API
// Gateway does for an API without another authorizer: an explicit Deny
// wins, otherwise an explicit Allow is required, otherwise the request is
// implicitly denied (IAM's policy evaluation logic).
//
// The document is parsed once by Compile; Evaluate does no parsing and no
// allocation, so the blog's two-statement policy costs tens of nanoseconds
// per request.
//
// Supported, and everything else is a compile error naming it (a policy
// drawbridge cannot evaluate must not be half-enforced):
//
//   - Version "2012-10-17" or "2008-10-17" (or absent), Id, Statement as
//     an object or an array.
//   - Sid, Effect Allow|Deny, Principal "*" or {"AWS": "*"}: drawbridge has
//     no IAM callers, so any other principal (and NotPrincipal) is refused
//     at compile time rather than silently never matching.
//   - Action / NotAction: execute-api actions (Invoke, InvalidateCache,
//     ManageConnections), "*" and wildcards, matched case-insensitively as
//     IAM does. Only execute-api:Invoke is ever evaluated; a statement that
//     does not cover it is inert.
//   - Resource / NotResource: "*", the short form
//     execute-api:/STAGE/METHOD/PATH and the full ARN
//     arn:PARTITION:execute-api:REGION:ACCOUNT:API-ID/STAGE/METHOD/PATH,
//     with IAM wildcards ('*' matches across '/', '?' one character).
//   - Condition operators IpAddress, NotIpAddress (aws:SourceIp), the six
//     String operators (aws:UserAgent, aws:Referer), the six Date operators
//     (aws:CurrentTime), Bool (aws:SecureTransport), Null (any of these
//     keys), each with an optional IfExists suffix. Operators AND together,
//     keys within an operator AND together, values of one key OR together
//     (a negated operator is true when no value matches).
//
// A condition key the request lacks (unknown client IP, no User-Agent or
// Referer, zero Now) makes a positive operator false and a negated one
// (NotIpAddress, StringNotEquals, StringNotEqualsIgnoreCase, StringNotLike,
// DateNotEquals) true, as IAM documents; with IfExists the condition is true.
// So the blog's "Deny unless NotIpAddress GitHub" hits a client whose
// address is unknown, and the request ends explicitly denied.
package policy

import (
	"net/netip"
	"strings"
	"time"
)

// Identity names the API a policy protects, for full ARN resources and for
// the ARN printed in denial bodies. An empty field is unknown: a full ARN
// resource is then assumed to name this API in that component (its region,
// account or API id is not checked), because drawbridge is the only API
// the policy can be about. The short form execute-api:/... never depends
// on it.
type Identity struct {
	Region  string // e.g. "eu-west-1"
	Account string // 12-digit account id
	APIID   string // API Gateway rest-api id
}

// Request is what a policy can see of one request. Fields left zero are
// absent condition keys.
type Request struct {
	Stage  string // the config's stage, e.g. "prod"
	Method string // HTTP method as received, e.g. "POST"
	// Path is the resource path, beginning with "/" ("/forward"); the
	// resource matched is STAGE/METHOD/PATH-without-its-leading-slash.
	Path string
	// SourceIP is the resolved client address (aws:SourceIp). The zero
	// Addr means unknown: IpAddress never matches it, NotIpAddress does.
	// It is unmapped and stripped of any zone before use.
	SourceIP netip.Addr
	// UserAgent and Referer are the request headers (aws:UserAgent,
	// aws:Referer); empty means the header is absent.
	UserAgent string
	Referer   string
	// Now is aws:CurrentTime; the zero time means absent.
	Now time.Time
	// Secure is aws:SecureTransport: the client reached drawbridge over TLS.
	Secure bool
}

// Effect is the outcome of an evaluation.
type Effect uint8

const (
	// ImplicitDeny: no statement allowed the request (and none denied it).
	ImplicitDeny Effect = iota
	// Allow: at least one Allow statement matched and no Deny did.
	Allow
	// ExplicitDeny: a Deny statement matched; it beats every Allow.
	ExplicitDeny
)

func (e Effect) String() string {
	switch e {
	case Allow:
		return "allow"
	case ExplicitDeny:
		return "explicit deny"
	default:
		return "implicit deny"
	}
}

// Decision is the verdict on one request and the statement that decided
// it, for explain and logs.
type Decision struct {
	Effect Effect
	// Statement is the 0-based index of the deciding statement in the
	// document's Statement list (0 when Statement is a single object), or
	// -1 for an implicit deny and for a nil Policy.
	Statement int
	// Sid is the deciding statement's Sid, possibly empty.
	Sid string
}

// Allowed reports whether the request may proceed.
func (d Decision) Allowed() bool { return d.Effect == Allow }

// Explicit reports whether a Deny statement decided, which selects the
// " with an explicit deny" form of the 403 body.
func (d Decision) Explicit() bool { return d.Effect == ExplicitDeny }

// String describes the decision for explain: "allow by statement 1",
// `explicit deny by statement 0 (Sid "DenyOthers")`, "implicit deny: no
// statement allows".
func (d Decision) String() string {
	if d.Statement < 0 {
		if d.Effect == Allow {
			return "allow: no resource policy"
		}
		return "implicit deny: no statement allows"
	}
	s := d.Effect.String() + " by statement " + itoa(d.Statement)
	if d.Sid != "" {
		s += " (Sid " + quote(d.Sid) + ")"
	}
	return s
}

// Policy is a compiled resource policy. It is immutable and safe for
// concurrent use. A nil *Policy means no resource policy: every request is
// allowed, as on an API without one.
type Policy struct {
	denies  []statement
	allows  []statement
	count   int
	headers bool // some statement in force has an aws:UserAgent or aws:Referer condition
}

// ReadsHeaders reports whether Evaluate looks at Request.UserAgent or
// Request.Referer: when it does not, a caller need not look the headers
// up for every request.
func (p *Policy) ReadsHeaders() bool { return p != nil && p.headers }

// statement is one compiled statement that can apply to execute-api:Invoke.
type statement struct {
	index int
	sid   string
	// resources are glob patterns over "STAGE/METHOD/PATH" (no leading
	// slash on PATH); allResources short-cuts "*".
	resources    []pattern
	allResources bool
	notResource  bool
	conds        []condition
}

// Evaluate decides r. It does not allocate unless STAGE/METHOD/PATH is
// longer than 256 bytes.
func (p *Policy) Evaluate(r *Request) Decision {
	if p == nil {
		return Decision{Effect: Allow, Statement: -1}
	}
	var buf [256]byte
	tail := appendTail(buf[:0], r.Stage, r.Method, r.Path)
	ctx := evalContext{req: r, ip: r.SourceIP.Unmap().WithZone("")}
	for i := range p.denies {
		if st := &p.denies[i]; st.resourceMatches(tail) && st.condsHold(&ctx) {
			return Decision{Effect: ExplicitDeny, Statement: st.index, Sid: st.sid}
		}
	}
	for i := range p.allows {
		if st := &p.allows[i]; st.resourceMatches(tail) && st.condsHold(&ctx) {
			return Decision{Effect: Allow, Statement: st.index, Sid: st.sid}
		}
	}
	return Decision{Effect: ImplicitDeny, Statement: -1}
}

// appendTail appends the resource ARN's tail, STAGE/METHOD/PATH, with no
// leading slash on PATH.
func appendTail(b []byte, stage, method, path string) []byte {
	b = append(b, stage...)
	b = append(b, '/')
	b = append(b, method...)
	b = append(b, '/')
	return append(b, strings.TrimPrefix(path, "/")...)
}

// Bound is a policy with the resource already matched: the statements
// whose Resource (or NotResource) admits one STAGE/METHOD/PATH, in order.
// A route with a fixed path binds once per method when the config is
// built, and each request then costs its conditions only, not the
// wildcard matching. A nil *Bound allows everything, as a nil *Policy.
type Bound struct {
	denies, allows []*statement
}

// Bind matches the resources of p against stage, method and path once.
func (p *Policy) Bind(stage, method, path string) *Bound {
	if p == nil {
		return nil
	}
	tail := appendTail(nil, stage, method, path)
	b := &Bound{denies: []*statement{}, allows: []*statement{}}
	for i := range p.denies {
		if st := &p.denies[i]; st.resourceMatches(tail) {
			b.denies = append(b.denies, st)
		}
	}
	for i := range p.allows {
		if st := &p.allows[i]; st.resourceMatches(tail) {
			b.allows = append(b.allows, st)
		}
	}
	return b
}

// Evaluate decides r, whose stage, method and path must be those b was
// bound to: the decision is then p.Evaluate(r)'s (FuzzCompile). It does
// not allocate.
func (b *Bound) Evaluate(r *Request) Decision {
	if b == nil {
		return Decision{Effect: Allow, Statement: -1}
	}
	ctx := evalContext{req: r, ip: r.SourceIP.Unmap().WithZone("")}
	for _, st := range b.denies {
		if st.condsHold(&ctx) {
			return Decision{Effect: ExplicitDeny, Statement: st.index, Sid: st.sid}
		}
	}
	for _, st := range b.allows {
		if st.condsHold(&ctx) {
			return Decision{Effect: Allow, Statement: st.index, Sid: st.sid}
		}
	}
	return Decision{Effect: ImplicitDeny, Statement: -1}
}

// Statements is the number of statements in the document, including inert
// ones.
func (p *Policy) Statements() int {
	if p == nil {
		return 0
	}
	return p.count
}

type evalContext struct {
	req *Request
	ip  netip.Addr
}

// resourceMatches reports whether st's Resource (or NotResource) admits
// the resource tail.
func (st *statement) resourceMatches(tail []byte) bool {
	if st.allResources {
		return !st.notResource
	}
	hit := false
	for i := range st.resources {
		if st.resources[i].match(tail) {
			hit = true
			break
		}
	}
	return hit != st.notResource
}

// condsHold reports whether every condition of st holds for the request.
func (st *statement) condsHold(ctx *evalContext) bool {
	for i := range st.conds {
		if !st.conds[i].eval(ctx) {
			return false
		}
	}
	return true
}
