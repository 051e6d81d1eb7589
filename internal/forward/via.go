package forward

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/drawbridge/drawbridge/internal/egress"
)

// forwardVia is Forward on the lean path for a route whose requests go
// through an agent tunnel (Options.Transport): the request is built by
// the plan straight into one allocation and handed to the tunnel's
// RoundTripper, and the answer copied as on the lean path, without
// ReverseProxy's copies of the request, its header and its URL. What the
// target receives and what the client gets back are those of the
// ReverseProxy path, 1xx answers included.
//
// Nothing here is pooled: the tunnel's HTTP/2 client may still hold the
// request (and read its body) after RoundTrip returns.
func (f *Forwarder) forwardVia(w http.ResponseWriter, r *http.Request, fr *Request) error {
	o := &viaReq{}
	h := make(http.Header, len(r.Header)+4)
	outHeader(h, r, fr, &o.vals)
	sendHeader(h)
	f.targetURL(&o.url, r.URL, fr.Rest)
	ctx, cancel := context.WithDeadline(r.Context(), fr.Deadline)
	defer cancel()
	t := &httptrace.ClientTrace{Got1xxResponse: o.got1xx}
	if fr.Trace != nil {
		t = clientTrace(&fr.Trace.Timing)
		t.Got1xxResponse = o.got1xx
	}
	o.w = w
	ctx = httptrace.WithClientTrace(ctx, t)
	o.req = http.Request{
		Method:        r.Method,
		URL:           &o.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Host:          o.url.Host,
		ContentLength: int64(len(fr.Body)),
	}
	if len(fr.Body) > 0 {
		o.body.Reset(fr.Body)
		o.req.Body = io.NopCloser(&o.body)
		// The tunnel sends the request again through another agent
		// connection when that is safe (internal/tunnel).
		o.req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(fr.Body)), nil }
	}
	out := o.req.WithContext(ctx)

	res, err := f.opts.Transport.RoundTrip(out)
	if err == nil && res.StatusCode == http.StatusSwitchingProtocols {
		// Nobody asked: a websocket route's requests take the
		// ReverseProxy path (Forward), which carries upgrades.
		res.Body.Close()
		err = errors.New("target switched protocols unasked")
	}
	if err == nil && f.opts.Response == Envelope {
		err = f.envelope(res)
	}
	if err != nil {
		kind := Unreachable
		switch {
		case errors.Is(err, egress.ErrDenied):
			kind = Denied
		case errors.Is(err, ErrAgentUnavailable):
			kind = NoAgent
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
			kind = Timeout
		}
		return &Error{Kind: kind, Err: err}
	}
	removeHopHeaders(res.Header)
	dst := w.Header()
	for k, vs := range res.Header {
		dst[k] = append(dst[k], vs...)
	}
	if len(res.Trailer) > 0 {
		names := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			names = append(names, k)
		}
		dst["Trailer"] = append(dst["Trailer"], strings.Join(names, ", "))
	}
	w.WriteHeader(res.StatusCode)
	err = copyBody(w, res.Body, res.ContentLength == -1 || eventStream(res.Header["Content-Type"]))
	res.Body.Close()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	for k, vs := range res.Trailer {
		dst[http.TrailerPrefix+k] = vs
	}
	return nil
}

// viaReq is one tunnelled request's memory, in one allocation.
type viaReq struct {
	req  http.Request
	url  url.URL
	vals [3]string
	body bytes.Reader
	w    http.ResponseWriter
}

// got1xx relays an interim answer to the client as ReverseProxy does.
func (o *viaReq) got1xx(code int, header textproto.MIMEHeader) error {
	h := o.w.Header()
	for k, vs := range header {
		h[k] = append(h[k], vs...)
	}
	o.w.WriteHeader(code)
	clear(h) // a 1xx's header is not the final answer's
	return nil
}
