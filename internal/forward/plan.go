package forward

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// What a target receives is decided here, once, for every way a request
// reaches it: the sync lean path (outbound), the sync ReverseProxy path
// (rewrite), an async route's stored delivery (Plan, sent later by Client)
// and explain (TargetURL). docs/delivery.md lists the rule for operators.

// Plan is what a target receives for one request, besides the body, which
// is the client's as the gateway read it.
type Plan struct {
	Method string
	URL    *url.URL
	// Header is what the target receives. It holds no User-Agent when the
	// client sent none; the senders then suppress Go's default (sendHeader).
	Header http.Header
}

// parseTarget parses a route's target (an absolute http or https URL
// without query; the config loader has checked it) once, when the route is
// built. An empty path is the root.
func parseTarget(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("target %q: scheme must be http or https", target)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}

// Plan returns what the target receives for r, in memory of its own (an
// async route stores it; the sync paths build the same into pooled memory).
func (f *Forwarder) Plan(r *http.Request, fr *Request) *Plan {
	p := &Plan{Method: r.Method, URL: new(url.URL), Header: make(http.Header, len(r.Header)+4)}
	f.targetURL(p.URL, r.URL, fr.Rest)
	outHeader(p.Header, r, fr, new([3]string))
	return p
}

// TargetURL is the URL the target receives a request for in on (for a
// prefix route, rest is the escaped path after the route's base).
func (f *Forwarder) TargetURL(rest string, in *url.URL) string {
	var u url.URL
	f.targetURL(&u, in, rest)
	return u.String()
}

// targetURL is the target URL with a prefix route's rest appended and the
// client's raw query, byte for byte (a signed query must not be reordered
// or re-escaped).
func (f *Forwarder) targetURL(u *url.URL, in *url.URL, rest string) {
	*u = *f.target
	if rest != "" {
		if strings.HasSuffix(u.Path, "/") && rest[0] == '/' {
			rest = rest[1:]
		}
		raw := u.EscapedPath() + rest
		if p, err := url.PathUnescape(raw); err == nil {
			u.Path, u.RawPath = p, raw
		}
	}
	u.RawQuery = in.RawQuery
	u.ForceQuery = in.ForceQuery
}

// outHeader fills h (empty) with the header the target receives for r:
//
//   - the client's headers, except hop-by-hop ones (isHop), those its
//     Connection header names, Expect (the gateway has read the whole body
//     before dispatch, so the expectation was met here; a target asked
//     again would answer a 100 nobody waits for), Host (the target's own is
//     sent) and the protected names (Protected);
//   - Te: trailers when the client's Te lists trailers (the one TE a proxy
//     passes on, as ReverseProxy);
//   - X-Forwarded-For (the gateway's value, when it has one),
//     X-Forwarded-Host (the client's Host), X-Forwarded-Proto and
//     X-Request-Id, set after the client's headers so that no client header
//     can replace or remove them;
//   - with tracing on, the gateway's traceparent and tracestate in place
//     of the client's (Request.Trace).
//
// vals is storage for the values drawbridge sets, so that the lean path
// can keep them in its pooled request.
func outHeader(h http.Header, r *http.Request, fr *Request, vals *[3]string) {
	in := r.Header
	for k, vs := range in {
		if !dropped(k) {
			h[k] = vs
		}
	}
	dropConnectionNamed(h, in["Connection"])
	if hasToken(in["Te"], "trailers") {
		h["Te"] = trailersOnly
	}
	*vals = [3]string{fr.ForwardedFor, r.Host, fr.RequestID}
	if fr.ForwardedFor != "" {
		h["X-Forwarded-For"] = vals[0:1:1]
	}
	h["X-Forwarded-Host"] = vals[1:2:2]
	if r.TLS != nil {
		h["X-Forwarded-Proto"] = protoHTTPS
	} else {
		h["X-Forwarded-Proto"] = protoHTTP
	}
	h["X-Request-Id"] = vals[2:3:3]
	if t := fr.Trace; t != nil && t.Parent != "" {
		h["Traceparent"] = []string{t.Parent}
		if t.State != "" {
			h["Tracestate"] = []string{t.State}
		} else {
			delete(h, "Tracestate")
		}
	}
	if fr.Sign != nil {
		fr.Sign(h, fr.Body)
	}
}

// sendHeader is the User-Agent rule, applied by every sender to a
// planned header just before it goes out: the target gets the client's
// User-Agent or none. Go's request writers add their own unless the
// header holds an empty one.
func sendHeader(h http.Header) {
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = noUserAgent
	}
}

// Header values that never change, shared by every request (the standard
// library only reads them).
var (
	trailersOnly = []string{"trailers"}
	noUserAgent  = []string{""}
	protoHTTP    = []string{"http"}
	protoHTTPS   = []string{"https"}
)

// dropped reports whether a client's header k (canonical) never reaches
// the target under its own name.
func dropped(k string) bool {
	return isHop(k) || k == "Expect" || k == "Host" || Protected(k)
}

// isHop reports whether k (canonical) is a hop-by-hop header (RFC 9110
// §7.6.1, and ReverseProxy's list): dropped from requests and from
// answers. It is the one list of them.
func isHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// removeHopHeaders deletes hop-by-hop headers and those the Connection
// header names from a target's answer.
func removeHopHeaders(h http.Header) {
	dropConnectionNamed(h, h["Connection"])
	for k := range h {
		if isHop(k) {
			delete(h, k)
		}
	}
}

// dropConnectionNamed deletes from h the headers that conn, the values of
// a Connection header, name: they are hop-by-hop too.
func dropConnectionNamed(h http.Header, conn []string) {
	for _, v := range conn {
		for {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if name = strings.TrimSpace(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
			if v == "" {
				break
			}
		}
	}
}

// hasToken reports whether the comma-separated values vs list token (case
// folded; parameters such as ";q=1" ignored).
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for {
			var t string
			t, v, _ = strings.Cut(v, ",")
			t, _, _ = strings.Cut(t, ";")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
			if v == "" {
				break
			}
		}
	}
	return false
}

// Protected reports whether a header name, with '_' read as '-' and case
// folded, is one drawbridge owns or derives, which a client may neither
// set nor pass on: x-api-key, x-forwarded-*, forwarded, x-real-ip,
// x-request-id, http2-settings, every x-drawbridge-* (the headers
// drawbridge sets for its targets, such as X-Drawbridge-Delivery), and the
// framing headers content-length and transfer-encoding (the target's are
// derived from the buffered body). The '_' spellings matter because
// CGI-style backends map X_Api_Key or Transfer_Encoding back to the real
// name.
func Protected(name string) bool {
	if len(name) > 12 && foldEq(name[:12], "x-forwarded-") {
		// First: a 14-byte X-Forwarded-Xy is a prefix match too (found by
		// FuzzProtected: X_FORWARDED_00 once slipped through the length
		// switch below).
		return true
	}
	if len(name) > 13 && foldEq(name[:13], "x-drawbridge-") {
		return true
	}
	switch len(name) {
	case 9: // forwarded, x-api-key, x-real-ip
		return foldEq(name, "forwarded") || foldEq(name, "x-api-key") || foldEq(name, "x-real-ip")
	case 12:
		return foldEq(name, "x-request-id")
	case 14:
		return foldEq(name, "http2-settings") || foldEq(name, "content-length")
	case 17:
		return foldEq(name, "transfer-encoding")
	}
	return false
}

// foldEq compares a header name to a lower-case protected name, reading
// '_' as '-', without allocating.
func foldEq(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			c = '-'
		} else if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
