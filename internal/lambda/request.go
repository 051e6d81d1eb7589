package lambda

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// eventError is a malformed or oversize HTTP event: answered in the event's
// own shape with a fixed public body; the cause goes to the log only.
type eventError struct {
	status int
	cause  error
}

func badEvent(format string, args ...any) *eventError {
	return &eventError{status: http.StatusBadRequest, cause: fmt.Errorf(format, args...)}
}

// Bodies as in docs/design.md#answers-and-outcomes, byte for byte, so an error from the adapter cannot
// be told from the same error raised by the gateway.
const (
	bodyBadRequest     = `{"message":"Bad Request"}`
	bodyTooLong        = `{"message":"Request Too Long"}`
	bodyInternalServer = `{"message": "Internal server error"}` // API Gateway's integration-failure text, space included
)

func (e *eventError) response(requestID string) *result {
	body, errType := bodyBadRequest, "BadRequestException"
	if e.status == http.StatusRequestEntityTooLarge {
		body = bodyTooLong // API Gateway labels this one BadRequestException too
	}
	return errorResult(e.status, body, errType, requestID)
}

func errorResult(status int, body, errType, requestID string) *result {
	// API Gateway's own spelling, set directly: the map bypasses
	// canonicalisation, and v1 responses keep names as given.
	h := http.Header{
		"Content-Type":     {"application/json"},
		"x-amzn-ErrorType": {errType},
	}
	if requestID != "" {
		h["x-amzn-RequestId"] = []string{requestID}
	}
	return &result{status: status, header: h, body: []byte(body)}
}

// requestID prefers API Gateway's id (what the client sees in
// x-amzn-RequestId from AWS) and falls back to the invocation's.
func requestID(ctx context.Context, ev *event) string {
	if ev.RequestContext != nil && ev.RequestContext.RequestID != "" {
		return ev.RequestContext.RequestID
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return lc.AwsRequestID
	}
	return ""
}

// request builds the *http.Request net/http's server would have built for the
// same client request: RequestURI, Host and Header as received, the body fully
// read, ContentLength exact.
func (a *Adapter) request(ctx context.Context, ev *event) (*http.Request, *eventError) {
	if ev.typeErr != nil {
		return nil, badEvent("field of wrong type: %w", ev.typeErr)
	}
	var (
		method, rawPath, rawQuery string
		header                    http.Header
		err                       *eventError
	)
	switch ev.kind {
	case KindV1:
		method = ev.HTTPMethod
		if ev.Path == nil {
			return nil, badEvent("v1 event without path")
		}
		rawPath = *ev.Path
		rawQuery = encodeQuery(ev.MultiValueQueryStringParameters, ev.QueryStringParameters, url.QueryEscape)
		header, err = a.v1Header(ev)
	case KindALB:
		method = ev.HTTPMethod
		if ev.Path == nil {
			return nil, badEvent("ALB event without path")
		}
		rawPath = *ev.Path
		// ALB passes query strings as the client sent them, still
		// percent-encoded; escaping again would double-encode.
		rawQuery = encodeQuery(ev.MultiValueQueryStringParameters, ev.QueryStringParameters, escapeIllegal)
		if len(ev.Headers) > 0 && len(ev.MultiValueHeaders) > 0 {
			return nil, badEvent("ALB event with both headers and multiValueHeaders")
		}
		header, err = a.v1Header(ev)
	case KindV2, KindURL:
		rc := ev.RequestContext
		if rc == nil || rc.HTTP == nil {
			return nil, badEvent("v2 event without requestContext.http")
		}
		method = rc.HTTP.Method
		switch {
		case ev.RawPath != nil:
			rawPath = stripStage(*ev.RawPath, rc.Stage)
		case rc.HTTP.Path != "":
			rawPath = stripStage(rc.HTTP.Path, rc.Stage)
		default:
			return nil, badEvent("v2 event without rawPath")
		}
		if ev.RawQueryString != nil {
			rawQuery = escapeIllegal(*ev.RawQueryString)
		} else {
			rawQuery = encodeQuery(nil, ev.QueryStringParameters, url.QueryEscape)
		}
		header, err = a.v2Header(ev)
	}
	if err != nil {
		return nil, err
	}
	if !validToken(method) {
		return nil, badEvent("invalid method %q", method)
	}
	u, perr := requestURL(rawPath, rawQuery)
	if perr != nil {
		return nil, perr
	}

	body, n, berr := a.body(ev)
	if berr != nil {
		return nil, berr
	}

	// As net/http's server does: Host moves out of the header map.
	host := ""
	if hs := header["Host"]; len(hs) > 0 {
		if len(hs) > 1 {
			return nil, badEvent("several Host headers")
		}
		host = hs[0]
		delete(header, "Host")
	} else if ev.RequestContext != nil {
		host = ev.RequestContext.DomainName
	}
	// The body arrives whole: whatever framing the client used was undone by
	// AWS, so only an exact Content-Length describes it now. A leftover
	// Transfer-Encoding next to it would look like request smuggling to the
	// gateway's framing rule.
	delete(header, "Transfer-Encoding")
	if n > 0 || header["Content-Length"] != nil {
		header["Content-Length"] = []string{strconv.Itoa(n)}
	}

	req := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Host:       host,
		RequestURI: u.RequestURI(),
		RemoteAddr: a.remoteAddr(ev),
	}
	if overHTTPS(ev.kind, header) {
		req.TLS = httpsState
	}
	req.ContentLength = int64(n)
	if n == 0 {
		req.Body = http.NoBody
	} else {
		req.Body = io.NopCloser(body)
	}
	return req.WithContext(ctx), nil
}

// httpsState marks a request that reached AWS over HTTPS. The adapter knows
// only that the client used TLS, not how, so the state says nothing more;
// it is what net/http's server would set, and what the gateway and the
// forwarder test (X-Forwarded-Proto, aws:SecureTransport).
var httpsState = &tls.ConnectionState{HandshakeComplete: true}

// overHTTPS reports whether the client reached AWS over HTTPS: always
// through API Gateway (REST and HTTP APIs accept only HTTPS) and Function
// URLs (likewise); through an ALB when its listener is HTTPS, which the ALB
// tells in X-Forwarded-Proto (it sets that header itself, from the
// listener). Local emulators that speak plain HTTP still produce API
// Gateway events; those count as HTTPS too, as in production
// (docs/lambda.md#forwarded-headers).
func overHTTPS(kind Kind, h http.Header) bool {
	switch kind {
	case KindV1, KindV2, KindURL:
		return true
	case KindALB:
		vs := h["X-Forwarded-Proto"]
		return len(vs) > 0 && strings.EqualFold(strings.TrimSpace(vs[len(vs)-1]), "https")
	}
	return false
}

// remoteAddr is "ip:0": the gateway parses RemoteAddr as host:port like any
// TCP peer, and no port is known. An unknown client stays "", never
// 0.0.0.0 and never X-Forwarded-For: an unknown client is denied on
// IP-restricted routes, where 0.0.0.0 could match a wide allow list and
// X-Forwarded-For can be forged (docs/lambda.md#client-address).
func (a *Adapter) remoteAddr(ev *event) string {
	if ev.kind == KindALB {
		if ip, err := netip.ParseAddr(a.opts.ALBPeer); err == nil {
			return netip.AddrPortFrom(ip.Unmap(), 0).String()
		}
		return ""
	}
	if ip := ev.source().ClientIP; ip.IsValid() {
		return netip.AddrPortFrom(ip, 0).String()
	}
	return ""
}

// requestURL keeps the path exactly as the event spelled it (RawPath) next to
// its decoded form, so the gateway's path rules see encoded slashes and
// dot-segments as a server would have.
func requestURL(rawPath, rawQuery string) (*url.URL, *eventError) {
	if !strings.HasPrefix(rawPath, "/") {
		return nil, badEvent("path %q is not absolute", rawPath)
	}
	p, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, badEvent("path: %w", err)
	}
	u := &url.URL{Path: p, RawQuery: rawQuery}
	if p != rawPath {
		u.RawPath = rawPath
	}
	return u, nil
}

// stripStage removes a named stage from a v2 rawPath. HTTP API includes it
// ("/prod/items") for named stages but not for $default, while payload 1.0's
// path never has it; stripping makes routes match the same way in both.
func stripStage(p, stage string) string {
	if stage == "" || stage == "$default" {
		return p
	}
	prefix := "/" + stage
	switch {
	case p == prefix:
		return "/"
	case strings.HasPrefix(p, prefix+"/"):
		return p[len(prefix):]
	}
	return p
}

// encodeQuery rebuilds a query from parameter maps, preferring the
// multi-value map since the single-value one keeps only the last value. Keys
// are sorted: the maps lost the original order, and a stable order keeps
// signatures and caches deterministic.
func encodeQuery(multi map[string][]string, single map[string]string, esc func(string) string) string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(esc(k))
		b.WriteByte('=')
		b.WriteString(esc(v))
	}
	if len(multi) > 0 {
		for _, k := range slices.Sorted(mapKeys(multi)) {
			for _, v := range multi[k] {
				add(k, v)
			}
		}
		return b.String()
	}
	for _, k := range slices.Sorted(mapKeys(single)) {
		add(k, single[k])
	}
	return b.String()
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// escapeIllegal percent-encodes only the bytes that cannot appear in a
// request line's query (controls, space, '#', '"', '<', '>', non-ASCII...),
// leaving existing escapes and delimiters alone: raw queries are forwarded
// byte for byte, but never as something a backend would parse differently.
func escapeIllegal(s string) string {
	const hex = "0123456789ABCDEF"
	clean := true
	for i := 0; i < len(s); i++ {
		if illegalInQuery(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if illegalInQuery(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func illegalInQuery(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '#' || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}'
}

// v1Header builds the header of a v1 or ALB event. multiValueHeaders wins:
// headers keeps only the last value of each name. A name whose single value
// is not among its multiple values means the two forms disagree, which AWS
// never produces; the event is refused rather than guessing which to trust.
func (a *Adapter) v1Header(ev *event) (http.Header, *eventError) {
	h := make(http.Header, max(len(ev.MultiValueHeaders), len(ev.Headers)))
	for k, vs := range ev.MultiValueHeaders {
		if err := checkHeader(k, vs...); err != nil {
			return nil, err
		}
		ck := http.CanonicalHeaderKey(k)
		h[ck] = append(h[ck], vs...)
	}
	multi := len(ev.MultiValueHeaders) > 0
	for k, v := range ev.Headers {
		if err := checkHeader(k, v); err != nil {
			return nil, err
		}
		ck := http.CanonicalHeaderKey(k)
		if !multi {
			h[ck] = append(h[ck], v)
			continue
		}
		if vs := h[ck]; !slices.Contains(vs, v) && strings.Join(vs, ",") != v && strings.Join(vs, ", ") != v {
			return nil, badEvent("headers[%q] disagrees with multiValueHeaders", k)
		}
	}
	for _, name := range a.singleValues {
		if len(h[name]) > 1 {
			return nil, badEvent("%d values for %s", len(h[name]), name)
		}
	}
	return h, nil
}

// v2Header builds the header of a v2 or Function URL event. Duplicates arrive
// comma-joined and stay that way (splitting would break dates and quoted
// values); cookies arrive in their own array and become one Cookie header, as
// an HTTP/1.1 client would have sent them.
func (a *Adapter) v2Header(ev *event) (http.Header, *eventError) {
	h := make(http.Header, len(ev.Headers)+1)
	for k, v := range ev.Headers {
		if err := checkHeader(k, v); err != nil {
			return nil, err
		}
		ck := http.CanonicalHeaderKey(k)
		h[ck] = append(h[ck], v)
	}
	if len(ev.Cookies) > 0 {
		if err := checkHeader("Cookie", ev.Cookies...); err != nil {
			return nil, err
		}
		h["Cookie"] = []string{strings.Join(ev.Cookies, "; ")}
	}
	for _, name := range a.singleValues {
		for _, v := range h[name] {
			if strings.Contains(v, ",") || len(h[name]) > 1 {
				return nil, badEvent("%s holds several values", name)
			}
		}
	}
	return h, nil
}

// checkHeader applies net/http's server rules for field names and values, so
// nothing reaches the handler that a client could not have sent on the wire.
func checkHeader(name string, values ...string) *eventError {
	if !validToken(name) {
		return badEvent("invalid header name %q", name)
	}
	for _, v := range values {
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
				return badEvent("invalid value for header %q", name)
			}
		}
	}
	return nil
}

// validToken reports whether s is an RFC 9110 token (method or field name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

var errTooLong = errors.New("body over the limit")

// body returns the decoded body as a reader and its length. Base64 must be
// standard and padded, as AWS produces it; URL-safe or unpadded input is a
// forged or corrupted event. The limit applies to the decoded size, which is
// what the handler would read. The body is copied once (into the decoded
// buffer) at most, since events approach 6 MB.
func (a *Adapter) body(ev *event) (io.Reader, int, *eventError) {
	if ev.Body == nil || *ev.Body == "" {
		return http.NoBody, 0, nil
	}
	s := *ev.Body
	if !ev.IsBase64Encoded {
		if int64(len(s)) > a.opts.MaxBody {
			return nil, 0, &eventError{status: http.StatusRequestEntityTooLarge, cause: errTooLong}
		}
		return strings.NewReader(s), len(s), nil
	}
	// The streaming decoder below would accept missing padding and skip
	// line breaks; AWS sends neither.
	if len(s)%4 != 0 || strings.ContainsAny(s, "\r\n") {
		return nil, 0, badEvent("body: base64 not padded or has line breaks")
	}
	// DecodedLen over-estimates by at most 2 (padding); anything beyond the
	// limit even then is refused before allocating.
	if int64(base64.StdEncoding.DecodedLen(len(s)))-2 > a.opts.MaxBody {
		return nil, 0, &eventError{status: http.StatusRequestEntityTooLarge, cause: errTooLong}
	}
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := io.ReadFull(base64.NewDecoder(base64.StdEncoding, strings.NewReader(s)), buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, 0, badEvent("body: %w", err)
	}
	if int64(n) > a.opts.MaxBody {
		return nil, 0, &eventError{status: http.StatusRequestEntityTooLarge, cause: errTooLong}
	}
	return bytes.NewReader(buf[:n]), n, nil
}
