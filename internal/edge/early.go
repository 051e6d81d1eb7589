package edge

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Early answers a request below net/http when its answer is already
// known and costs no state to give (a frozen rejection: no route, a
// resource-policy denial, a missing key, a throttle's 429). It writes the
// answer to w and returns true, or returns false having written nothing,
// and the request goes to net/http as usual. r is built by the scanner
// from the raw header block, exactly as net/http would build it, and is
// never a request with a body.
//
// Why: a rejection through net/http's handler API costs about half again
// what a bare net/http 403 costs (the header map copy and sort, the
// response's allocations, the collector); below it, a flood of refused
// requests is cheaper than that floor (docs/performance.md).
type Early func(w http.ResponseWriter, r *http.Request) bool

// parseEarly reads a header block as net/http would, for the requests
// whose reading is beyond doubt, and refuses (ok false) every other one:
// those go to net/http, which answers or refuses them itself. Accepted:
// HTTP/1.1, a method of GET, POST, PUT, PATCH or DELETE, an origin-form
// target of printable ASCII, CRLF line ends, header names that are
// tokens with the colon right after, valid values, exactly one valid Host,
// and none of the headers that change how the connection or the body is
// read (Content-Length, Transfer-Encoding, Connection other than
// keep-alive, Upgrade, Expect), Pragma (net/http rewrites it) or the
// framing marker.
// FuzzParseEarly holds every accepted block to http.ReadRequest.
func parseEarly(block []byte, h http.Header) (*http.Request, bool) {
	if len(block) > 1<<16 || !bytes.HasSuffix(block, crlf2) {
		return nil, false
	}
	s := string(block) // one string: every field below is a slice of it
	nl := strings.Index(s, "\r\n")
	line := s[:nl]
	sp := strings.IndexByte(line, ' ')
	if sp < 0 {
		return nil, false
	}
	// The method is the constant, not a slice of s: a name table (the
	// console's) that keeps it would otherwise keep the whole block.
	var method string
	switch line[:sp] {
	case http.MethodGet:
		method = http.MethodGet
	case http.MethodPost:
		method = http.MethodPost
	case http.MethodPut:
		method = http.MethodPut
	case http.MethodPatch:
		method = http.MethodPatch
	case http.MethodDelete:
		method = http.MethodDelete
	default:
		return nil, false
	}
	rest := line[sp+1:]
	target, ok := strings.CutSuffix(rest, " HTTP/1.1")
	if !ok || len(target) == 0 || target[0] != '/' {
		return nil, false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return nil, false
		}
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, false
	}
	host, hosts := "", 0
	var strs []string
	s = s[nl+2:]
	for {
		nl := strings.Index(s, "\r\n")
		line := s[:nl]
		s = s[nl+2:]
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || strings.IndexByte(line, '\r') >= 0 || strings.IndexByte(line, '\n') >= 0 {
			return nil, false
		}
		name := line[:colon]
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, false
		}
		v := strings.Trim(line[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, false
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		switch key {
		case "Host":
			host, hosts = v, hosts+1
			continue
		case "Connection":
			// Many clients say keep-alive, which HTTP/1.1 means anyway
			// and net/http answers no differently; any other token
			// (close, an upgrade, hop-by-hop names) is net/http's.
			if !strings.EqualFold(v, "keep-alive") {
				return nil, false
			}
		case "Content-Length", "Transfer-Encoding", "Upgrade", "Expect", "Pragma", FramingHeader:
			return nil, false
		}
		if vv := h[key]; vv != nil {
			h[key] = append(vv, v)
		} else {
			// One backing array for the values, as textproto has:
			// capped, so that a repeated name appends elsewhere.
			if strs == nil {
				strs = make([]string, 0, strings.Count(s, "\n"))
			}
			strs = append(strs, v)
			h[key] = strs[len(strs)-1 : len(strs) : len(strs)]
		}
	}
	if hosts != 1 || !httpguts.ValidHostHeader(host) {
		return nil, false
	}
	r := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Body:       http.NoBody,
		Host:       host,
		RequestURI: target,
	}
	return r, true
}

var crlf2 = []byte("\r\n\r\n")

// newlineToSpace is net/http's own for header values: each CR and each LF
// becomes a space, so "\r\n" becomes two.
var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// earlyAnswer is the http.ResponseWriter an Early writes to: it keeps what is
// written, and wire lays it out byte for byte as net/http would for a
// handler that wrote the same (TestEarlyAnswersAsNetHTTP). Not so, and
// never written by an Early (frozen rejections): a 1xx answer before the
// final one, header changes after WriteHeader (net/http sends the map as
// it was then), a Transfer-Encoding of the handler's own, and a body over
// 2048 bytes with no Content-Length (net/http sends it chunked).
type earlyAnswer struct {
	h      http.Header
	status int
	body   []byte
}

func (a *earlyAnswer) Header() http.Header { return a.h }

func (a *earlyAnswer) WriteHeader(code int) {
	if a.status == 0 && code >= 200 {
		a.status = code
	}
}

func (a *earlyAnswer) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	a.body = append(a.body, b...)
	return len(b), nil
}

func (a *earlyAnswer) reset() {
	clear(a.h)
	a.status, a.body = 0, a.body[:0]
}

// wire appends the answer as net/http writes a finished handler's
// HTTP/1.1 answer: status line, the header map sorted by key (values with
// line breaks made spaces and trimmed, invalid names dropped, and the
// body's headers when there is no body), then what
// net/http adds itself (Date, Content-Length, a sniffed Content-Type),
// the empty line and the body. It reports whether the answer asks to
// close the connection.
func (a *earlyAnswer) wire(b []byte, now time.Time) ([]byte, bool) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(a.status), 10)
	b = append(b, ' ')
	if text := http.StatusText(a.status); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(a.status), 10)
	}
	b = append(b, "\r\n"...)
	var arr [16]string
	keys := arr[:0]
	for k := range a.h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	bodyOK := a.status >= 200 && a.status != 204 && a.status != 304
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		// net/http drops the body's headers from an answer that has none
		// (suppressedHeaders in its transfer.go; RFC 9110 on 304).
		if !bodyOK && (k == "Content-Length" || k == "Transfer-Encoding" || a.status == 304 && k == "Content-Type") {
			continue
		}
		for _, v := range a.h[k] {
			if strings.ContainsAny(v, "\r\n") {
				v = newlineToSpace.Replace(v)
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, textproto.TrimString(v)...)
			b = append(b, "\r\n"...)
		}
	}
	if _, ok := a.h["Date"]; !ok {
		b = append(b, "Date: "...)
		b = now.UTC().AppendFormat(b, http.TimeFormat)
		b = append(b, "\r\n"...)
	}
	if _, ok := a.h["Content-Length"]; !ok && bodyOK {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(a.body)), 10)
		b = append(b, "\r\n"...)
	}
	if _, ok := a.h["Content-Type"]; !ok && bodyOK && len(a.body) > 0 {
		// No sniffing under a Content-Encoding: the body is not what it
		// looks like (net/http does the same).
		if ce := a.h["Content-Encoding"]; len(ce) == 0 || ce[0] == "" {
			b = append(b, "Content-Type: "...)
			b = append(b, http.DetectContentType(a.body)...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	if bodyOK {
		b = append(b, a.body...)
	}
	_, closing := a.h["Connection"]
	return b, closing
}
