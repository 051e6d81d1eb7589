package gateway

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/metrics"
)

// reason is why the gateway answers instead of the target.
type reason uint8

const (
	pass reason = iota
	noRoute
	badRequest
	headersTooLarge
	policyDenied
	keyRejected
	signatureRejected
	throttled
	quotaExceeded
	tooLarge
	unavailable
	egressDenied
	upstreamError
	upstreamTimeout
	agentUnavailable
	unauthorized     // an authorizer: no or bad credential
	forbidden        // an authorizer: insufficient scope, or its deny
	authorizerFailed // an authorizer that could not decide, on_error 500
	filtered         // verified, but no route's match holds: 202, nothing delivered
	numReasons
)

// reply is a ready-made error answer. Bodies are fixed bytes built once:
// users match on them, as on API Gateway's
// (docs/design.md#answers-and-outcomes), so they are frozen here and
// tested byte for byte.
type reply struct {
	status    int
	body      []byte
	errorType []string // x-amzn-ErrorType (REST only; HTTP APIs send none)
	outcome   metrics.Outcome
}

func newReply(status int, body, errorType string, o metrics.Outcome) reply {
	return reply{status: status, body: []byte(body), errorType: []string{errorType}, outcome: o}
}

// replies builds the table for one API flavour (rest or http).
func replies(api config.API) [numReasons]reply {
	var t [numReasons]reply
	t[noRoute] = newReply(403, `{"message":"Missing Authentication Token"}`, "MissingAuthenticationTokenException", metrics.NoRoute)
	if api == config.APIHTTP {
		// No error type: HTTP APIs send no x-amzn-ErrorType, so there is
		// no AWS name for this one to copy.
		t[noRoute] = newReply(404, `{"message":"Not Found"}`, "", metrics.NoRoute)
	}
	t[badRequest] = newReply(400, `{"message":"Bad Request"}`, "BadRequestException", metrics.BadRequest)
	t[headersTooLarge] = newReply(431, `{"message":"Request Header Fields Too Large"}`, "BadRequestException", metrics.TooLarge)
	t[policyDenied] = newReply(403, `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke"}`, "AccessDeniedException", metrics.PolicyDenied)
	t[keyRejected] = newReply(403, `{"message":"Forbidden"}`, "ForbiddenException", metrics.KeyRejected)
	t[signatureRejected] = newReply(401, `{"message":"Unauthorized"}`, "UnauthorizedException", metrics.SignatureRejected)
	t[throttled] = newReply(429, `{"message":"Too Many Requests"}`, "TooManyRequestsException", metrics.Throttled)
	t[quotaExceeded] = newReply(429, `{"message":"Limit Exceeded"}`, "LimitExceededException", metrics.QuotaExceeded)
	t[tooLarge] = newReply(413, `{"message":"Request Too Long"}`, "RequestEntityTooLargeException", metrics.TooLarge)
	t[unavailable] = newReply(503, `{"message":"Service Unavailable"}`, "ServiceUnavailableException", metrics.Unavailable)
	t[egressDenied] = newReply(502, `{"message":"Bad Gateway"}`, "InternalServerErrorException", metrics.EgressDenied)
	t[upstreamError] = newReply(502, `{"message":"Bad Gateway"}`, "InternalServerErrorException", metrics.UpstreamError)
	t[agentUnavailable] = newReply(502, `{"message":"Bad Gateway"}`, "InternalServerErrorException", metrics.AgentUnavailable)
	t[upstreamTimeout] = newReply(504, `{"message":"Endpoint request timed out"}`, "InternalServerErrorException", metrics.UpstreamTimeout)
	t[unauthorized] = newReply(401, `{"message":"Unauthorized"}`, "UnauthorizedException", metrics.Unauthorized)
	t[forbidden] = newReply(403, `{"message":"Forbidden"}`, "AccessDeniedException", metrics.Forbidden)
	t[authorizerFailed] = newReply(500, `{"message":"Internal Server Error"}`, "AuthorizerConfigurationException", metrics.AuthorizerError)
	if api != config.APIHTTP {
		// REST's spelling of the same answer (docs/authorizers.md).
		t[authorizerFailed] = newReply(500, `{"message":"Internal server error"}`, "AuthorizerConfigurationException", metrics.AuthorizerError)
	}
	// Not an error: 202 so that the provider does not retry, and no
	// x-amzn-ErrorType (docs/delivery.md#routing-on-the-event).
	t[filtered] = reply{status: 202, body: []byte(`{"message":"Filtered"}`), outcome: metrics.Filtered}
	return t
}

// chunkingThreshold is net/http's bufferBeforeChunkingSize: an answer
// whose handler sets no Content-Length and writes more goes out chunked.
const chunkingThreshold = 2048

var (
	jsonType   = []string{"application/json"}
	closeHdr   = []string{"close"}
	zeroLength = []string{"0"}
)

// render writes one error answer. Header keys are set as API Gateway
// spells them (x-amzn-RequestId), bypassing canonicalisation. REST errors
// carry x-amzn-RequestId, x-amz-apigw-id and x-amzn-ErrorType; HTTP API
// errors only apigw-requestid, as AWS sends them.
func (g *Gateway) render(c *call, rp *reply) {
	h := c.w.Header()
	h["Content-Type"] = jsonType
	h["Date"] = dateOf(c.start)
	switch {
	case c.r.Method == http.MethodHead:
		// A HEAD answer has no body, and API Gateway says so:
		// Content-Length: 0.
		h["Content-Length"] = zeroLength
	case len(rp.body) > chunkingThreshold:
		// A body over net/http's buffer would go out chunked (a policy
		// denial naming a long path); API Gateway sends its length, and
		// so the early path's answer (edge.Early) is the same bytes.
		h["Content-Length"] = []string{strconv.Itoa(len(rp.body))}
	}
	// Otherwise net/http counts the body it holds whole and sets
	// Content-Length itself, more cheaply than a map entry.
	g.idHeaders(h, c)
	if g.api != config.APIHTTP && rp.errorType != nil {
		h["x-amzn-ErrorType"] = rp.errorType
	}
	if c.retryAfter > 0 {
		h["Retry-After"] = retryAfterHdr(c.retryAfter)
	}
	if !c.bodyDone && hasBody(c.r) {
		// The body was not read: close the connection instead of letting
		// net/http drain (or wait for) it, and stop reading now, so a slow
		// or 100-continue client cannot hold the socket
		// (docs/hardening.md#bodies-are-read-whole-before-dispatch).
		h["Connection"] = closeHdr
		http.NewResponseController(c.w).SetReadDeadline(aLongTimeAgo)
	}
	c.w.WriteHeader(rp.status)
	if c.r.Method != http.MethodHead {
		c.w.Write(rp.body)
	}
	c.status = rp.status
	c.outcome = rp.outcome
}

// retryHdrs holds the Retry-After values up to an hour, each made the
// first time it is needed and shared after: a throttled flood's 429s
// then allocate nothing for it. Longer waits (quotas' resets) allocate.
var retryHdrs [3601]atomic.Pointer[[]string]

func retryAfterHdr(s int) []string {
	if s >= len(retryHdrs) {
		return []string{strconv.Itoa(s)}
	}
	if v := retryHdrs[s].Load(); v != nil {
		return *v
	}
	v := []string{strconv.Itoa(s)}
	retryHdrs[s].Store(&v)
	return v
}

// date is the Date header of one second, shared by every answer in it.
type date struct {
	sec   int64
	value []string
}

var lastDate atomic.Pointer[date]

// dateOf returns the Date header value for t. net/http formats one per
// answer unless the handler set it (≈ 1.9k instructions, a tenth of a
// rejection's cost); the header has one-second resolution, so one string
// per second serves them all.
func dateOf(t time.Time) []string {
	sec := t.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return d.value
	}
	d := &date{sec: sec, value: []string{t.UTC().Format(http.TimeFormat)}}
	lastDate.Store(d)
	return d.value
}

func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
}
