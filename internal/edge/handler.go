package edge

import (
	"crypto/tls"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// HandlerOptions bound what Handler lets through. Zero values mean no
// bound.
type HandlerOptions struct {
	MaxInflight     int // requests being served at once; beyond: 503
	MaxHeaders      int // header field lines (values) per request; beyond: 431
	MaxForwardedFor int // X-Forwarded-For entries, all lines together; beyond: 431
	// TLS: the server's listener is Listener.TLS, whose HTTP/1.x
	// connections net/http takes for plain ones; Handler gives their
	// requests back the TLS state ConnContext kept.
	TLS bool
	// OnReject, if set, is called for every request Handler answers
	// itself, with its status and outcome label (metrics).
	OnReject func(r *http.Request, status int, outcome string)
}

// Handler checks what the gateway cannot (the framing marker) or should
// not spend effort on (too many headers, a flood) before next runs.
type Handler struct {
	next     http.Handler
	opts     HandlerOptions
	inflight atomic.Int64
}

// NewHandler wraps next.
func NewHandler(next http.Handler, opts HandlerOptions) *Handler {
	return &Handler{next: next, opts: opts}
}

// Inflight is the number of requests being served now.
func (h *Handler) Inflight() int { return int(h.inflight.Load()) }

type answer struct {
	status    int
	outcome   string
	errorType string
	body      string
	close     bool
}

// Frozen bodies: the same bytes as the gateway's own answers.
var (
	badFraming = answer{400, "bad_request", "BadRequestException", `{"message":"Bad Request"}`, true}
	tooMany    = answer{431, "too_large", "BadRequestException", `{"message":"Request Header Fields Too Large"}`, false}
	shed       = answer{503, "unavailable", "ServiceUnavailableException", `{"message":"Service Unavailable"}`, true}
)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n := h.inflight.Add(1); h.opts.MaxInflight > 0 && n > int64(h.opts.MaxInflight) {
		h.inflight.Add(-1)
		h.answer(w, r, &shed)
		return
	}
	defer h.inflight.Add(-1)
	if h.opts.TLS && r.TLS == nil {
		// Set in place, before anything below reads the request: the
		// gateway and forwarders test r.TLS (X-Forwarded-Proto, cookies).
		r.TLS, _ = r.Context().Value(tlsStateKey{}).(*tls.ConnectionState)
	}
	if _, marked := r.Header[FramingHeader]; marked {
		h.answer(w, r, &badFraming)
		return
	}
	if h.opts.MaxHeaders > 0 || h.opts.MaxForwardedFor > 0 {
		if a := h.bounds(r); a != nil {
			h.answer(w, r, a)
			return
		}
	}
	h.next.ServeHTTP(w, r)
}

// bounds checks the header count and the X-Forwarded-For length.
func (h *Handler) bounds(r *http.Request) *answer {
	var xff []string
	if h.opts.MaxHeaders > 0 {
		// The walk that counts the values also picks X-Forwarded-For
		// (net/http's canonical key), sparing a lookup per request.
		n := 0
		for k, vs := range r.Header {
			n += len(vs)
			if k == "X-Forwarded-For" {
				xff = vs
			}
		}
		if n > h.opts.MaxHeaders {
			return &tooMany
		}
	} else {
		xff = r.Header["X-Forwarded-For"]
	}
	if h.opts.MaxForwardedFor > 0 {
		n := 0
		for _, v := range xff {
			n++
			for i := 0; i < len(v); i++ {
				if v[i] == ',' {
					n++
				}
			}
		}
		if n > h.opts.MaxForwardedFor {
			return &tooMany
		}
	}
	return nil
}

// aLongTimeAgo is a read deadline already past: it stops net/http from
// waiting for (or draining) a body nobody will read.
var aLongTimeAgo = time.Unix(1, 0)

func (h *Handler) answer(w http.ResponseWriter, r *http.Request, a *answer) {
	hd := w.Header()
	hd["Content-Type"] = []string{"application/json"}
	hd["Content-Length"] = []string{strconv.Itoa(len(a.body))}
	hd["x-amzn-RequestId"] = []string{requestID()}
	hd["x-amzn-ErrorType"] = []string{a.errorType}
	if a.close || r.ContentLength != 0 {
		hd["Connection"] = []string{"close"}
		http.NewResponseController(w).SetReadDeadline(aLongTimeAgo)
	}
	w.WriteHeader(a.status)
	if r.Method != http.MethodHead {
		w.Write([]byte(a.body))
	}
	if h.opts.OnReject != nil {
		h.opts.OnReject(r, a.status, a.outcome)
	}
}

// requestID is a random UUID v4, the shape of API Gateway's request ids.
func requestID() string {
	const hex = "0123456789abcdef"
	var b [36]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 4<<12
	lo = lo&^(0x3<<62) | 0x2<<62
	j := 0
	for i := range 32 {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b[j] = '-'
			j++
		}
		w := hi
		if i >= 16 {
			w = lo
		}
		b[j] = hex[w>>(60-4*(i%16))&0xf]
		j++
	}
	return string(b[:])
}

// Early puts the Handler's own checks in front of next, for a Listener's
// Early: a request beyond max_inflight or over a bound goes to net/http,
// where ServeHTTP refuses it as always.
func (h *Handler) Early(next Early) Early {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if n := h.inflight.Add(1); h.opts.MaxInflight > 0 && n > int64(h.opts.MaxInflight) {
			h.inflight.Add(-1)
			return false
		}
		defer h.inflight.Add(-1)
		if (h.opts.MaxHeaders > 0 || h.opts.MaxForwardedFor > 0) && h.bounds(r) != nil {
			return false
		}
		return next(w, r)
	}
}
