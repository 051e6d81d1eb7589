// Package tunnel is the edge's side of agent tunnels (docs/agent.md): the
// agents listener, the credentials, the registry of connected tunnels and
// the http.RoundTripper that sends a via route's requests through them.
//
// An agent opens a TLS connection to the edge and sends one HTTP/1.1
// request, the hello, naming itself and carrying its token. The edge
// answers 101 Switching Protocols, or 401 and closes. From then on the
// roles are reversed: the edge is the HTTP/2 client on the connection the
// agent opened (golang.org/x/net/http2's ClientConn) and the agent is the
// HTTP/2 server, so every request the edge sends is one stream, with
// HTTP/2's flow control and cancellation (RST_STREAM).
package tunnel

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

const (
	// HelloPath is the hello's request path.
	HelloPath = "/.well-known/drawbridge-agent"
	// Upgrade is the protocol the hello asks to switch to.
	Upgrade = "drawbridge-tunnel/1"
	// NameHeader carries the agent's name in the hello.
	NameHeader = "Drawbridge-Agent"
	// ErrorHeader is set by the agent on an answer it made itself because
	// it did not reach the target; the value says why (ErrEgressDenied,
	// ErrUnreachable, ErrTimeout). The edge turns such an answer into an
	// error and never relays it.
	ErrorHeader = "Drawbridge-Agent-Error"

	// UpgradeHeader marks a stream as an Upgrade request (a websocket
	// route's handshake), whose value is the protocol asked for: HTTP/2
	// has no 101 and forbids the Upgrade header, so the edge carries the
	// upgrade as one full-duplex stream (transport.go) and the agent
	// answers a 101 of its target with 200 and this header holding the
	// protocol the target switched to. The edge removes any copy a client
	// sent before it sets its own.
	UpgradeHeader = "Drawbridge-Upgrade"

	ErrEgressDenied = "egress_denied"
	ErrUnreachable  = "unreachable"
	ErrTimeout      = "timeout"
)

// ErrRefused is the agent's hello error when the edge refused its
// credential (401).
var ErrRefused = errors.New("edge refused the agent's credential")

// Conn is a tunnel's connection after the hello: reads come first from
// what the hello's reader buffered. It keeps the TLS state visible
// (ConnectionState), so the HTTP/2 server on the agent marks requests
// whose :scheme is https as TLS (the agent dials https for them).
// Writes are batched (batch.go).
type Conn struct {
	*tls.Conn
	r io.Reader
	w *batchWriter
}

func (c *Conn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *Conn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *Conn) Close() error                { return c.w.Close() }

// Hello is the agent's half of the hello on an established TLS
// connection: it names the agent and presents token (empty: the TLS
// client certificate is the credential). The connection returned carries
// HTTP/2 with the edge as the client.
func Hello(tc *tls.Conn, host, name, token string, timeout time.Duration) (*Conn, error) {
	tc.SetDeadline(time.Now().Add(timeout))
	req := "GET " + HelloPath + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: Upgrade\r\nUpgrade: " + Upgrade +
		"\r\n" + NameHeader + ": " + name + "\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(tc, req+"\r\n"); err != nil {
		return nil, err
	}
	br := bufio.NewReader(tc)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	res.Body.Close()
	switch {
	case res.StatusCode == http.StatusUnauthorized:
		return nil, ErrRefused
	case res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != Upgrade:
		return nil, fmt.Errorf("hello: edge answered %s", res.Status)
	}
	tc.SetDeadline(time.Time{})
	return &Conn{Conn: tc, r: io.MultiReader(io.LimitReader(br, int64(br.Buffered())), tc), w: newBatchWriter(tc)}, nil
}

// NetConn is the connection below c, for tests.
func (c *Conn) NetConn() net.Conn { return c.Conn }
