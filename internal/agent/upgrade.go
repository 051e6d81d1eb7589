package agent

import (
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/drawbridge/drawbridge/internal/tunnel"
)

// upgrade serves a stream the edge marked as an Upgrade request
// (tunnel.UpgradeHeader; only a websocket route's handshake is marked):
// the handshake goes to the target through the same egress guard and
// dialer as any request, and a 101 is answered with 200 and the
// protocol in tunnel.UpgradeHeader (HTTP/2 has no 101). From then on the
// stream is the upgraded connection: its request body goes to the
// target, the target's bytes come back as its answer's body, flushed as
// they arrive. Either side closing, or the edge resetting the stream,
// closes both. Any other answer of the target goes back as it is.
func (a *Agent) upgrade(w http.ResponseWriter, r *http.Request) {
	proto := r.Header.Get(tunnel.UpgradeHeader)
	delete(r.Header, tunnel.UpgradeHeader)
	outHeader(r.Header)
	r.Header["Connection"] = []string{"Upgrade"}
	r.Header["Upgrade"] = []string{proto}
	u := *r.URL
	u.Scheme = "http"
	if r.TLS != nil {
		u.Scheme = "https"
	}
	u.Host = r.Host
	out := (&http.Request{Method: r.Method, URL: &u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: r.Header, Host: r.Host, Body: http.NoBody}).WithContext(r.Context())
	res, err := a.client.RoundTrip(out)
	if err != nil {
		a.failed(w, r, err)
		return
	}
	defer res.Body.Close()
	h := w.Header()
	if res.StatusCode != http.StatusSwitchingProtocols {
		copyAnswerHeader(h, res.Header)
		w.WriteHeader(res.StatusCode)
		io.Copy(w, res.Body)
		return
	}
	conn, ok := res.Body.(io.ReadWriteCloser)
	if got := res.Header.Get("Upgrade"); !ok || !strings.EqualFold(got, proto) {
		a.failed(w, r, errors.New("target switched to "+got+", not "+proto))
		return
	}
	copyAnswerHeader(h, res.Header)
	h[tunnel.UpgradeHeader] = []string{proto}
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	if f != nil {
		f.Flush() // the edge answers the client's handshake now
	}
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(conn, r.Body)
		done <- struct{}{}
	}()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					break
				}
				if f != nil {
					f.Flush()
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	left := 2
	select {
	case <-done:
		left--
	case <-r.Context().Done():
	}
	// Closing the target's connection and the stream's body ends both
	// copies; the handler must not return while one still writes to w.
	conn.Close()
	r.Body.Close()
	for ; left > 0; left-- {
		<-done
	}
}

// copyAnswerHeader copies the target's answer header as ReverseProxy
// would: hop-by-hop headers (and those Connection names) out, and never
// a header of the agent's own protocol, which only the agent sets.
func copyAnswerHeader(dst, src http.Header) {
	for _, v := range src["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				src.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(src, k)
	}
	delete(src, tunnel.ErrorHeader)
	delete(src, tunnel.UpgradeHeader)
	for k, vs := range src {
		dst[k] = append(dst[k], vs...)
	}
}
