package edge

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/http/httpguts"
)

// TestParseEarly: the blocks parseEarly accepts are read as net/http
// reads them (Host moved out of the map into r.Host, values trimmed,
// names canonicalised, repeated headers kept in order), and every block
// whose reading is in any doubt, or that changes how the connection or a
// body is read, is refused so that net/http answers it.
func TestParseEarly(t *testing.T) {
	type want struct {
		method, uri, path, rawPath, rawQuery, host string
		header                                     http.Header
	}
	accepted := []struct {
		name, block string
		want        want
	}{
		{"get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			want{"GET", "/", "/", "", "", "a", http.Header{}}},
		{"post", "POST /p HTTP/1.1\r\nHost: a\r\nX-Api-Key: k\r\n\r\n",
			want{"POST", "/p", "/p", "", "", "a", http.Header{"X-Api-Key": {"k"}}}},
		{"put", "PUT /items/1 HTTP/1.1\r\nHost: a\r\n\r\n",
			want{"PUT", "/items/1", "/items/1", "", "", "a", http.Header{}}},
		{"patch", "PATCH /items/1 HTTP/1.1\r\nHost: a\r\n\r\n",
			want{"PATCH", "/items/1", "/items/1", "", "", "a", http.Header{}}},
		{"delete", "DELETE /items/1 HTTP/1.1\r\nHost: a\r\n\r\n",
			want{"DELETE", "/items/1", "/items/1", "", "", "a", http.Header{}}},
		{"query string", "GET /a/b?x=1&y=%20z HTTP/1.1\r\nHost: a\r\n\r\n",
			want{"GET", "/a/b?x=1&y=%20z", "/a/b", "", "x=1&y=%20z", "a", http.Header{}}},
		{"percent-encoded path keeps its raw form", "GET /a%2Fb/c%20d HTTP/1.1\r\nHost: a\r\n\r\n",
			want{"GET", "/a%2Fb/c%20d", "/a/b/c d", "/a%2Fb/c%20d", "", "a", http.Header{}}},
		{"percent-encoded utf-8", "GET /caf%C3%A9 HTTP/1.1\r\nHost: a\r\n\r\n",
			want{"GET", "/caf%C3%A9", "/café", "", "", "a", http.Header{}}},
		{"repeated headers in order", "GET / HTTP/1.1\r\nAccept: b\r\nHost: a\r\nX-A: 1\r\nAccept: a\r\naccept: c\r\n\r\n",
			want{"GET", "/", "/", "", "", "a", http.Header{"Accept": {"b", "a", "c"}, "X-A": {"1"}}}},
		{"values trimmed of SP and HT", "GET / HTTP/1.1\r\nHost:\t a \t\r\nX-A:  \t v  w \t \r\nX-B:v\r\nX-C:\r\nX-D: \t\r\n\r\n",
			want{"GET", "/", "/", "", "", "a", http.Header{"X-A": {"v  w"}, "X-B": {"v"}, "X-C": {""}, "X-D": {""}}}},
		{"names canonicalised", "GET / HTTP/1.1\r\nHOST: a\r\nx-amzn-requestid: 1\r\nCONTENT-TYPE: text/plain\r\nx_y: 2\r\n\r\n",
			want{"GET", "/", "/", "", "", "a", http.Header{"X-Amzn-Requestid": {"1"}, "Content-Type": {"text/plain"}, "X_y": {"2"}}}},
		{"host with port", "GET /x HTTP/1.1\r\nhost: Example.com:8080\r\n\r\n",
			want{"GET", "/x", "/x", "", "", "Example.com:8080", http.Header{}}},
		{"empty host, as net/http accepts", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
			want{"GET", "/", "/", "", "", "", http.Header{}}},
		{"obs-text in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9\r\n\r\n",
			want{"GET", "/", "/", "", "", "a", http.Header{"X-A": {"caf\xc3\xa9"}}}},
		{"connection keep-alive, kept as net/http keeps it", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n",
			want{"GET", "/", "/", "", "", "a", http.Header{"Connection": {"Keep-Alive"}}}},
	}
	for _, tt := range accepted {
		r, ok := parseEarly([]byte(tt.block), http.Header{})
		if !ok {
			t.Errorf("%s: refused %q", tt.name, tt.block)
			continue
		}
		got := want{r.Method, r.RequestURI, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Header}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tt.name, got, tt.want)
		}
		if r.Proto != "HTTP/1.1" || r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.ContentLength != 0 ||
			r.Body != http.NoBody || r.Close || r.RemoteAddr != "" || r.URL.Host != "" || r.URL.Scheme != "" {
			t.Errorf("%s: proto %q %d.%d, length %d, body %v, close %v, remote %q, url host %q scheme %q",
				tt.name, r.Proto, r.ProtoMajor, r.ProtoMinor, r.ContentLength, r.Body, r.Close, r.RemoteAddr, r.URL.Host, r.URL.Scheme)
		}
	}

	refused := []struct{ name, block string }{
		{"http/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n"},
		{"http/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"},
		{"head", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"options", "OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"connect", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"},
		{"lower-case method", "get / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"unknown method", "PURGE / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"absolute-form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"asterisk", "GET * HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"bad escape", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"non-ascii target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"tab in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"trailing space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n"},
		{"no target", "GET HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n"},
		{"bare LF in a header", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"},
		{"bare CR in a header", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n"},
		{"bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"folded line", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"},
		{"folded with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc: d\r\n\r\n"},
		{"space before the colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n"},
		{"space before the name", "GET / HTTP/1.1\r\n X-A: b\r\nHost: a\r\n\r\n"},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n"},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"},
		{"missing host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n"},
		{"duplicate host", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"},
		{"invalid host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
		{"content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"},
		{"content-length 0", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"},
		{"content-length, any case", "GET / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 0\r\n\r\n"},
		{"transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"connection keep-alive with another token", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\n"},
		{"connection close", "GET / HTTP/1.1\r\nHost: a\r\nconnection: close\r\n\r\n"},
		{"upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"},
		{"expect", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n"},
		{"pragma", "GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n"},
		{"framing marker", "GET / HTTP/1.1\r\nHost: a\r\n" + FramingHeader + ": x\r\n\r\n"},
		{"framing marker, lower case", "GET / HTTP/1.1\r\nHost: a\r\ndrawbridge-framing-error: x\r\n\r\n"},
		{"invalid name byte", "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n"},
		{"non-ascii name", "GET / HTTP/1.1\r\nHost: a\r\nX-\xc3\xa9: b\r\n\r\n"},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n"},
		{"DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7fb\r\n\r\n"},
		{"control byte in host", "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n"},
		{"no empty line", "GET / HTTP/1.1\r\nHost: a\r\n"},
		{"ends in LF CRLF", "GET / HTTP/1.1\r\nHost: a\n\r\n"},
		{"empty", ""},
		{"empty line only", "\r\n"},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"over 64 KiB", "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + strings.Repeat("a", 1<<16) + "\r\n\r\n"},
	}
	for _, tt := range refused {
		if r, ok := parseEarly([]byte(tt.block), http.Header{}); ok {
			t.Errorf("%s: accepted %q as %s %s", tt.name, tt.block, r.Method, r.RequestURI)
		}
	}
}

// FuzzParseEarly: whatever parseEarly accepts, net/http reads the same
// way (http.ReadRequest, which deletes Host as the server does) and its
// server accepts (exactly one valid Host, every header name and value
// valid), with no body and nothing left over.
func FuzzParseEarly(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /p?x=1&y=%20z HTTP/1.1\r\nhost: Example.com:8080\r\nX-Api-Key: k\r\n\r\n",
		"PUT /a%2Fb/c%20d HTTP/1.1\r\nHost: a\r\nAccept: b\r\naccept: a\r\n\r\n",
		"PATCH /caf%C3%A9 HTTP/1.1\r\nHOST: [::1]:80\r\nX-A:  \t v \t\r\nX-B:\r\n\r\n",
		"DELETE //x/y;z? HTTP/1.1\r\nHost:\r\nx_y: caf\xc3\xa9\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nTrailer: X\r\nTE: trailers\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n",
		"GET /a#b HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET /?a=%zz&b HTTP/1.1\r\nHost: a\r\nX-A: \"q\"; p=1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, block []byte) {
		if blockEnd(block, 0) != len(block) {
			// Not one whole block, and the scanner offers nothing else:
			// parseEarly reads up to the first empty line only.
			return
		}
		r, ok := parseEarly(block, http.Header{})
		if !ok {
			return
		}
		br := bufio.NewReader(bytes.NewReader(block))
		want, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("accepted %q, net/http refuses it: %v", block, err)
		}
		if br.Buffered() != 0 {
			t.Fatalf("accepted %q, net/http leaves %d bytes for the next request", block, br.Buffered())
		}
		if n, _ := want.Body.Read(make([]byte, 1)); n != 0 || want.ContentLength != 0 || want.Close {
			t.Fatalf("accepted %q, net/http reads a body or closes: length %d, close %v", block, want.ContentLength, want.Close)
		}
		type view struct {
			Method, RequestURI, URL, Path, RawPath, RawQuery, Host, Proto string
			Major, Minor                                                  int
			ForceQuery, Close                                             bool
			ContentLength                                                 int64
			Header                                                        http.Header
		}
		viewOf := func(r *http.Request) view {
			return view{r.Method, r.RequestURI, r.URL.String(), r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Proto,
				r.ProtoMajor, r.ProtoMinor, r.URL.ForceQuery, r.Close, r.ContentLength, r.Header}
		}
		if got, want := viewOf(r), viewOf(want); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nparseEarly %+v\nnet/http   %+v", block, got, want)
		}
		// The server's own checks run on the header as textproto reads it,
		// Host still in: http.ReadRequest has already deleted it.
		tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(block)))
		if _, err := tp.ReadLine(); err != nil {
			t.Fatal(err)
		}
		mh, err := tp.ReadMIMEHeader()
		if err != nil {
			t.Fatalf("%q: %v", block, err)
		}
		if hosts := mh["Host"]; len(hosts) != 1 || !httpguts.ValidHostHeader(hosts[0]) {
			t.Fatalf("accepted %q, the server refuses its Host %q", block, hosts)
		}
		for k, vs := range mh {
			if !httpguts.ValidHeaderFieldName(k) {
				t.Fatalf("accepted %q, the server refuses the name %q", block, k)
			}
			for _, v := range vs {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("accepted %q, the server refuses the value %q", block, v)
				}
			}
		}
	})
}

// hooks let a test follow the server: idle receives the client's address
// each time net/http has finished a request on its connection and waits
// for the next (StateIdle), after ConnState has seen it; got receives a
// value each time a read on a client connection's socket returns bytes
// (before the scanner sees them).
type hooks struct {
	idle chan<- string
	got  chan<- struct{}
	skip bool // keep skipAfterServed (else early is asked for every request)
}

// earlyServer serves h through a real http.Server on a Listener that
// scans framing and offers requests to early, over loopback.
func earlyServer(t *testing.T, h http.Handler, early Early, hk hooks) string {
	t.Helper()
	return serveEarly(t, &http.Server{Handler: h}, ListenerOptions{ScanFraming: true, Early: early}, hk)
}

// serveEarly serves srv on a loopback Listener with opts, its ConnState
// hook edge.ConnState.
func serveEarly(t *testing.T, srv *http.Server, opts ListenerOptions, hk hooks) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// ErrorLog: net/http logs the superfluous WriteHeader a case makes.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		ConnState(c, s)
		if hk.idle != nil && s == http.StateIdle {
			hk.idle <- c.RemoteAddr().String()
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		el := NewListener(watchedListener{ln, hk.got}, opts)
		if !hk.skip {
			el.skipAfter = 0 // ask for every request: these tests are of the order of answers
		}
		srv.Serve(el)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

type watchedListener struct {
	net.Listener
	got chan<- struct{}
}

func (l watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.got == nil {
		return c, err
	}
	return watchedConn{c, l.got}, nil
}

type watchedConn struct {
	net.Conn
	got chan<- struct{}
}

func (c watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.got <- struct{}{}
	}
	return n, err
}

// rawConn is a client connection that keeps every byte it reads, so that
// each answer can be compared as it was on the wire.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	rec  bytes.Buffer
	br   *bufio.Reader
	used int // bytes of rec already returned as answers
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A safety net against a hung test, not a wait: every read below
	// returns as soon as the server has written.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	rc := &rawConn{t: t, c: c}
	rc.br = bufio.NewReader(io.TeeReader(c, &rc.rec))
	return rc
}

// awaitIdle waits until net/http is between requests on rc's connection.
// It writes an answer before it stops reading for the request (its
// background read), so a request sent on reading the answer may still
// (rightly) be taken in by net/http.
func (rc *rawConn) awaitIdle(idle <-chan string) {
	rc.t.Helper()
	for {
		if await(rc.t, idle, "net/http between requests") == rc.c.LocalAddr().String() {
			return
		}
	}
}

// await receives from ch, failing the test rather than hanging it when
// what never comes.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("waited 30s for %s", what)
		panic("unreachable")
	}
}

func (rc *rawConn) send(req string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, req); err != nil {
		rc.t.Fatal(err)
	}
}

// answer reads the next answer whole and returns it parsed, with its body
// read, and as the raw bytes that carried it.
func (rc *rawConn) answer() (*http.Response, []byte, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatalf("reading an answer: %v (read so far %q)", err, rc.rec.Bytes()[rc.used:])
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("reading a body: %v", err)
	}
	end := rc.rec.Len() - rc.br.Buffered()
	raw := bytes.Clone(rc.rec.Bytes()[rc.used:end])
	rc.used = end
	return resp, raw, string(body)
}

// roundTrip sends req on a new connection and returns the raw answer.
func roundTrip(t *testing.T, addr, req string) []byte {
	t.Helper()
	rc := dialRaw(t, addr)
	rc.send(req)
	_, raw, _ := rc.answer()
	return raw
}

var dateLine = regexp.MustCompile(`\r\nDate: [^\r\n]*\r\n`)

// TestEarlyAnswersAsNetHTTP: a handler answering through Early puts on
// the wire exactly the bytes net/http puts there for the same handler
// (only the value of a Date net/http adds itself may differ).
func TestEarlyAnswersAsNetHTTP(t *testing.T) {
	const date = "Tue, 08 Dec 2026 02:00:00 GMT"
	cases := map[string]func(w http.ResponseWriter){
		"/gateway-429": func(w http.ResponseWriter) {
			h := w.Header()
			h["Content-Type"] = []string{"application/json"}
			h["Date"] = []string{date}
			h["x-amzn-RequestId"] = []string{"5b5b1a37-3e3c-4b0a-8d54-4c1b0e0c2f0a"}
			h["x-amz-apigw-id"] = []string{"Kx1AbCdEfGhIjKl="}
			h["x-amzn-ErrorType"] = []string{"TooManyRequestsException"}
			h["Retry-After"] = []string{"3"}
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"message":"Too Many Requests"}`)
		},
		"/no-date": func(w http.ResponseWriter) {
			w.Header()["Content-Type"] = []string{"application/json"}
			w.Header()["x-amzn-ErrorType"] = []string{"ForbiddenException"}
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"message":"Forbidden"}`)
		},
		"/sniffed-html": func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "<html><body>not here</body></html>")
		},
		"/sniffed-json": func(w http.ResponseWriter) {
			w.Header().Set("Date", date)
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"message":"Not Found"}`)
		},
		"/not-sniffed-when-encoded": func(w http.ResponseWriter) {
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte{0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0})
		},
		"/line-breaks-in-values": func(w http.ResponseWriter) {
			w.Header()["X-Note"] = []string{"a\r\nb", " c\nd\re ", "\r\nlead", "trail\r\n", "a\n\r\nb"}
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"message":"Bad Request"}`)
		},
		"/multiple-values": func(w http.ResponseWriter) {
			h := w.Header()
			h["Vary"] = []string{"Origin", "Accept"}
			h["Set-Cookie"] = []string{"a=1", "b=2; Path=/"}
			h["X-Empty"] = []string{""}
			h["X-None"] = nil
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"message":"Unauthorized"}`)
		},
		"/invalid-names-dropped": func(w http.ResponseWriter) {
			h := w.Header()
			h["Bad Name"] = []string{"x"}
			h["X:Colon"] = []string{"y"}
			h["X-\xc3\xa9"] = []string{"z"}
			h[""] = []string{"empty"}
			h["X-Ok"] = []string{"ok"}
			w.WriteHeader(http.StatusForbidden)
		},
		"/lower-case-keys": func(w http.ResponseWriter) {
			// Not the keys net/http looks for: it adds its own Date and
			// Content-Type beside them.
			w.Header()["date"] = []string{date}
			w.Header()["content-type"] = []string{"application/json"}
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{}`)
		},
		"/204": func(w http.ResponseWriter) {
			h := w.Header()
			h["Content-Type"] = []string{"application/json"}
			h["Content-Length"] = []string{"0"}
			h["X-A"] = []string{"1"}
			w.WriteHeader(http.StatusNoContent)
			io.WriteString(w, "not sent")
		},
		"/304": func(w http.ResponseWriter) {
			h := w.Header()
			h["Content-Type"] = []string{"application/json"}
			h["Etag"] = []string{`"v1"`}
			h["Cache-Control"] = []string{"max-age=60"}
			w.WriteHeader(http.StatusNotModified)
		},
		"/200-implicit": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello, ")
			io.WriteString(w, "world")
		},
		"/201-with-length": func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "2")
			w.Header().Set("Location", "/items/1")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "{}")
		},
		"/nothing-written": func(w http.ResponseWriter) {},
		"/status-only":     func(w http.ResponseWriter) { w.WriteHeader(http.StatusForbidden) },
		"/second-status-ignored": func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusForbidden)
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "x")
		},
		"/599": func(w http.ResponseWriter) {
			w.Header()["Content-Type"] = []string{"application/json"}
			w.WriteHeader(599)
			io.WriteString(w, `{"message":"odd"}`)
		},
		"/connection-close": func(w http.ResponseWriter) {
			w.Header()["Content-Type"] = []string{"application/json"}
			w.Header()["Connection"] = []string{"close"}
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"message":"Service Unavailable"}`)
		},
	}
	serve := func(w http.ResponseWriter, r *http.Request) {
		cases[r.URL.Path](w)
	}
	var served, answered atomic.Int64
	addr := earlyServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		serve(w, r)
	}), func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.RawQuery != "early" {
			return false
		}
		answered.Add(1)
		serve(w, r)
		return true
	}, hooks{})

	paths := slices.Sorted(maps.Keys(cases))
	for _, path := range paths {
		viaHTTP := roundTrip(t, addr, "GET "+path+"?http HTTP/1.1\r\nHost: x\r\n\r\n")
		before := answered.Load()
		viaEarly := roundTrip(t, addr, "GET "+path+"?early HTTP/1.1\r\nHost: x\r\n\r\n")
		if answered.Load() != before+1 {
			t.Fatalf("%s: not answered early", path)
		}
		if m := dateLine.Find(viaEarly); m != nil {
			if _, err := http.ParseTime(strings.TrimSpace(string(m[len("\r\nDate: "):]))); err != nil {
				t.Errorf("%s: early Date %q: %v", path, m, err)
			}
		}
		norm := func(b []byte) string { return dateLine.ReplaceAllString(string(b), "\r\nDate: (date)\r\n") }
		if norm(viaEarly) != norm(viaHTTP) {
			t.Errorf("%s:\nearly    %q\nnet/http %q", path, viaEarly, viaHTTP)
		}
	}
	if served.Load() != int64(len(cases)) {
		t.Errorf("net/http served %d requests, want %d", served.Load(), len(cases))
	}
}

// orderServer serves every path through net/http, the one "/block"
// waiting for release, and answers paths under "/early" early when asked;
// each answer names its request (X-Req) and who gave it (X-By). asked
// returns the paths Early was asked for so far.
func orderServer(t *testing.T, hk hooks) (addr string, entered, release chan struct{}, asked func() []string) {
	t.Helper()
	entered, release = make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var paths []string
	asked = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(paths)
	}
	addr = earlyServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-release
		}
		w.Header().Set("X-Req", r.URL.Path)
		w.Header().Set("X-By", "net/http")
		io.WriteString(w, r.URL.Path)
	}), func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if !strings.HasPrefix(r.URL.Path, "/early") {
			return false
		}
		w.Header().Set("X-Req", r.URL.Path)
		w.Header().Set("X-By", "early")
		io.WriteString(w, r.URL.Path)
		return true
	}, hk)
	return addr, entered, release, asked
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

// expect reads the next answer and checks whose it is and who gave it.
func (rc *rawConn) expect(path, by string) {
	rc.t.Helper()
	resp, _, body := rc.answer()
	if got := resp.Header.Get("X-Req"); got != path || body != path || resp.StatusCode != 200 {
		rc.t.Fatalf("answer %d for %q (body %q), want the one for %q", resp.StatusCode, got, body, path)
	}
	if got := resp.Header.Get("X-By"); got != by {
		rc.t.Fatalf("%s answered by %s, want %s", path, got, by)
	}
}

// TestEarlyKeepsOrder: answers leave in the order requests came. A
// request that arrives while net/http serves an earlier one on the same
// connection is not even offered to Early: it goes to net/http after the
// one in flight. Between requests Early is asked for each.
func TestEarlyKeepsOrder(t *testing.T) {
	t.Run("pipelined behind a request in flight", func(t *testing.T) {
		idle := make(chan string, 8)
		addr, entered, release, asked := orderServer(t, hooks{idle: idle})
		rc := dialRaw(t, addr)
		rc.send(get("/block") + get("/early1") + get("/early2"))
		await(t, entered, "/block served")
		close(release)
		rc.expect("/block", "net/http")
		rc.expect("/early1", "net/http")
		rc.expect("/early2", "net/http")
		// One block with the ones behind it unread: only the first is
		// offered (and handed over), the others go with it to net/http.
		if got := asked(); !slices.Equal(got, []string{"/block"}) {
			t.Fatalf("Early asked for %q, want only /block", got)
		}
		// Once net/http has finished all three, the connection is between
		// requests again and Early answers.
		for range 3 {
			rc.awaitIdle(idle)
		}
		rc.send(get("/early3"))
		rc.expect("/early3", "early")
		if got := asked(); !slices.Equal(got, []string{"/block", "/early3"}) {
			t.Fatalf("Early asked for %q", got)
		}
	})
	t.Run("sent while a request is in flight", func(t *testing.T) {
		got := make(chan struct{}, 8)
		addr, entered, release, asked := orderServer(t, hooks{got: got})
		rc := dialRaw(t, addr)
		rc.send(get("/block"))
		await(t, entered, "/block served")
		await(t, got, "/block read")
		rc.send(get("/early1"))
		// Taken in by net/http's background read while /block is served:
		// released before, /block's end would stop that read and /early1
		// would come between requests.
		await(t, got, "/early1 read")
		close(release)
		rc.expect("/block", "net/http")
		rc.expect("/early1", "net/http")
		if got := asked(); !slices.Equal(got, []string{"/block"}) {
			t.Fatalf("Early asked for %q, want only /block", got)
		}
	})
	t.Run("one after another", func(t *testing.T) {
		idle := make(chan string, 8)
		addr, _, _, asked := orderServer(t, hooks{idle: idle})
		rc := dialRaw(t, addr)
		rc.send(get("/early1"))
		rc.expect("/early1", "early")
		rc.send(get("/served1"))
		rc.expect("/served1", "net/http")
		rc.awaitIdle(idle)
		rc.send(get("/early2"))
		rc.expect("/early2", "early")
		rc.send(get("/served2"))
		rc.expect("/served2", "net/http")
		if got, want := asked(), []string{"/early1", "/served1", "/early2", "/served2"}; !slices.Equal(got, want) {
			t.Fatalf("Early asked for %q, want %q", got, want)
		}
	})
}

// TestEarlyConnectionEnds: an early answer carrying Connection: close
// ends the connection after it; and a request with a body, Connection,
// HTTP/1.0, Transfer-Encoding or Upgrade is never offered to Early (which
// would answer anything here) but served by net/http.
func TestEarlyConnectionEnds(t *testing.T) {
	var calls atomic.Int64
	idle := make(chan string, 64)
	addr := earlyServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("%s: reading the body: %v", r.URL.Path, err)
		}
		w.Header().Set("X-By", "net/http")
		w.Header().Set("X-Req", r.URL.Path)
		w.Header().Set("X-Body", string(body))
		io.WriteString(w, r.URL.Path)
	}), func(w http.ResponseWriter, r *http.Request) bool {
		calls.Add(1)
		if r.URL.Path == "/close" {
			w.Header()["Connection"] = []string{"close"}
		}
		w.Header().Set("X-By", "early")
		w.Header().Set("X-Req", r.URL.Path)
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, r.URL.Path)
		return true
	}, hooks{idle: idle})

	t.Run("early answer with connection close", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send(get("/close"))
		resp, raw, _ := rc.answer()
		if resp.Header.Get("X-By") != "early" || !resp.Close || !bytes.Contains(raw, []byte("\r\nConnection: close\r\n")) {
			t.Fatalf("answer %q", raw)
		}
		if b, err := rc.br.ReadByte(); err != io.EOF {
			t.Fatalf("after Connection: close, read %q, %v; want EOF", b, err)
		}
	})

	served := func(t *testing.T, rc *rawConn, path, body string) {
		t.Helper()
		resp, raw, got := rc.answer()
		if resp.StatusCode != 200 || resp.Header.Get("X-By") != "net/http" || resp.Header.Get("X-Req") != path ||
			resp.Header.Get("X-Body") != body || got != path {
			t.Fatalf("%s: answer %q", path, raw)
		}
	}
	tests := []struct{ name, req, path, body string }{
		{"body", "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "/body", "hello"},
		{"content-length 0", "POST /empty HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "/empty", ""},
		{"chunked", "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "/chunked", "hello"},
		{"connection close", "GET /conn-close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "/conn-close", ""},
		{"http/1.0", "GET /http10 HTTP/1.0\r\nHost: x\r\n\r\n", "/http10", ""},
		{"upgrade", "GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", "/upgrade", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := calls.Load()
			rc := dialRaw(t, addr)
			rc.send(tt.req)
			served(t, rc, tt.path, tt.body)
			if n := calls.Load() - before; n != 0 {
				t.Fatalf("Early asked %d times", n)
			}
		})
	}

	t.Run("after a body, the next request is offered", func(t *testing.T) {
		before := calls.Load()
		rc := dialRaw(t, addr)
		rc.send("PUT /body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
		served(t, rc, "/body", "abc")
		rc.awaitIdle(idle)
		rc.send(get("/next"))
		if resp, raw, _ := rc.answer(); resp.StatusCode != 403 || resp.Header.Get("X-By") != "early" {
			t.Fatalf("after the body: %q", raw)
		}
		if n := calls.Load() - before; n != 1 {
			t.Fatalf("Early asked %d times, want once", n)
		}
	})
	t.Run("after a chunked body, nothing is offered", func(t *testing.T) {
		before := calls.Load()
		rc := dialRaw(t, addr)
		rc.send("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
		served(t, rc, "/chunked", "abc")
		rc.send(get("/next"))
		served(t, rc, "/next", "")
		if n := calls.Load() - before; n != 0 {
			t.Fatalf("Early asked %d times", n)
		}
	})
}

// TestEarlyHandlerBounds: Handler.Early hands a request over to net/http
// (false, next not called, nothing written) when it is beyond
// max_inflight or over a header bound, where ServeHTTP refuses it as
// always; otherwise next answers, counted in flight while it does.
func TestEarlyHandlerBounds(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	blocking := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	type bounds struct{ headers, xff int }
	tests := []struct {
		name   string
		bounds bounds
		header http.Header
		want   bool
	}{
		{"no bounds", bounds{}, http.Header{"A": {"1", "2", "3", "4", "5", "6", "7"}, "X-Forwarded-For": {"1, 2, 3, 4, 5"}}, true},
		{"five header lines", bounds{5, 3}, http.Header{"A": {"1", "2"}, "B": {"1"}, "C": {"1"}, "D": {"1"}}, true},
		{"six header lines", bounds{5, 3}, http.Header{"A": {"1", "2", "3"}, "B": {"1"}, "C": {"1"}, "D": {"1"}}, false},
		{"six header lines, only xff bounded", bounds{0, 3}, http.Header{"A": {"1", "2", "3"}, "B": {"1"}, "C": {"1"}, "D": {"1"}}, true},
		{"three xff entries over two lines", bounds{5, 3}, http.Header{"X-Forwarded-For": {"1.1.1.1, 2.2.2.2", "3.3.3.3"}}, true},
		{"four xff entries", bounds{5, 3}, http.Header{"X-Forwarded-For": {"1.1.1.1, 2.2.2.2", "3.3.3.3,4.4.4.4"}}, false},
		{"four xff entries, only headers bounded", bounds{5, 0}, http.Header{"X-Forwarded-For": {"1.1.1.1, 2.2.2.2", "3.3.3.3,4.4.4.4"}}, true},
		{"four xff entries, only xff bounded", bounds{0, 3}, http.Header{"X-Forwarded-For": {"1.1.1.1, 2.2.2.2", "3.3.3.3,4.4.4.4"}}, false},
	}
	for _, tt := range tests {
		for _, maxInflight := range []int{0, 1} {
			h := NewHandler(blocking, HandlerOptions{MaxInflight: maxInflight, MaxHeaders: tt.bounds.headers, MaxForwardedFor: tt.bounds.xff})
			calls, inflight := 0, 0
			early := h.Early(func(w http.ResponseWriter, r *http.Request) bool {
				calls++
				inflight = h.Inflight()
				w.WriteHeader(http.StatusForbidden)
				return true
			})
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header = tt.header
			w := httptest.NewRecorder()
			got := early(w, r)
			wantCalls := 0
			if tt.want {
				wantCalls = 1
			}
			if got != tt.want || calls != wantCalls {
				t.Errorf("%s (max_inflight %d): Early %v, next called %d times; want %v", tt.name, maxInflight, got, calls, tt.want)
			}
			if got && inflight != 1 {
				t.Errorf("%s: %d in flight while next answered, want 1 (itself)", tt.name, inflight)
			}
			if !got && (w.Code != 200 || len(w.Header()) != 0 || w.Body.Len() != 0) {
				t.Errorf("%s: handed over having written %d %v %q", tt.name, w.Code, w.Header(), w.Body)
			}
			if n := h.Inflight(); n != 0 {
				t.Errorf("%s: %d in flight after", tt.name, n)
			}
		}
	}

	t.Run("max_inflight", func(t *testing.T) {
		h := NewHandler(blocking, HandlerOptions{MaxInflight: 1})
		calls := 0
		early := h.Early(func(w http.ResponseWriter, r *http.Request) bool {
			calls++
			return r.URL.Path == "/answered"
		})
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/served", nil))
		}()
		await(t, entered, "the request served")
		w := httptest.NewRecorder()
		if early(w, httptest.NewRequest(http.MethodGet, "/answered", nil)) || calls != 0 || len(w.Header()) != 0 {
			t.Fatalf("beyond max_inflight: next called %d times, header %v", calls, w.Header())
		}
		if n := h.Inflight(); n != 1 {
			t.Fatalf("%d in flight with one served, want 1", n)
		}
		close(release)
		<-done
		if n := h.Inflight(); n != 0 {
			t.Fatalf("%d in flight after", n)
		}
		// Room again: next is asked, and its handing over leaves nothing
		// in flight either.
		if !early(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/answered", nil)) ||
			early(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/handed-over", nil)) || calls != 2 {
			t.Fatalf("within max_inflight: next called %d times", calls)
		}
		if n := h.Inflight(); n != 0 {
			t.Fatalf("%d in flight after", n)
		}
	})
}

// TestEarlyRequestAsNetHTTP: the request Early is given is the one
// net/http gives its handler when Early hands it over, down to the peer
// address, on a real connection.
func TestEarlyRequestAsNetHTTP(t *testing.T) {
	type view struct {
		Method, RequestURI, URL, Path, RawPath, RawQuery, Host, Proto, RemoteAddr string
		ContentLength                                                             int64
		Close                                                                     bool
		Header                                                                    http.Header
		Body                                                                      string
	}
	viewOf := func(r *http.Request) view {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the body: %v", err)
		}
		return view{r.Method, r.RequestURI, r.URL.String(), r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Proto,
			r.RemoteAddr, r.ContentLength, r.Close, r.Header.Clone(), string(body)}
	}
	early, served := make(chan view, 1), make(chan view, 1)
	idle := make(chan string, 8)
	addr := earlyServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served <- viewOf(r)
	}), func(w http.ResponseWriter, r *http.Request) bool {
		early <- viewOf(r)
		return false
	}, hooks{idle: idle})
	rc := dialRaw(t, addr)
	for i, req := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /a%2Fb/c%20d?x=1&y=%20z HTTP/1.1\r\nhost: Example.com:8080\r\nX-Api-Key: k\r\naccept: b\r\nAccept: a\r\n\r\n",
		"DELETE //x/y;z? HTTP/1.1\r\nHOST: [::1]:80\r\nX-A:  \t v \t\r\nX-B:\r\nx_y: caf\xc3\xa9\r\nUser-Agent: t\r\n\r\n",
	} {
		if i > 0 {
			rc.awaitIdle(idle) // or net/http may take it in, unoffered
		}
		rc.send(req)
		if resp, raw, _ := rc.answer(); resp.StatusCode != 200 {
			t.Fatalf("%q: answer %q", req, raw)
		}
		// Both were given the request before the answer was written.
		var e view
		select {
		case e = <-early:
		default:
			t.Fatalf("%q: Early not asked", req)
		}
		s := await(t, served, "the request served")
		if e.RemoteAddr != rc.c.LocalAddr().String() || !reflect.DeepEqual(e, s) {
			t.Errorf("%q:\nEarly    %+v\nnet/http %+v", req, e, s)
		}
	}
}

// TestEarlyIdleTimeout: after an early answer the connection is held to
// the idle timeout, as net/http holds it between requests; with no
// deadline of its own (no header or read timeout here) net/http would
// otherwise wait for the next request for ever.
func TestEarlyIdleTimeout(t *testing.T) {
	const idle = 50 * time.Millisecond
	answer := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }
	addr := serveEarly(t, &http.Server{Handler: http.HandlerFunc(answer), IdleTimeout: idle},
		ListenerOptions{ScanFraming: true, IdleTimeout: idle, Early: func(w http.ResponseWriter, r *http.Request) bool {
			answer(w, r)
			return true
		}}, hooks{})
	rc := dialRaw(t, addr)
	for range 2 { // both early: each renews the deadline
		rc.send(get("/"))
		if resp, raw, _ := rc.answer(); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("answer %q", raw)
		}
	}
	start := time.Now()
	if b, err := rc.br.ReadByte(); err != io.EOF {
		t.Fatalf("after the idle timeout: read %q, %v; want EOF", b, err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("closed after %v idle, want about %v", waited, idle)
	}
}

// TestHeaderTimeoutAfterAnswer: after an answer, early or not, the next
// request's header block is read within the header timeout, as net/http
// reads it after one of its own answers, not within the (longer) idle
// timeout: the scanner holds the block back, so net/http, waiting between
// requests, sees none of it. On plain HTTP and over TLS.
func TestHeaderTimeoutAfterAnswer(t *testing.T) {
	const header, idle = 100 * time.Millisecond, 10 * time.Second
	answer := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }
	// slowHeader has one request answered on c, then sends the start of
	// another and returns how long the server kept the connection.
	slowHeader := func(t *testing.T, c net.Conn) time.Duration {
		t.Helper()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		io.WriteString(c, get("/"))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("answer %v, %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n") // and no more
		start := time.Now()
		if b, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("read %q, %v; want EOF", b, err)
		}
		return time.Since(start)
	}
	for _, early := range []Early{nil, func(http.ResponseWriter, *http.Request) bool { return false },
		func(w http.ResponseWriter, r *http.Request) bool { answer(w, r); return true }} {
		addr := serveEarly(t, &http.Server{Handler: http.HandlerFunc(answer), ReadHeaderTimeout: header, IdleTimeout: idle},
			ListenerOptions{ScanFraming: true, IdleTimeout: idle, HeaderTimeout: header, Early: early}, hooks{})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if waited := slowHeader(t, c); waited > idle/2 {
			t.Errorf("plain, early %v: a slow header held the connection %v, want about %v", early != nil, waited, header)
		}
	}

	t.Run("tls", func(t *testing.T) {
		cert, pool := testCert()
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tln := NewListener(raw, ListenerOptions{ScanFraming: true, TLS: true, HeaderTimeout: header}).
			TLS(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}, TLSOptions{})
		srv := &http.Server{Handler: http.HandlerFunc(answer), ReadHeaderTimeout: header, IdleTimeout: idle, ConnState: ConnState}
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.Serve(tln)
		}()
		defer func() {
			srv.Close()
			<-done
		}()
		c, err := tls.Dial("tcp", tln.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if waited := slowHeader(t, c); waited > idle/2 {
			t.Errorf("tls: a slow header held the connection %v, want about %v", waited, header)
		}
	})
}

// TestEarlySkipsAfterServed: after a request Early leaves to net/http
// (or cannot read), the connection's next skipAfterServed requests go
// straight to net/http without asking; then Early is asked again, and a
// flood of rejections is answered early from there on. Other
// connections are not affected.
func TestEarlySkipsAfterServed(t *testing.T) {
	idle := make(chan string, 64)
	addr, _, _, asked := orderServer(t, hooks{idle: idle, skip: true})
	rc := dialRaw(t, addr)
	rc.send(get("/served"))
	rc.expect("/served", "net/http")
	for i := range skipAfterServed {
		rc.awaitIdle(idle)
		p := fmt.Sprintf("/early-skipped-%d", i)
		rc.send(get(p))
		rc.expect(p, "net/http")
	}
	rc.awaitIdle(idle) // after the last served one; early answers leave net/http waiting
	for i := range 3 {
		p := fmt.Sprintf("/early-%d", i)
		rc.send(get(p))
		rc.expect(p, "early")
	}
	other := dialRaw(t, addr)
	other.send(get("/early-other"))
	other.expect("/early-other", "early")
	if got, want := asked(), []string{"/served", "/early-0", "/early-1", "/early-2", "/early-other"}; !slices.Equal(got, want) {
		t.Fatalf("Early asked for %q, want %q", got, want)
	}

	// A block Early cannot read (OPTIONS) counts as served.
	rc.send("OPTIONS /early-options HTTP/1.1\r\nHost: x\r\n\r\n")
	rc.expect("/early-options", "net/http")
	rc.awaitIdle(idle)
	rc.send(get("/early-after-options"))
	rc.expect("/early-after-options", "net/http")
	if n := len(asked()); n != 5 {
		t.Fatalf("Early asked %d times, want still 5", n)
	}
}

// TestParseEarlyMethodIsConstant: the request's method is net/http's
// constant, not a slice of the block, so whatever keeps it (the
// console's name table) does not keep the block.
func TestParseEarlyMethodIsConstant(t *testing.T) {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		block := []byte(m + " / HTTP/1.1\r\nHost: a\r\n\r\n")
		r, ok := parseEarly(block, http.Header{})
		if !ok {
			t.Fatalf("%s refused", m)
		}
		if unsafe.StringData(r.Method) != unsafe.StringData(m) {
			t.Errorf("%s: the method points into the block", m)
		}
	}
}
