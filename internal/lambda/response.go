package lambda

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"unicode/utf8"
)

// result is a finished HTTP response, before it is shaped for an event.
type result struct {
	status int
	header http.Header
	body   []byte
}

// errResponseTooLarge is what Write returns once the body passes the limit,
// so a copying handler (ReverseProxy) stops early instead of buffering more.
var errResponseTooLarge = errors.New("lambda: response body over the Lambda payload limit")

// responseWriter buffers a whole response in memory, because a buffered
// Lambda response can only be returned once it is complete. It mimics
// net/http's server where a handler could notice: headers are frozen at
// WriteHeader, 1xx responses are not final, bodies are refused for 204/304
// and discarded for HEAD.
type responseWriter struct {
	header      http.Header
	sent        http.Header // snapshot taken at WriteHeader
	status      int
	wroteHeader bool
	head        bool
	limit       int
	overflow    bool
	body        bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	// net/http panics here too; the panic becomes a 502 in serve.
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	// 1xx are interim responses; a buffered Lambda response cannot carry
	// them, so they are dropped. 101 has no
	// meaning without a connection to switch.
	if code < 200 {
		return
	}
	w.wroteHeader = true
	w.status = code
	w.sent = w.header.Clone()
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.head {
		return len(p), nil
	}
	if w.overflow || w.body.Len()+len(p) > w.limit {
		w.overflow = true
		return 0, errResponseTooLarge
	}
	return w.body.Write(p)
}

// Flush is a no-op: the response is complete only when the handler returns.
// It exists so handlers that stream (ReverseProxy with text/event-stream)
// keep working, fully buffered.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}

// serve runs the handler and returns its complete response. A panic or an
// oversize body yields a 502, because the client could not have received a
// complete response either; net/http would have cut the connection.
func (a *Adapter) serve(ctx context.Context, req *http.Request) (res *result) {
	w := &responseWriter{header: make(http.Header), limit: a.opts.MaxResponse, head: req.Method == http.MethodHead}
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v != http.ErrAbortHandler {
			a.log.ErrorContext(ctx, "lambda: handler panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
		res = a.internalError(ctx)
	}()
	a.h.ServeHTTP(w, req)
	if w.overflow {
		a.log.ErrorContext(ctx, "lambda: response body over the limit", "limit", a.opts.MaxResponse)
		return a.internalError(ctx)
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	h := w.sent
	body := w.body.Bytes()
	// As net/http: sniff a missing Content-Type from the body, unless the
	// body is encoded (sniffing gzip bytes would lie).
	if _, ok := h["Content-Type"]; !ok && len(body) > 0 && h.Get("Content-Encoding") == "" {
		h.Set("Content-Type", http.DetectContentType(body))
	}
	cleanResponseHeader(h, w.head && len(body) == 0)
	return &result{status: w.status, header: h, body: body}
}

func (a *Adapter) internalError(ctx context.Context) *result {
	id := ""
	if s, ok := SourceFromContext(ctx); ok {
		id = s.RequestID
	}
	return errorResult(http.StatusBadGateway, bodyInternalServer, "InternalServerErrorException", id)
}

// cleanResponseHeader drops what describes a connection or a framing rather
// than the response: AWS frames the response to the client itself and
// rewrites or rejects these. Content-Length is recomputed by AWS from the
// body it sends, except for HEAD, where the handler's value is the only one.
func cleanResponseHeader(h http.Header, keepLength bool) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
	for _, name := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer"} {
		delete(h, name)
	}
	for k, vs := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || len(vs) == 0 {
			delete(h, k)
		}
	}
	if !keepLength {
		delete(h, "Content-Length")
	}
}

// isBinary decides whether a body must travel base64-encoded. JSON strings
// cannot carry invalid UTF-8, and encoded or non-textual media must reach the
// client byte for byte.
func isBinary(h http.Header, body []byte) bool {
	if len(body) == 0 {
		return false
	}
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return true
	}
	if !utf8.Valid(body) {
		return true
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"), strings.HasSuffix(mt, "+yaml"):
		return false
	}
	switch mt {
	case "application/json", "application/xml", "application/javascript", "application/ecmascript",
		"application/x-www-form-urlencoded", "application/x-ndjson", "application/yaml", "application/x-yaml",
		"application/graphql", "application/problem+json":
		return false
	}
	return true
}

// Response documents. Field order and names follow aws-lambda-go's events
// types; they are declared here so each shape carries exactly the fields its
// service accepts (REST answers 502 to unknown keys).
type v1Response struct {
	StatusCode        int                 `json:"statusCode"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Body              string              `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

type v2Response struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Cookies         []string          `json:"cookies,omitempty"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
}

type albResponse struct {
	StatusCode        int                 `json:"statusCode"`
	StatusDescription string              `json:"statusDescription"`
	Headers           map[string]string   `json:"headers,omitempty"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders,omitempty"`
	Body              string              `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

// encode shapes res for the event it answers. A document over MaxResponse
// (base64 grows a body by a third) is replaced by a 502: Lambda would refuse
// to return it.
func (a *Adapter) encode(ctx context.Context, ev *event, res *result) ([]byte, error) {
	out, err := shape(ev, res)
	if err != nil {
		return nil, err
	}
	if len(out) > a.opts.MaxResponse {
		a.log.ErrorContext(ctx, "lambda: response document over the limit", "bytes", len(out), "limit", a.opts.MaxResponse)
		return shape(ev, a.internalError(ctx))
	}
	return out, nil
}

func shape(ev *event, res *result) ([]byte, error) {
	var body string
	b64 := isBinary(res.header, res.body)
	if b64 {
		body = base64.StdEncoding.EncodeToString(res.body)
	} else {
		body = string(res.body)
	}
	var doc any
	switch ev.kind {
	case KindV1:
		// Every header goes into multiValueHeaders; headers repeats the
		// single-valued ones for readers that look only there. API Gateway
		// merges the two maps but drops pairs present in both.
		r := v1Response{StatusCode: res.status, Headers: map[string]string{}, MultiValueHeaders: map[string][]string{},
			Body: body, IsBase64Encoded: b64}
		for k, vs := range res.header {
			r.MultiValueHeaders[k] = vs
			if len(vs) == 1 {
				r.Headers[k] = vs[0]
			}
		}
		doc = r
	case KindV2, KindURL:
		// Set-Cookie values cannot be comma-joined (Expires has a comma), so
		// they travel in cookies; everything else is joined as HTTP API does.
		r := v2Response{StatusCode: res.status, Headers: map[string]string{}, Body: body, IsBase64Encoded: b64}
		for k, vs := range res.header {
			if k == "Set-Cookie" {
				r.Cookies = vs
				continue
			}
			r.Headers[k] = strings.Join(vs, ",")
		}
		doc = r
	case KindALB:
		// ALB accepts only the header form enabled on the target group, the
		// one the event arrived in.
		r := albResponse{StatusCode: res.status, StatusDescription: statusDescription(res.status), Body: body, IsBase64Encoded: b64}
		if ev.MultiValueHeaders != nil {
			r.MultiValueHeaders = map[string][]string{}
			for k, vs := range res.header {
				r.MultiValueHeaders[k] = vs
			}
		} else {
			r.Headers = map[string]string{}
			for k, vs := range res.header {
				if k == "Set-Cookie" {
					// Without multi-value headers only one cookie can be set;
					// the last wins, as ALB itself does with duplicates.
					r.Headers[k] = vs[len(vs)-1]
					continue
				}
				r.Headers[k] = strings.Join(vs, ",")
			}
		}
		doc = r
	default:
		return nil, fmt.Errorf("lambda: no response shape for %q", ev.kind)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // bodies are not embedded in HTML; escaping only grows them
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("lambda: encode response: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// statusDescription is ALB's "200 OK" line; an unknown code has no text.
func statusDescription(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}
