package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/agent"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/tunnel"
)

// A minimal RFC 6455 endpoint for the tests: frames with a FIN bit and
// one opcode, masked from the client, unmasked from the server.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

func wsWrite(w io.Writer, op byte, p []byte, mask bool) error {
	hdr := []byte{0x80 | op, 0}
	switch n := len(p); {
	case n < 126:
		hdr[1] = byte(n)
	case n < 1<<16:
		hdr[1] = 126
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr[1] = 127
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	if mask {
		hdr[1] |= 0x80
		var k [4]byte
		rand.Read(k[:])
		hdr = append(hdr, k[:]...)
		m := make([]byte, len(p))
		for i := range p {
			m[i] = p[i] ^ k[i%4]
		}
		p = m
	}
	_, err := w.Write(append(hdr, p...))
	return err
}

func wsRead(r io.Reader) (op byte, p []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 {
		return 0, nil, errors.New("fragmented frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(r, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(r, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if err != nil {
		return 0, nil, err
	}
	var k [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err = io.ReadFull(r, k[:]); err != nil {
			return 0, nil, err
		}
	}
	p = make([]byte, n)
	if _, err = io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range p {
			p[i] ^= k[i%4]
		}
	}
	return h[0] & 0x0f, p, nil
}

// wsBackend is a WebSocket echo server: it echoes each text or binary
// message, closes its connection on the message "close-now", and
// records the handshakes it received and when its connections end.
type wsBackend struct {
	srv    *httptest.Server
	mu     sync.Mutex
	heads  []http.Header
	closed chan struct{} // one value per connection that ended (or handshake given up)
}

func newWSBackend(t *testing.T) *wsBackend {
	b := &wsBackend{closed: make(chan struct{}, 16)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.heads = append(b.heads, r.Header.Clone())
		b.mu.Unlock()
		if r.Header.Get("Upgrade") != "websocket" {
			io.WriteString(w, "no upgrade")
			return
		}
		if r.URL.Path == "/hang" { // never answers the handshake
			select {
			case <-r.Context().Done():
				b.closed <- struct{}{}
			case <-time.After(30 * time.Second):
			}
			return
		}
		if r.URL.Path == "/refuse" {
			w.Header().Set("X-Why", "refused")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "no websocket for you")
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer func() { c.Close(); b.closed <- struct{}{} }()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\nX-Backend: ws\r\n\r\n")
		brw.Flush()
		for {
			op, p, err := wsRead(brw)
			if err != nil || op == 8 || string(p) == "close-now" {
				return
			}
			if wsWrite(c, op, p, false) != nil {
				return
			}
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *wsBackend) takeHeads() []http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.heads
	b.heads = nil
	return h
}

const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

// wsDial sends a handshake for path to the edge, with extra header
// lines, and returns the connection and the edge's answer.
func wsDial(t *testing.T, addr, path, extra string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+wsKey+"\r\n"+extra+"\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("handshake %s: %v", path, err)
	}
	return c, br, res
}

// TestAgentWebSocket: a websocket route with via carries the upgrade
// through the agent as one stream: the handshake reaches the backend,
// messages of every frame length go both ways intact after the route's
// timeout (it bounds the handshake only), a backend closing its
// connection closes the client's, a client closing closes the backend's,
// a backend refusing the upgrade gives the client its answer, and the
// agent's egress.allow refuses an upgrade to a target it does not list.
func TestAgentWebSocket(t *testing.T) {
	ws := newWSBackend(t)
	outside := newWSBackend(t)
	e := startAgentEdge(t, "  - {path: /ws/*, target: '"+ws.srv.URL+"/', via: ci, websocket: true, timeout: 300ms}\n"+
		"  - {path: /denied/*, target: '"+outside.srv.URL+"/', via: ci, websocket: true}\n")
	runTestAgent(t, e, "ci", agentToken, "127.0.0.1/32:"+portOf(ws.srv.URL))
	waitUntil(t, "the agent's tunnels", func() bool { return e.s.agents.Connected("ci") > 0 })

	c, br, res := wsDial(t, e.s.Addr(), "/ws/echo", "Drawbridge-Upgrade: h2c\r\n")
	if res.StatusCode != 101 || res.Header.Get("Upgrade") != "websocket" || res.Header.Get("Sec-WebSocket-Accept") != wsAccept(wsKey) ||
		res.Header.Get("X-Backend") != "ws" || res.Header.Get(tunnel.UpgradeHeader) != "" {
		t.Fatalf("handshake: %d %v", res.StatusCode, res.Header)
	}
	heads := ws.takeHeads()
	if len(heads) != 1 || heads[0].Get("Upgrade") != "websocket" || heads[0].Get("Connection") != "Upgrade" ||
		heads[0].Get("Sec-WebSocket-Key") != wsKey || heads[0].Get(tunnel.UpgradeHeader) != "" || heads[0].Get("X-Request-Id") == "" {
		t.Fatalf("the backend's handshake: %v", heads)
	}
	time.Sleep(400 * time.Millisecond) // past the route's timeout: it bounded the handshake only
	for _, n := range []int{0, 5, 125, 126, 70 << 10, 3 << 20} {
		msg := bytes.Repeat([]byte{byte('a' + n%26)}, n)
		rand.Read(msg[:n/2])
		if err := wsWrite(c, 2, msg, true); err != nil {
			t.Fatal(err)
		}
		op, got, err := wsRead(br)
		if err != nil || op != 2 || !bytes.Equal(got, msg) {
			t.Fatalf("echo of %d bytes: op %d, %d bytes, %v", n, op, len(got), err)
		}
	}
	// Both ways at once, past the stream's flow-control windows: a
	// writer that never waits for the echoes.
	msgs := make([][]byte, 24)
	for i := range msgs {
		msgs[i] = make([]byte, 256<<10)
		rand.Read(msgs[i])
	}
	werr := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			if err := wsWrite(c, 2, m, true); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	for i, m := range msgs {
		if _, got, err := wsRead(br); err != nil || !bytes.Equal(got, m) {
			t.Fatalf("concurrent echo %d: %d bytes, %v", i, len(got), err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}

	// The backend closes: the client's connection ends.
	wsWrite(c, 1, []byte("close-now"), true)
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("after the backend closed: %v", err)
	}
	<-ws.closed

	// The client closes: the backend's connection ends.
	c, br, res = wsDial(t, e.s.Addr(), "/ws/echo", "")
	if res.StatusCode != 101 {
		t.Fatalf("second handshake: %d", res.StatusCode)
	}
	wsWrite(c, 1, []byte("hello"), true)
	if _, p, err := wsRead(br); err != nil || string(p) != "hello" {
		t.Fatalf("echo: %q %v", p, err)
	}
	c.Close()
	select {
	case <-ws.closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the backend's connection outlived the client's")
	}
	ws.takeHeads()

	// A backend that refuses the upgrade: its answer, as it is.
	_, br, res = wsDial(t, e.s.Addr(), "/ws/refuse", "")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 403 || string(body) != "no websocket for you" || res.Header.Get("X-Why") != "refused" {
		t.Errorf("refused upgrade: %d %v %q", res.StatusCode, res.Header, body)
	}

	// A target outside the agent's egress.allow: refused, as any request.
	_, _, res = wsDial(t, e.s.Addr(), "/denied/x", "")
	body, _ = io.ReadAll(res.Body)
	if res.StatusCode != 502 || string(body) != `{"message":"Bad Gateway"}` {
		t.Errorf("denied upgrade: %d %q", res.StatusCode, body)
	}
	if n := e.requests("/denied/*", "GET", metrics.EgressDenied); n != 1 {
		t.Errorf("egress_denied count = %v", n)
	}
	if h := outside.takeHeads(); len(h) != 0 {
		t.Errorf("the agent dialed a target outside its egress.allow: %v", h)
	}
	waitUntil(t, "the streams to end", func() bool { return streamsOf(e, "ci") == 0 })
}

// streamsOf is how many streams the tunnels of name have in flight.
func streamsOf(e *agentEdge, name string) (n int64) {
	for _, a := range e.s.agents.Snapshot() {
		if a.Name == name {
			for _, t := range a.Tunnels {
				n += t.Streams
			}
		}
	}
	return n
}

// TestAgentStripsUpgradeMarker: the header that marks an upgrade on the
// tunnel is the edge's alone. A client's copy, on a plain via route or
// on a websocket route's ordinary request, never reaches the agent as a
// marker: the backend gets an ordinary request without it, and the
// client an ordinary answer.
func TestAgentStripsUpgradeMarker(t *testing.T) {
	ws := newWSBackend(t)
	e := startAgentEdge(t, "  - {path: /plain/*, target: '"+ws.srv.URL+"/', via: ci}\n"+
		"  - {path: /ws/*, target: '"+ws.srv.URL+"/', via: ci, websocket: true}\n")
	runTestAgent(t, e, "ci", agentToken, "127.0.0.1/32:"+portOf(ws.srv.URL))
	waitUntil(t, "the agent's tunnels", func() bool { return e.s.agents.Connected("ci") > 0 })

	// A plain route: the client's Upgrade is stripped, and so is its marker.
	_, _, res := wsDial(t, e.s.Addr(), "/plain/x", tunnel.UpgradeHeader+": websocket\r\n")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "no upgrade" {
		t.Errorf("plain route: %d %q", res.StatusCode, body)
	}
	for _, path := range []string{"/plain/y", "/ws/y"} {
		req, _ := http.NewRequest("GET", e.url(path), nil)
		req.Header.Set(tunnel.UpgradeHeader, "websocket")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "no upgrade" {
			t.Errorf("%s with a marker: %d %q", path, res.StatusCode, body)
		}
	}
	heads := ws.takeHeads()
	if len(heads) != 3 {
		t.Fatalf("the backend got %d requests", len(heads))
	}
	for i, h := range heads {
		if h.Get("Upgrade") != "" || h.Get(tunnel.UpgradeHeader) != "" || strings.Contains(h.Get("Connection"), "pgrade") {
			t.Errorf("request %d reached the backend with %v", i, h)
		}
	}
}

// TestAgentWebSocketEnds: the route's timeout bounds the handshake
// through an agent (504, and the agent gives up on the target), and an
// agent that dies mid-session ends the client's connection.
func TestAgentWebSocketEnds(t *testing.T) {
	ws := newWSBackend(t)
	e := startAgentEdge(t, "  - {path: /ws/*, target: '"+ws.srv.URL+"/', via: ci, websocket: true, timeout: 300ms}\n")
	a, _ := agentProcess(t, e.dir, e.s.AgentsAddr(), e.ca, "127.0.0.1/32:"+portOf(ws.srv.URL))
	waitUntil(t, "the agent's tunnel", func() bool { return e.s.agents.Connected("ci") > 0 })

	_, _, res := wsDial(t, e.s.Addr(), "/ws/hang", "")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 504 || string(body) != `{"message":"Endpoint request timed out"}` {
		t.Errorf("handshake past the route timeout: %d %q", res.StatusCode, body)
	}
	select {
	case <-ws.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent kept waiting for the handshake after the edge gave up")
	}

	c, br, res := wsDial(t, e.s.Addr(), "/ws/echo", "")
	if res.StatusCode != 101 {
		t.Fatalf("handshake: %d", res.StatusCode)
	}
	wsWrite(c, 1, []byte("before"), true)
	if _, p, err := wsRead(br); err != nil || string(p) != "before" {
		t.Fatalf("echo: %q %v", p, err)
	}
	a.Process.Kill()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the client's connection outlived the agent")
	}
	select {
	case <-ws.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend's connection outlived the agent")
	}
}

// TestAgentWebSocketDrain: a stopping agent treats an open session as a
// request in flight: it keeps carrying messages after the GOAWAY, and is
// closed when the drain bound passes.
func TestAgentWebSocketDrain(t *testing.T) {
	ws := newWSBackend(t)
	e := startAgentEdge(t, "  - {path: /ws/*, target: '"+ws.srv.URL+"/', via: ci, websocket: true}\n")
	cfg := &config.AgentConfig{File: "agent.yaml", Edge: "https://" + e.s.AgentsAddr(), Name: "ci", Token: agentToken,
		CA: e.ca, Connections: 1, Egress: config.Egress{Allow: []string{"127.0.0.1/32:" + portOf(ws.srv.URL)}}}
	a, err := agent.New(cfg, agent.Options{Drain: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitUntil(t, "the agent's tunnel", func() bool { return e.s.agents.Connected("ci") > 0 })

	c, br, res := wsDial(t, e.s.Addr(), "/ws/echo", "")
	if res.StatusCode != 101 {
		t.Fatalf("handshake: %d", res.StatusCode)
	}
	t0 := time.Now()
	cancel() // the agent stops: GOAWAY, then the drain
	waitUntil(t, "the GOAWAY", func() bool { code, _ := get(t, e.url("/ws/plain")); return code == 502 })
	wsWrite(c, 1, []byte("draining"), true)
	if _, p, err := wsRead(br); err != nil || string(p) != "draining" {
		t.Fatalf("echo while the agent drains: %q %v", p, err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("after the drain: %v", err)
	}
	if d := time.Since(t0); d < 400*time.Millisecond || d > 10*time.Second {
		t.Errorf("the session ended %v after the stop, want at the drain bound (500ms)", d)
	}
	<-done
	<-ws.closed
}
