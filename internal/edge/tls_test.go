package edge

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// tlsEdge is an http.Server on Listener.TLS with Handler in front of next,
// wired as serve wires it.
type tlsEdge struct {
	ln     *Listener
	tln    net.Listener
	srv    *http.Server
	pool   *x509.CertPool
	served chan error

	mu        sync.Mutex
	handshake []string // OnHandshakeError reasons
}

func startTLSEdge(t *testing.T, handshakeTimeout time.Duration, next http.Handler, early ...Early) *tlsEdge {
	t.Helper()
	cert, pool := testCert()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &tlsEdge{pool: pool, served: make(chan error, 1)}
	opts := ListenerOptions{ScanFraming: true, TLS: true, MaxHeaderBytes: 8 << 10}
	if len(early) > 0 {
		opts.Early = early[0]
	}
	e.ln = NewListener(raw, opts)
	e.tln = e.ln.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}, TLSOptions{
		HandshakeTimeout: handshakeTimeout,
		OnHandshakeError: func(_ net.Addr, reason string) {
			e.mu.Lock()
			e.handshake = append(e.handshake, reason)
			e.mu.Unlock()
		},
	})
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	e.srv = &http.Server{Handler: NewHandler(next, HandlerOptions{TLS: true}), ConnContext: ConnContext, ConnState: ConnState, Protocols: &p}
	go func() { e.served <- e.srv.Serve(e.tln) }()
	t.Cleanup(func() { e.srv.Close() })
	return e
}

// testCert is httptest's certificate, valid for 127.0.0.1, and a pool
// that trusts it.
func testCert() (tls.Certificate, *x509.CertPool) {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	defer ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	return ts.TLS.Certificates[0], pool
}

func (e *tlsEdge) dial(t *testing.T, alpn ...string) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", e.tln.Addr().String(), &tls.Config{RootCAs: e.pool, NextProtos: alpn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// seenRequest is what next saw of one request.
type seenRequest struct {
	uri, proto string
	tls        bool
}

func recordingHandler(seen chan<- seenRequest) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		seen <- seenRequest{r.RequestURI, r.Proto, r.TLS != nil && r.TLS.HandshakeComplete}
		io.WriteString(w, "ok")
	})
}

// TestTLSFraming: on HTTP/1.x over TLS the framing scanner runs as on
// plain HTTP (HTTP/1.0 with Transfer-Encoding, and Content-Length with
// Transfer-Encoding, are refused 400 and closed before next runs), and
// requests still carry their TLS state; HTTP/2 chosen by ALPN bypasses
// the scanner and is served.
func TestTLSFraming(t *testing.T) {
	seen := make(chan seenRequest, 10)
	e := startTLSEdge(t, 5*time.Second, recordingHandler(seen))
	for _, req := range []string{
		"POST /a HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		c := e.dial(t, "http/1.1")
		io.WriteString(c, req)
		all, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%q: read %v", req, err)
		}
		// ReadAll returned: the connection was closed.
		if res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(all))), nil); err != nil || res.StatusCode != 400 || strings.Count(string(all), "HTTP/1.") != 1 {
			t.Errorf("%q: answered\n%s", req, all)
		}
	}
	select {
	case r := <-seen:
		t.Fatalf("a refused request reached next: %+v", r)
	default:
	}

	c := e.dial(t, "http/1.1")
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("HTTP/1.1 over TLS: %v %v", res, err)
	}
	if r := <-seen; r.uri != "/one" || r.proto != "HTTP/1.1" || !r.tls {
		t.Errorf("HTTP/1.1 over TLS reached next as %+v", r)
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	res, err = (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + e.tln.Addr().String() + "/two")
	if err != nil || res.StatusCode != 200 || res.Proto != "HTTP/2.0" {
		t.Fatalf("HTTP/2: %v %v", res, err)
	}
	res.Body.Close()
	if r := <-seen; r.uri != "/two" || r.proto != "HTTP/2.0" || !r.tls {
		t.Errorf("HTTP/2 reached next as %+v", r)
	}
}

// TestTLSHandshakes: a client that never completes its handshake holds
// up no one else's Accept, is closed after the handshake timeout, and
// gives its place back; plain HTTP on the TLS port is answered 400 as
// net/http answers it; Close ends Serve and frees every place.
func TestTLSHandshakes(t *testing.T) {
	seen := make(chan seenRequest, 10)
	// A second: short enough to wait for, long enough that a loaded
	// machine still reads the plain-HTTP client's request inside it.
	e := startTLSEdge(t, time.Second, recordingHandler(seen))
	silent, err := net.Dial("tcp", e.tln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	start := time.Now()
	c := e.dial(t, "http/1.1")
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	if res, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || res.StatusCode != 200 {
		t.Fatalf("behind a silent client: %v %v", res, err)
	}
	<-seen
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("served after %v: the silent handshake held Accept up", d)
	}
	silent.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("silent client: read %v, want closed by the handshake timeout", err)
	}

	plain, err := net.Dial("tcp", e.tln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(plain, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if got, _ := io.ReadAll(plain); !strings.HasPrefix(string(got), "HTTP/1.0 400 Bad Request") {
		t.Errorf("plain HTTP on the TLS port: %q", got)
	}
	// The listener reports the refused handshake after closing the
	// connection, so the report may come just after the client's EOF.
	reasons := func() string {
		e.mu.Lock()
		defer e.mu.Unlock()
		return strings.Join(e.handshake, "; ")
	}
	const plainReason = "client sent an HTTP request to an HTTPS server"
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(reasons(), plainReason) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := reasons(); !strings.Contains(got, plainReason) {
		t.Errorf("handshake errors reported: %q", got)
	}

	e.srv.Close()
	if err := <-e.served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
	if _, err := e.tln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	open := e.ln.Open()
	for deadline := time.Now().Add(2 * time.Second); open != 0 && time.Now().Before(deadline); open = e.ln.Open() {
		time.Sleep(10 * time.Millisecond)
	}
	if open != 0 {
		t.Errorf("%d places still held after Close", open)
	}
}
