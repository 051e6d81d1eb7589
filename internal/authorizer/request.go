package authorizer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

// maxAnswerBytes bounds a request authorizer's answer; a policy document
// with its context is far smaller.
const maxAnswerBytes = 64 << 10

// maxCached bounds a request authorizer's result cache; when full,
// expired entries go, and if none has expired the cache starts over: a
// flood of distinct identities costs authorizer calls, never memory.
const maxCached = 10_000

// source is one identity source, compiled.
type source struct {
	text, kind, name string
}

// RequestAuthorizer is a compiled request authorizer: it POSTs an API
// Gateway authorizer event to a URL and reads a Lambda authorizer's
// answer (docs/authorizers.md).
type RequestAuthorizer struct {
	url     string
	client  *http.Client
	timeout time.Duration
	ttl     time.Duration
	sources []source
	onError int
	deps    Deps

	mu      sync.Mutex
	cache   map[string]cached
	flights map[string]*flight
}

type cached struct {
	ans     *answer
	expires time.Time
}

// flight is one call in progress that requests with the same identity
// wait for, so a burst of them costs one call.
type flight struct {
	done chan struct{}
	ans  *answer
	err  error
}

// NewRequest compiles a (validated) request authorizer.
func NewRequest(a *config.Authorizer, client *http.Client, deps Deps) (*RequestAuthorizer, error) {
	ra := &RequestAuthorizer{url: a.URL, client: client, timeout: time.Duration(a.Timeout), ttl: a.CacheTTL(),
		onError: a.OnError, deps: deps, cache: map[string]cached{}, flights: map[string]*flight{}}
	for _, s := range a.IdentitySources {
		kind, name, ok := config.ParseIdentitySource(s)
		if !ok {
			return nil, fmt.Errorf("identity source %q", s)
		}
		if kind == "header" {
			name = http.CanonicalHeaderKey(name)
		}
		ra.sources = append(ra.sources, source{text: s, kind: kind, name: name})
	}
	return ra, nil
}

// Kind implements Authorizer.
func (a *RequestAuthorizer) Kind() string { return "request" }

// Close implements Authorizer.
func (a *RequestAuthorizer) Close() { a.client.CloseIdleConnections() }

// OnError is the status of an authorizer that cannot decide (500 or 503).
func (a *RequestAuthorizer) OnError() int { return a.onError }

// Authorize implements Authorizer. Every identity source must have a
// value, else 401 without a call (as API Gateway). A cached result for the
// same identity is used until its TTL; a policy answer is evaluated
// against each request's own ARN, as API Gateway evaluates a cached
// policy.
func (a *RequestAuthorizer) Authorize(rq Request) Decision {
	q := &rq
	ids := make([]string, len(a.sources))
	for i, s := range a.sources {
		v := s.value(q)
		if v == "" {
			return Decision{Outcome: Unauthorized, Reason: "identity source " + s.text + " is missing"}
		}
		ids[i] = v
	}
	ans, cachedHit, err := a.answer(q, ids)
	if err != nil {
		return Decision{Outcome: Failed, Reason: "authorizer " + a.url + ": " + err.Error()}
	}
	d := ans.decide(q.MethodARN)
	d.Cached = cachedHit
	if d.Outcome == Allow && len(q.Route.Headers) > 0 {
		for _, w := range q.Route.Headers {
			if v, ok := ans.context[w.From]; ok {
				d.Headers = append(d.Headers, Header{Name: w.Header, Value: v})
			}
		}
	}
	return d
}

// value reads an identity source from the request.
func (s *source) value(q *Request) string {
	switch s.kind {
	case "header":
		return strings.Join(q.R.Header[s.name], ",")
	case "query":
		return q.R.URL.Query().Get(s.name)
	case "sourceip":
		if q.Client.IsValid() {
			return q.Client.String()
		}
	case "method":
		return q.R.Method
	case "path":
		return q.R.URL.Path
	}
	return ""
}

// answer returns the authorizer's answer for the identity ids: cached,
// from a call in flight for the same identity, or from a new call.
func (a *RequestAuthorizer) answer(q *Request, ids []string) (*answer, bool, error) {
	if a.ttl <= 0 || len(ids) == 0 {
		ans, err := a.call(q)
		return ans, false, err
	}
	key := cacheKey(ids)
	a.mu.Lock()
	if c, ok := a.cache[key]; ok && q.Now.Before(c.expires) {
		a.mu.Unlock()
		return c.ans, true, nil
	}
	if f := a.flights[key]; f != nil {
		a.mu.Unlock()
		<-f.done
		return f.ans, true, f.err
	}
	f := &flight{done: make(chan struct{})}
	a.flights[key] = f
	a.mu.Unlock()

	f.ans, f.err = a.call(q)
	a.mu.Lock()
	delete(a.flights, key)
	if f.err == nil {
		if len(a.cache) >= maxCached {
			for k, c := range a.cache {
				if !q.Now.Before(c.expires) {
					delete(a.cache, k)
				}
			}
			if len(a.cache) >= maxCached {
				clear(a.cache)
			}
		}
		a.cache[key] = cached{ans: f.ans, expires: q.Now.Add(a.ttl)}
	}
	a.mu.Unlock()
	close(f.done)
	return f.ans, false, f.err
}

// cacheKey joins identity values with their lengths, so no two
// identities share a key whatever their values hold (a query parameter
// may carry any byte, a separator included).
func cacheKey(ids []string) string {
	var b strings.Builder
	for _, v := range ids {
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	return b.String()
}

// errStatus is an authorizer answer with a status drawbridge does not
// read as a decision.
type errStatus int

func (e errStatus) Error() string { return "status " + strconv.Itoa(int(e)) }

// call POSTs the event and decodes the answer. A 401 or 403 status is a
// decision (forward-auth services answer so); any other status but 200 is
// a failure.
func (a *RequestAuthorizer) call(q *Request) (*answer, error) {
	ev, err := a.event(q)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(q.R.Context()), a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(ev))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", q.ID)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return &answer{status: Unauthorized}, nil
	case http.StatusForbidden:
		return &answer{status: Forbidden}, nil
	default:
		return nil, errStatus(resp.StatusCode)
	}
	b, err := readLimited(resp.Body, maxAnswerBytes)
	if err != nil {
		return nil, err
	}
	return DecodeAnswer(b)
}

// event builds the authorizer event of the API flavour: HTTP API's
// payload 2.0 REQUEST event, or REST's REQUEST authorizer event.
func (a *RequestAuthorizer) event(q *Request) ([]byte, error) {
	r := q.R
	ids := make([]string, 0, len(a.sources))
	for _, s := range a.sources {
		ids = append(ids, s.value(q))
	}
	qs := map[string]string{}
	mq := map[string][]string{}
	for k, vs := range r.URL.Query() {
		qs[k] = strings.Join(vs, ",")
		mq[k] = vs
	}
	ip := ""
	if q.Client.IsValid() {
		ip = q.Client.String()
	}
	d := a.deps
	if d.API == config.APIHTTP {
		hs := map[string]string{}
		var cookies []string
		for k, vs := range r.Header {
			if k == "Cookie" {
				for _, v := range vs {
					for c := range strings.SplitSeq(v, ";") {
						if c = strings.TrimSpace(c); c != "" {
							cookies = append(cookies, c)
						}
					}
				}
				continue
			}
			hs[strings.ToLower(k)] = strings.Join(vs, ",")
		}
		routeKey := r.Method + " " + q.Route.Path
		ev := map[string]any{
			"version": "2.0", "type": "REQUEST", "routeArn": q.MethodARN, "identitySource": ids,
			"routeKey": routeKey, "rawPath": r.URL.EscapedPath(), "rawQueryString": r.URL.RawQuery,
			"headers": hs, "queryStringParameters": qs,
			"requestContext": map[string]any{
				"accountId": d.Account, "apiId": d.APIID, "domainName": r.Host, "requestId": q.ID,
				"routeKey": routeKey, "stage": d.Stage, "time": q.Now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
				"timeEpoch": q.Now.UnixMilli(),
				"http": map[string]any{"method": r.Method, "path": r.URL.Path, "protocol": r.Proto,
					"sourceIp": ip, "userAgent": r.UserAgent()},
			},
		}
		if len(cookies) > 0 {
			ev["cookies"] = cookies
		}
		return json.Marshal(ev)
	}
	hs := map[string]string{}
	mh := map[string][]string{}
	for k, vs := range r.Header {
		hs[k] = vs[len(vs)-1]
		mh[k] = vs
	}
	return json.Marshal(map[string]any{
		"type": "REQUEST", "methodArn": q.MethodARN, "resource": q.Route.Path, "path": r.URL.Path,
		"httpMethod": r.Method, "headers": hs, "multiValueHeaders": mh,
		"queryStringParameters": qs, "multiValueQueryStringParameters": mq,
		"requestContext": map[string]any{
			"accountId": d.Account, "apiId": d.APIID, "stage": d.Stage, "requestId": q.ID,
			"resourcePath": q.Route.Path, "httpMethod": r.Method, "path": "/" + d.Stage + r.URL.Path,
			"identity": map[string]any{"sourceIp": ip, "userAgent": r.UserAgent()},
		},
	})
}

// answer is a decoded authorizer answer.
type answer struct {
	status     Outcome // set for a 401/403 status answer: the decision itself
	simple     bool    // {"isAuthorized": ...}
	authorized bool
	policy     []statement // the IAM-policy form
	principal  string
	context    map[string]string
}

// statement is one statement of an authorizer's policy, reduced to what
// decides execute-api:Invoke.
type statement struct {
	allow     bool
	invoke    bool // Action covers execute-api:Invoke
	resources []string
}

// DecodeAnswer reads a Lambda authorizer's answer: the payload 2.0
// simple form {"isAuthorized": bool, "context": {...}} or the IAM-policy
// form {"principalId": ..., "policyDocument": {...}, "context": {...}}.
// Context values must be strings, numbers or booleans (as API Gateway
// requires); they become their text.
func DecodeAnswer(b []byte) (*answer, error) {
	var raw struct {
		IsAuthorized   *bool                      `json:"isAuthorized"`
		PrincipalID    string                     `json:"principalId"`
		PolicyDocument *json.RawMessage           `json:"policyDocument"`
		Context        map[string]json.RawMessage `json:"context"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("answer is not JSON: %v", err)
	}
	a := &answer{principal: raw.PrincipalID, status: Allow}
	switch {
	case raw.IsAuthorized != nil:
		a.simple, a.authorized = true, *raw.IsAuthorized
	case raw.PolicyDocument != nil:
		st, err := decodePolicy(*raw.PolicyDocument)
		if err != nil {
			return nil, err
		}
		a.policy = st
	default:
		return nil, errors.New("answer has neither isAuthorized nor policyDocument")
	}
	for k, v := range raw.Context {
		v = bytes.TrimSpace(v)
		if len(v) == 0 || v[0] == '{' || v[0] == '[' {
			return nil, fmt.Errorf("context.%s: want a string, number or boolean", k)
		}
		s, ok := headerValue(v)
		if !ok {
			continue // null, or not a header value: not forwarded
		}
		if a.context == nil {
			a.context = map[string]string{}
		}
		a.context[k] = s
	}
	return a, nil
}

// decodePolicy reads an IAM policy document's statements.
func decodePolicy(b []byte) ([]statement, error) {
	var doc struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("policyDocument: %v", err)
	}
	var raws []json.RawMessage
	if s := bytes.TrimSpace(doc.Statement); len(s) > 0 && s[0] == '{' {
		raws = []json.RawMessage{s}
	} else if err := json.Unmarshal(doc.Statement, &raws); err != nil {
		return nil, errors.New("policyDocument.Statement: want a statement or a list")
	}
	out := make([]statement, 0, len(raws))
	for _, r := range raws {
		var s struct {
			Effect   string     `json:"Effect"`
			Action   stringList `json:"Action"`
			Resource stringList `json:"Resource"`
		}
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, fmt.Errorf("policyDocument.Statement: %v", err)
		}
		st := statement{resources: s.Resource}
		switch s.Effect {
		case "Allow":
			st.allow = true
		case "Deny":
		default:
			return nil, fmt.Errorf("policyDocument.Statement: Effect %q", s.Effect)
		}
		for _, act := range s.Action {
			if wildcard(strings.ToLower(act), "execute-api:invoke") {
				st.invoke = true
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// decide turns an answer into a decision for the request's ARN: a deny
// statement that matches wins, then an allow; no match denies.
func (a *answer) decide(arn string) Decision {
	switch {
	case a.status == Unauthorized:
		return Decision{Outcome: Unauthorized, Reason: "authorizer answered 401"}
	case a.status == Forbidden:
		return Decision{Outcome: Forbidden, Reason: "authorizer answered 403"}
	case a.simple && a.authorized:
		return Decision{Outcome: Allow, Reason: "isAuthorized: true"}
	case a.simple:
		return Decision{Outcome: Forbidden, Reason: "isAuthorized: false"}
	}
	allowed := false
	for _, s := range a.policy {
		if !s.invoke || !matchesAny(s.resources, arn) {
			continue
		}
		if !s.allow {
			return Decision{Outcome: Forbidden, Reason: "policy of " + a.principal + " denies " + arn}
		}
		allowed = true
	}
	if allowed {
		return Decision{Outcome: Allow, Reason: "policy of " + a.principal + " allows " + arn}
	}
	return Decision{Outcome: Forbidden, Reason: "policy of " + a.principal + " does not allow " + arn}
}

func matchesAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if wildcard(p, s) {
			return true
		}
	}
	return false
}

// wildcard matches s against an IAM pattern with * (any run) and ? (one
// character), iteratively, so no pattern costs more than len(p)*len(s).
func wildcard(p, s string) bool {
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
