package cli

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a backend that keeps every request it was sent.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []seen
}

type seen struct {
	method, uri, host string
	header            http.Header
	body              string
	err               error
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{r.Method, r.RequestURI, r.Host, r.Header.Clone(), string(body), err})
		rec.mu.Unlock()
		io.WriteString(w, "backend ok")
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) take() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r := rec.reqs
	rec.reqs = nil
	return r
}

// exchange is what came back on one raw connection.
type exchange struct {
	responses []*http.Response
	bodies    []string
	closed    bool          // the gateway closed the connection
	elapsed   time.Duration // until close (or the read budget ran out)
	raw       string
}

// rawExchange writes payload (in pieces, with pause between them) and
// reads until the gateway closes the connection or budget runs out.
func rawExchange(t *testing.T, addr string, pieces []string, pause, budget time.Duration) exchange {
	t.Helper()
	return rawExchangeOn(t, func() (net.Conn, error) { return net.Dial("tcp", addr) }, pieces, pause, budget)
}

// rawExchangeOn is rawExchange on a connection from dial (TLS or not).
func rawExchangeOn(t *testing.T, dial func() (net.Conn, error), pieces []string, pause, budget time.Duration) exchange {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	go func() {
		for i, p := range pieces {
			if i > 0 {
				time.Sleep(pause)
			}
			if _, err := c.Write([]byte(p)); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(start.Add(budget))
	var buf bytes.Buffer
	_, err = io.Copy(&buf, c)
	ex := exchange{elapsed: time.Since(start), raw: buf.String()}
	ex.closed = err == nil // EOF: the gateway closed; a timeout is an error
	if ne, ok := err.(net.Error); err != nil && !(ok && ne.Timeout()) {
		ex.closed = true // reset by the peer also ends it
	}
	br := bufio.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 100 {
			ex.responses = append(ex.responses, resp)
			ex.bodies = append(ex.bodies, "")
			continue
		}
		ex.responses = append(ex.responses, resp)
		ex.bodies = append(ex.bodies, string(b))
	}
	return ex
}

func (ex exchange) statuses() []int {
	var s []int
	for _, r := range ex.responses {
		s = append(s, r.StatusCode)
	}
	return s
}

const edgeConfig = `listen: 127.0.0.1:0
admin: 'off'
state: {driver: memory}
limits: {max_header_bytes: 16384, max_headers: 50, max_forwarded_for: 10}
server: {read_header_timeout: 1s, idle_timeout: 5s}
routes:
  - path: /forward
    target: BACKEND/in
    timeout: 1s
  - path: /hooks/*
    target: BACKEND/hooks
    timeout: 1s
`

// edgeListener is a running gateway on edgeConfig in front of a recording
// backend, on the plain or the TLS listener, with a raw dialer for it.
type edgeListener struct {
	name  string
	proto string // X-Forwarded-Proto the backend must be told
	rec   *recorder
	dial  func() (net.Conn, error)
}

// edgeListeners starts the gateway twice, plain and with tls:, so that
// every raw-socket row runs on both listeners. The TLS dialer offers only
// http/1.1 by ALPN: these rows are HTTP/1 bytes.
func edgeListeners(t *testing.T) []edgeListener {
	t.Helper()
	plainRec := newRecorder(t)
	plain, _ := startInProcess(t, strings.ReplaceAll(edgeConfig, "BACKEND", plainRec.srv.URL))
	tlsRec := newRecorder(t)
	ca := newCA(t, "edge CA")
	dir := t.TempDir()
	c, k := ca.leaf(t, true)
	writeFile(t, dir, "cert.pem", c)
	writeFile(t, dir, "key.pem", k)
	onTLS, _ := startInProcess(t, strings.ReplaceAll(edgeConfig, "BACKEND", tlsRec.srv.URL)+
		"tls: {cert: "+filepath.Join(dir, "cert.pem")+", key: "+filepath.Join(dir, "key.pem")+"}\n")
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	tcfg := &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}
	return []edgeListener{
		{"plain", "http", plainRec, func() (net.Conn, error) { return net.Dial("tcp", plain.Addr()) }},
		{"tls", "https", tlsRec, func() (net.Conn, error) { return tls.Dial("tcp", onTLS.Addr(), tcfg) }},
	}
}

// TestRawEdge replays the framing, path and header attacks of
// docs/hardening.md over raw sockets against a running gateway, on the
// plain and the TLS listener, and asserts both the answer and what the
// recording backend received: never a smuggled, partial or unframed
// request, never a protected header. Timing rows assert bounds.
func TestRawEdge(t *testing.T) {
	for _, l := range edgeListeners(t) {
		t.Run(l.name, func(t *testing.T) { rawEdgeRows(t, l) })
	}
}

func rawEdgeRows(t *testing.T, l edgeListener) {
	rec := l.rec
	const h = "Host: gw.test\r\n"
	post := "POST /forward HTTP/1.1\r\n" + h
	get := "GET /forward HTTP/1.1\r\n" + h

	type row struct {
		id, name string
		send     []string
		pause    time.Duration
		status   []int  // every answer, in order
		body0    string // first answer's body, when set
		closed   bool   // the gateway must have closed the connection
		backend  int    // requests the backend must have seen
		maxTime  time.Duration
		check    func(t *testing.T, got []seen)
	}
	const apigw400 = `{"message":"Bad Request"}`
	const noRoute = `{"message":"Missing Authentication Token"}`
	rows := []row{
		// Framing and smuggling (docs/hardening.md#request-smuggling).
		{id: "H1", name: "CL.TE with a hidden request", send: []string{post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /forward?smuggled HTTP/1.1\r\n" + h + "\r\n"},
			status: []int{400}, body0: apigw400, closed: true},
		{id: "H2", name: "TE.CL, CL shorter than the body", send: []string{post + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
			status: []int{400}, body0: apigw400, closed: true},
		{id: "H3", name: "two different Content-Length", send: []string{post + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
			status: []int{400}, closed: true},
		{id: "H4", name: "two identical Content-Length", send: []string{post + "Content-Length: 2\r\nContent-Length: 2\r\n\r\nab"},
			status: []int{200}, backend: 1, check: func(t *testing.T, got []seen) {
				if got[0].body != "ab" {
					t.Errorf("backend body %q", got[0].body)
				}
			}},
		{id: "H4b", name: "Content-Length list", send: []string{post + "Content-Length: 2, 2\r\n\r\nab"}, status: []int{400}, closed: true},
		{id: "H5", name: "Content-Length +1", send: []string{post + "Content-Length: +1\r\n\r\na"}, status: []int{400}, closed: true},
		{id: "H5b", name: "Content-Length -1", send: []string{post + "Content-Length: -1\r\n\r\n"}, status: []int{400}, closed: true},
		{id: "H5c", name: "Content-Length 0x1", send: []string{post + "Content-Length: 0x1\r\n\r\na"}, status: []int{400}, closed: true},
		{id: "H5d", name: "empty Content-Length", send: []string{post + "Content-Length: \r\n\r\n"}, status: []int{400}, closed: true},
		{id: "H6", name: "Content-Length 001", send: []string{post + "Content-Length: 001\r\n\r\na"}, status: []int{200}, backend: 1},
		{id: "H7", name: "TE cow, chunked", send: []string{post + "Transfer-Encoding: cow, chunked\r\n\r\n0\r\n\r\n"}, status: []int{501}, closed: true},
		{id: "H7b", name: "TE identity", send: []string{post + "Transfer-Encoding: identity\r\n\r\n"}, status: []int{501}, closed: true},
		{id: "H7c", name: "two TE chunked lines", send: []string{post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"}, status: []int{501}, closed: true},
		{id: "H8", name: "TE ChUnKeD", send: []string{post + "Transfer-Encoding: ChUnKeD\r\n\r\n3\r\nabc\r\n0\r\n\r\n"}, status: []int{200}, closed: true, backend: 1,
			check: func(t *testing.T, got []seen) {
				if got[0].body != "abc" || got[0].header.Get("Content-Length") != "3" {
					t.Errorf("backend got body %q, CL %q: want the body re-framed with a length", got[0].body, got[0].header.Get("Content-Length"))
				}
			}},
		{id: "H9", name: "space before colon", send: []string{post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"}, status: []int{400}, closed: true},
		{id: "H11", name: "obs-fold TE", send: []string{post + "Transfer-Encoding:\r\n chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"}, status: []int{200}, closed: true, backend: 1},
		{id: "H11b", name: "obs-fold value", send: []string{get + "X-Folded: a\r\n b\r\n\r\n"}, status: []int{200}, backend: 1,
			check: func(t *testing.T, got []seen) {
				if v := got[0].header.Get("X-Folded"); v != "a b" {
					t.Errorf("folded header reached the backend as %q", v)
				}
			}},
		{id: "H12", name: "whitespace before the first header", send: []string{"GET /forward HTTP/1.1\r\n Host: gw.test\r\n\r\n"}, status: []int{400}, closed: true},
		{id: "H13", name: "chunk size 0x1", send: []string{post + "Transfer-Encoding: chunked\r\n\r\n0x1\r\na\r\n0\r\n\r\n"}, status: []int{400}, body0: apigw400, closed: true},
		{id: "H13b", name: "chunk line with bare LF", send: []string{post + "Transfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n"}, status: []int{400}, body0: apigw400, closed: true},
		{id: "H13c", name: "empty chunk size", send: []string{post + "Transfer-Encoding: chunked\r\n\r\n\r\na\r\n0\r\n\r\n"}, status: []int{400}, body0: apigw400, closed: true},
		{id: "H13d", name: "chunk size overflow", send: []string{post + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\na\r\n0\r\n\r\n"}, status: []int{400}, body0: apigw400, closed: true},
		{id: "H13e", name: "CR in chunk extension", send: []string{post + "Transfer-Encoding: chunked\r\n\r\n1;a\rb\r\nx\r\n0\r\n\r\n"}, status: []int{400}, body0: apigw400, closed: true},
		{id: "H14", name: "trailer never becomes a header", send: []string{post + "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Hub-Signature-256: sha256=forged\r\n\r\n"}, status: []int{200}, closed: true, backend: 1,
			check: func(t *testing.T, got []seen) {
				if got[0].header.Get("X-Hub-Signature-256") != "" {
					t.Error("a trailer reached the backend as a header")
				}
			}},
		// net/http ignores Transfer-Encoding on HTTP/1.0: unmarked, the "body" is served as the next request.
		{id: "H15b", name: "HTTP/1.0 keep-alive with TE chunked", send: []string{"POST /forward HTTP/1.0\r\n" + h + "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"GET /forward?smuggled HTTP/1.1\r\n" + h + "\r\n"}, status: []int{400}, body0: apigw400, closed: true},
		{id: "H15", name: "HTTP/1.0 with TE and CL", send: []string{"POST /forward HTTP/1.0\r\n" + h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"}, status: []int{400}, body0: apigw400, closed: true},
		{id: "H16", name: "HTTP/2.0 request line", send: []string{"GET /forward HTTP/2.0\r\n" + h + "\r\n"}, status: []int{505}, closed: true},
		{id: "H16b", name: "HTTP/1.32", send: []string{"GET /forward HTTP/1.32\r\n" + h + "\r\n"}, status: []int{400}, closed: true},
		{id: "H17", name: "bare LF line ends", send: []string{"GET /forward HTTP/1.1\nHost: gw.test\n\n"}, status: []int{200}, backend: 1},
		{id: "H18", name: "lower-case method", send: []string{"get /forward HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},
		{id: "H18b", name: "invalid method token", send: []string{"G(T /forward HTTP/1.1\r\n" + h + "\r\n"}, status: []int{400}, closed: true},
		{id: "H19", name: "Expect 100-continue on a rejected request", send: []string{"POST /nowhere HTTP/1.1\r\n" + h + "Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n"},
			status: []int{403}, body0: noRoute, closed: true, maxTime: 500 * time.Millisecond},
		{id: "H20", name: "slowloris headers", send: []string{"GET /forward HTTP/1.1\r\n", "Host: gw.test\r\n", "X-A: 1\r\n", "X-B: 1\r\n", "X-C: 1\r\n", "X-D: 1\r\n", "X-E: 1\r\n", "X-F: 1\r\n"},
			pause: 300 * time.Millisecond, closed: true, maxTime: 2500 * time.Millisecond},
		{id: "H21", name: "slow body", send: []string{post + "Content-Length: 10\r\n\r\n", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"},
			pause: 300 * time.Millisecond, status: []int{504}, closed: true, maxTime: 2 * time.Second},
		{id: "H22", name: "pipelined request after a framing error", send: []string{post + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nabGET /forward HTTP/1.1\r\n" + h + "\r\n"},
			status: []int{400}, closed: true},
		{id: "H22b", name: "pipelined request after a rejection without body", send: []string{"GET /nowhere HTTP/1.1\r\n" + h + "\r\n" + get + "Connection: close\r\n\r\n"},
			status: []int{403, 200}, closed: true, backend: 1},
		{id: "H23", name: "one 20 KB header", send: []string{get + "X-Big: " + strings.Repeat("a", 24<<10) + "\r\n\r\n"}, status: []int{431}, closed: true},
		{id: "H23b", name: "200 headers", send: []string{get + strings.Repeat("X-N: 1\r\n", 200) + "\r\n"}, status: []int{431}},
		{id: "H23c", name: "200 KB path", send: []string{"GET /forward/" + strings.Repeat("a", 200<<10) + " HTTP/1.1\r\n" + h + "\r\n"}, status: []int{431}, closed: true},
		// net/http hands the preface to the handler (no h2c here): no route.
		{id: "H25", name: "HTTP/2 preface on HTTP/1", send: []string{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"}, status: []int{403}, body0: noRoute, closed: true},

		// Paths (docs/hardening.md#one-path-form).
		{id: "P1", name: "dot-dot", send: []string{"GET /hooks/../admin HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},
		{id: "P1b", name: "dot", send: []string{"GET /hooks/./x HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},
		{id: "P2", name: "encoded dot-dot", send: []string{"GET /hooks/%2e%2E/admin HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},
		{id: "P2b", name: "encoded slash", send: []string{"GET /hooks/..%2fadmin HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},
		{id: "P2c", name: "encoded backslash", send: []string{"GET /hooks/a%5cb HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},
		{id: "P3", name: "empty segments", send: []string{"GET //hooks//x HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},
		{id: "P4", name: "backslash", send: []string{"GET /hooks\\..\\admin HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},
		{id: "P5", name: "encoded NUL", send: []string{"GET /hooks/a%00 HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},
		{id: "P6", name: "invalid escape", send: []string{"GET /hooks/%zz HTTP/1.1\r\n" + h + "\r\n"}, status: []int{400}, closed: true},
		{id: "P8", name: "absolute-form target", send: []string{"GET http://evil.example/forward HTTP/1.1\r\nHost: evil.example\r\n\r\n"}, status: []int{200}, backend: 1,
			check: func(t *testing.T, got []seen) {
				if strings.Contains(got[0].host, "evil") {
					t.Errorf("backend Host = %q", got[0].host)
				}
			}},
		{id: "P9", name: "asterisk-form", send: []string{"GET * HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},
		{id: "P12", name: "raw query byte for byte", send: []string{"GET /forward?b=2;a=1&a=%zz&c HTTP/1.1\r\n" + h + "\r\n"}, status: []int{200}, backend: 1,
			check: func(t *testing.T, got []seen) {
				if got[0].uri != "/in?b=2;a=1&a=%zz&c" {
					t.Errorf("backend request-target %q", got[0].uri)
				}
			}},
		{id: "P13", name: "case variant", send: []string{"GET /Forward HTTP/1.1\r\n" + h + "\r\n"}, status: []int{403}, body0: noRoute},

		// Headers (docs/hardening.md#protected-header-names).
		{id: "HD1", name: "Connection names protected headers", send: []string{get + "Connection: X-Forwarded-For, X-Request-Id\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"}, status: []int{200}, backend: 1,
			check: func(t *testing.T, got []seen) {
				if got[0].header.Get("X-Forwarded-For") != "127.0.0.1" || got[0].header.Get("X-Request-Id") == "" {
					t.Errorf("backend XFF %q, X-Request-Id %q", got[0].header.Get("X-Forwarded-For"), got[0].header.Get("X-Request-Id"))
				}
			}},
		{id: "HD2", name: "h2c upgrade stripped", send: []string{get + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"}, status: []int{200}, backend: 1,
			check: func(t *testing.T, got []seen) {
				for _, k := range []string{"Upgrade", "Http2-Settings", "Connection"} {
					if v := got[0].header.Get(k); v != "" {
						t.Errorf("backend got %s: %q", k, v)
					}
				}
			}},
		{id: "HD2b", name: "websocket upgrade stripped on a plain route", send: []string{get + "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"}, status: []int{200}, backend: 1,
			check: func(t *testing.T, got []seen) {
				if got[0].header.Get("Upgrade") != "" {
					t.Error("Upgrade reached the backend")
				}
			}},
		{id: "HD3", name: "hop-by-hop headers", send: []string{get + "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\nTrailer: X-T\r\n\r\n"}, status: []int{200}, backend: 1,
			check: func(t *testing.T, got []seen) {
				for _, k := range []string{"Keep-Alive", "Proxy-Connection", "Te", "Trailer"} {
					if v := got[0].header.Get(k); v != "" {
						t.Errorf("backend got %s: %q", k, v)
					}
				}
			}},
		{id: "HD4", name: "protected names with underscores", send: []string{get + "X_Api_Key: k1\r\nx-api-key: k2\r\nX-Forwarded_For: 6.6.6.6\r\nX_REAL_IP: 6.6.6.6\r\nx_request_id: mine\r\n\r\n"}, status: []int{200}, backend: 1,
			check: func(t *testing.T, got []seen) {
				for k, vs := range got[0].header {
					n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
					if n == "x-api-key" || n == "x-real-ip" || (n == "x-forwarded-for" && vs[0] != "127.0.0.1") || (n == "x-request-id" && vs[0] == "mine") {
						t.Errorf("backend got %s: %q", k, vs)
					}
				}
			}},
		{id: "HD5", name: "client-sent forwarding headers replaced", send: []string{get + "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Request-Id: mine\r\n\r\n"}, status: []int{200}, backend: 1,
			check: func(t *testing.T, got []seen) {
				g := got[0].header
				if g.Get("X-Forwarded-For") != "127.0.0.1" || g.Get("X-Forwarded-Host") != "gw.test" || g.Get("X-Forwarded-Proto") != l.proto ||
					g.Get("Forwarded") != "" || g.Get("X-Real-Ip") != "" || g.Get("X-Request-Id") == "mine" {
					t.Errorf("backend headers %v", g)
				}
			}},
		{id: "HD5b", name: "X-Forwarded-For over the entry bound", send: []string{get + "X-Forwarded-For: " + strings.Repeat("1.2.3.4, ", 11) + "1.2.3.4\r\n\r\n"}, status: []int{431}},
		{id: "HD7", name: "two Host headers", send: []string{"GET /forward HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"}, status: []int{400}, closed: true},
		{id: "HD7b", name: "no Host on HTTP/1.1", send: []string{"GET /forward HTTP/1.1\r\n\r\n"}, status: []int{400}, closed: true},
		{id: "HD9", name: "NUL in a value", send: []string{get + "X-A: a\x00b\r\n\r\n"}, status: []int{400}, closed: true},
		{id: "HD9b", name: "empty header name", send: []string{get + ": x\r\n\r\n"}, status: []int{400}, closed: true},
	}
	for _, r := range rows {
		t.Run(r.id+" "+r.name, func(t *testing.T) {
			rec.take()
			budget := 3 * time.Second
			if !r.closed {
				budget = 400 * time.Millisecond // an open connection is read until this passes
			}
			ex := rawExchangeOn(t, l.dial, r.send, r.pause, budget)
			if got := ex.statuses(); !equalInts(got, r.status) {
				t.Fatalf("answers %v, want %v\n%.600s", got, r.status, ex.raw)
			}
			if r.body0 != "" && ex.bodies[0] != r.body0 {
				t.Errorf("body %q, want %q", ex.bodies[0], r.body0)
			}
			if len(ex.responses) > 0 && ex.responses[0].StatusCode >= 400 && ex.bodies[0] != "" && strings.HasPrefix(ex.bodies[0], "{") {
				if ct := ex.responses[0].Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("JSON error with Content-Type %q", ct)
				}
			}
			if r.closed && !ex.closed {
				t.Errorf("connection left open")
			}
			if r.maxTime > 0 && ex.elapsed > r.maxTime {
				t.Errorf("took %v, bound %v", ex.elapsed, r.maxTime)
			}
			time.Sleep(20 * time.Millisecond) // the backend may still be writing its record
			got := rec.take()
			if len(got) != r.backend {
				t.Fatalf("backend saw %d requests, want %d: %+v", len(got), r.backend, got)
			}
			for _, g := range got {
				if g.err != nil {
					t.Errorf("backend got a broken body: %v", g.err)
				}
				if strings.Contains(g.uri, "smuggled") {
					t.Errorf("smuggled request reached the backend")
				}
			}
			if r.check != nil && len(got) > 0 {
				r.check(t, got)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWebSocket: a route with websocket: true passes the upgrade through
// the egress-checked dialer; the route timeout and server.write_timeout
// bound the handshake, not the session; a plain route strips the Upgrade; a websocket route to a
// port egress does not allow gets 502.
func TestWebSocket(t *testing.T) {
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			io.WriteString(w, "no upgrade")
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw) // echo
	}))
	defer ws.Close()
	deniedPort, hits := countingListener(t)
	// write_timeout is shorter than the session below: it bounds answers,
	// not an upgraded connection (net/http clears deadlines on hijack).
	text := "listen: 127.0.0.1:0\nadmin: 'off'\nstate: {driver: memory}\nserver: {write_timeout: 400ms}\negress:\n  allow: [\"" + ws.Listener.Addr().String() + "\"]\nroutes:\n" +
		"  - path: /ws\n    target: " + ws.URL + "/\n    websocket: true\n    timeout: 300ms\n" +
		"  - path: /plain\n    target: " + ws.URL + "/\n" +
		"  - path: /ws-denied\n    target: http://127.0.0.1:" + strconv.Itoa(deniedPort) + "/\n    websocket: true\n"
	s, _ := startInProcess(t, text)
	upgrade := " HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws"+upgrade)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	time.Sleep(500 * time.Millisecond) // past the route timeout and the write bound
	io.WriteString(c, "frame")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "frame" {
		t.Fatalf("echo after the route timeout: %q %v", buf, err)
	}

	ex := rawExchange(t, s.Addr(), []string{"GET /plain" + upgrade}, 0, 400*time.Millisecond)
	if !equalInts(ex.statuses(), []int{200}) || ex.bodies[0] != "no upgrade" {
		t.Errorf("plain route: %v %q", ex.statuses(), ex.bodies)
	}
	ex = rawExchange(t, s.Addr(), []string{"GET /ws-denied" + upgrade}, 0, 400*time.Millisecond)
	if !equalInts(ex.statuses(), []int{502}) || hits.Load() != 0 {
		t.Errorf("websocket to a denied port: %v, %d connections", ex.statuses(), hits.Load())
	}
}

// TestSmugglerSweep is smuggler's byte sweep (docs/hardening.md#request-smuggling): one
// byte from 0x01-0x1F or 0x7F-0xFF inserted before the Transfer-Encoding
// name, before its colon, after the colon or after "chunked", with a
// Content-Length framing a hidden request. Whatever the byte, the backend
// never sees the hidden request and never a body framed by the
// Content-Length (TE ignored, CL used): it gets nothing, or the empty
// chunked body.
func TestSmugglerSweep(t *testing.T) {
	for _, l := range edgeListeners(t) {
		t.Run(l.name, func(t *testing.T) { smugglerSweep(t, l) })
	}
}

func smugglerSweep(t *testing.T, l edgeListener) {
	rec := l.rec
	hidden := "GET /forward?smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n"
	body := "0\r\n\r\n" + hidden
	var bytesToTry []byte
	for b := 0x01; b <= 0x1f; b++ {
		bytesToTry = append(bytesToTry, byte(b))
	}
	for b := 0x7f; b <= 0xff; b++ {
		bytesToTry = append(bytesToTry, byte(b))
	}
	statuses := map[int]int{}
	for _, b := range bytesToTry {
		x := string([]byte{b})
		for pos, te := range []string{x + "Transfer-Encoding: chunked", "Transfer-Encoding" + x + ": chunked", "Transfer-Encoding:" + x + "chunked", "Transfer-Encoding: chunked" + x} {
			req := "POST /forward HTTP/1.1\r\nHost: gw.test\r\n" + te + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
			ex := rawExchangeOn(t, l.dial, []string{req}, 0, 2*time.Second)
			for _, st := range ex.statuses() {
				statuses[st]++
				if st == 200 {
					t.Logf("200 for byte %#02x at position %d", b, pos)
				}
			}
			time.Sleep(2 * time.Millisecond)
			for _, g := range rec.take() {
				if strings.Contains(g.uri, "smuggled") || g.body != "" {
					t.Errorf("byte %#02x at position %d: backend got %s %s with body %q", b, pos, g.method, g.uri, g.body)
				}
			}
		}
	}
	t.Logf("%d variants, answers by status: %v", 4*len(bytesToTry), statuses)
}
