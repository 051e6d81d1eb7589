package agent

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"

	"github.com/drawbridge/drawbridge/internal/tunnel"
)

// A request without a body (most of them: GET, HEAD, DELETE...) takes the
// lean path, forward.Relay: written on a kept-alive connection by the
// stream's own goroutine, its answer copied back, without the ReverseProxy
// and http.Transport machinery the requests with a body go through. What
// the target receives and what the edge gets back are the same either
// way; TestAgentViaRouteMatchesDirect compares both with the direct path.

// outReq is one relayed request's memory, pooled: Request.Write keeps
// nothing of it once the exchange is over.
type outReq struct {
	req http.Request
	url url.URL
}

var outReqs = sync.Pool{New: func() any { return new(outReq) }}

// relayOne sends r on as the edge planned it, like rewrite does for
// ReverseProxy: :scheme (TLS when https), :authority and :path as
// received, the raw query byte for byte, the edge's header with what
// ReverseProxy would remove removed.
func (a *Agent) relayOne(w http.ResponseWriter, r *http.Request) {
	o := outReqs.Get().(*outReq)
	defer func() {
		*o = outReq{}
		outReqs.Put(o)
	}()
	o.url = *r.URL
	o.url.Scheme = "http"
	if r.TLS != nil {
		o.url.Scheme = "https"
	}
	o.url.Host = r.Host
	outHeader(r.Header)
	o.req = http.Request{
		Method:     r.Method,
		URL:        &o.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     r.Header, // the stream's own: nothing else reads it
		Host:       r.Host,
	}
	if err := a.relay.Forward(r.Context(), w, &o.req, tunnel.ErrorHeader); err != nil {
		a.failed(w, r, err)
	}
}

// outHeader turns the header the edge sent into the one the target
// receives, in place, as ReverseProxy with rewrite would: hop-by-hop
// headers and those Connection names out (HTTP/2 carries none of them
// but Te: trailers; the edge already removed them), Te: trailers kept,
// Forwarded out (ReverseProxy drops it and rewrite restores only the
// X-Forwarded-* ones, the edge's), and no User-Agent of Go's own.
func outHeader(h http.Header) {
	trailers := httpguts.HeaderValuesContainsToken(h["Te"], "trailers")
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	delete(h, "Forwarded")
	if trailers {
		h["Te"] = teTrailers
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = noUserAgent
	}
}

// ReverseProxy's hop-by-hop list.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// Values shared by every request (Request.Write only reads them).
var (
	teTrailers  = []string{"trailers"}
	noUserAgent = []string{""}
)
