package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"

	"github.com/drawbridge/drawbridge/internal/agent"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/tunnel"
)

const (
	agentToken = "agent-token-0123456789abcdef"
	otherToken = "other-token-0123456789abcdef"
)

// agentEdge is an edge (serve, in process) with an agents listener.
type agentEdge struct {
	s    *Server
	dir  string
	path string
	ca   string // PEM file the agents trust
	log  *syncBuffer
}

func sha(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }

// startAgentEdge starts serve with cfg's routes (YAML under routes:) and
// an agents block admitting ci with agentToken and billing with
// otherToken.
func startAgentEdge(t *testing.T, routes string) *agentEdge {
	t.Helper()
	ca := newCA(t, "edge-ca")
	dir := t.TempDir()
	c, k := ca.leaf(t, true)
	writeFile(t, dir, "cert.pem", c)
	writeFile(t, dir, "key.pem", k)
	e := &agentEdge{dir: dir, ca: writeFile(t, dir, "ca.pem", ca.pem), log: &syncBuffer{}}
	e.path = writeFile(t, dir, "drawbridge.yaml", []byte(edgeYAML(agentToken, routes)))
	s, err := Start(e.path, slog.New(slog.NewJSONHandler(e.log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	e.s = s
	return e
}

func edgeYAML(ciToken, routes string) string {
	return "listen: 127.0.0.1:0\nadmin: 'off'\nstate: {driver: memory}\n" +
		"agents:\n  listen: 127.0.0.1:0\n  tls: {cert: cert.pem, key: key.pem}\n  tokens:\n" +
		"    - {name: ci, sha256: " + sha(ciToken) + "}\n    - {name: billing, sha256: " + sha(otherToken) + "}\n" +
		"routes:\n" + routes
}

func (e *agentEdge) url(path string) string { return "http://" + e.s.Addr() + path }

// requests counts drawbridge_requests_total for route and outcome.
func (e *agentEdge) requests(route, method string, o metrics.Outcome) float64 {
	return testutil.ToFloat64(e.s.metrics.Requests.WithLabelValues(route, method, string(o)))
}

// runTestAgent runs an in-process agent named name with token, allowed to
// dial allow, until the test ends or stop is called.
func runTestAgent(t *testing.T, e *agentEdge, name, token string, allow ...string) (a *agent.Agent, log *syncBuffer, stop func()) {
	t.Helper()
	cfg := &config.AgentConfig{File: "agent.yaml", Edge: "https://" + e.s.AgentsAddr(), Name: name, Token: token,
		CA: e.ca, Connections: 2, Egress: config.Egress{Allow: allow}}
	log = &syncBuffer{}
	a, err := agent.New(cfg, agent.Options{Log: slog.New(slog.NewJSONHandler(log, nil)), Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return a, log, stop
}

// waitUntil polls cond (the machine may be slow: generous bound).
func waitUntil(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > 20*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(t0)
}

// echoBackend records what it received and answers with it.
type echoBackend struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []seen
}

func newEchoBackend(t *testing.T) *echoBackend {
	b := &echoBackend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		b.mu.Lock()
		b.seen = append(b.seen, seen{r.Method, r.RequestURI, r.Host, r.Header.Clone(), string(body), err})
		b.mu.Unlock()
		w.Header().Set("X-Backend", "yes")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(201)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.RequestURI, body)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *echoBackend) take() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.seen
	b.seen = nil
	return s
}

func hostPortOf(u string) string { return strings.TrimPrefix(u, "http://") }

// The differential rows: what a client sends, sent once through a direct
// route and once through the same target via an agent; the backend must
// see the same request and the client the same answer.
var agentRows = []struct {
	method, path, body string
	header             http.Header
}{
	{"GET", "/?a=1&b=%2F;c", "", nil},
	{"POST", "/sub/path?x=%20y", "hello body", http.Header{"Content-Type": {"text/plain"}, "X-Multi": {"1", "2"}}},
	{"PUT", "/p", strings.Repeat("z", 200<<10), http.Header{"Accept-Encoding": {"gzip"}, "User-Agent": {"probe/1"}}},
	{"DELETE", "/d", "", http.Header{"X-Api-Key": {"secret"}, "X-Forwarded-For": {"6.6.6.6"}, "Cookie": {"c=1; d=2"}}},
	{"PATCH", "/e%20space", "{}", http.Header{"Connection": {"X-Hop"}, "X-Hop": {"gone"}, "Te": {"trailers"}}},
	{"HEAD", "/h", "", nil},
	{"OPTIONS", "/o", "", http.Header{"Idempotency-Key": {"k1"}}},
}

func TestAgentViaRouteMatchesDirect(t *testing.T) {
	b := newEchoBackend(t)
	e := startAgentEdge(t, "  - {path: /direct/*, target: '"+b.srv.URL+"/base/', timeout: 10s}\n"+
		"  - {path: /via/*, target: '"+b.srv.URL+"/base/', timeout: 10s, via: ci}\n")

	// No agent yet: 502 Bad Gateway, outcome agent_unavailable.
	res, err := http.Get(e.url("/via/x"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 502 || string(body) != `{"message":"Bad Gateway"}` {
		t.Fatalf("no agent: %d %s", res.StatusCode, body)
	}
	if n := e.requests("/via/*", "GET", metrics.AgentUnavailable); n != 1 {
		t.Fatalf("agent_unavailable count = %v", n)
	}
	if len(b.take()) != 0 {
		t.Fatal("the backend was reached without an agent")
	}

	_, alog, _ := runTestAgent(t, e, "ci", agentToken, "127.0.0.1/32:"+portOf(b.srv.URL))
	waitUntil(t, "the agent's tunnels", func() bool { return e.s.agents.Connected("ci") == 2 })

	for _, row := range agentRows {
		var got [2]seen
		var answers [2]string
		for i, prefix := range []string{"/direct", "/via"} {
			req, _ := http.NewRequest(row.method, e.url(prefix+row.path), strings.NewReader(row.body))
			for k, vs := range row.header {
				req.Header[k] = vs
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", row.method, prefix+row.path, err)
			}
			rb, _ := io.ReadAll(res.Body)
			res.Body.Close()
			h := res.Header.Clone()
			for _, k := range []string{"Date", "X-Amzn-Requestid", "X-Amz-Apigw-Id", "Apigw-Requestid"} {
				delete(h, k)
			}
			answers[i] = fmt.Sprintf("%d %v %q", res.StatusCode, h, rb)
			s := b.take()
			if len(s) != 1 {
				t.Fatalf("%s %s: backend saw %d requests", row.method, prefix+row.path, len(s))
			}
			s[0].header.Del("X-Request-Id") // one per request
			got[i] = s[0]
		}
		d, v := got[0], got[1]
		if d.method != v.method || d.uri != v.uri || d.host != v.host || d.body != v.body || fmt.Sprint(d.header) != fmt.Sprint(v.header) {
			t.Errorf("%s %s: backend saw\ndirect %s %s %s %v %d bytes\nvia    %s %s %s %v %d bytes",
				row.method, row.path, d.method, d.uri, d.host, d.header, len(d.body), v.method, v.uri, v.host, v.header, len(v.body))
		}
		if answers[0] != answers[1] {
			t.Errorf("%s %s: client got\ndirect %s\nvia    %s", row.method, row.path, answers[0], answers[1])
		}
	}
	if n := e.requests("/via/*", "POST", metrics.Forwarded); n != 1 {
		t.Errorf("forwarded POST count = %v", n)
	}
	for _, l := range []string{e.log.String(), alog.String()} {
		if strings.Contains(l, agentToken) {
			t.Error("the token is in a log")
		}
	}
}

func portOf(u string) string {
	_, p, _ := net.SplitHostPort(hostPortOf(u))
	return p
}

func TestAgentRefusesTargetOutsideEgress(t *testing.T) {
	allowed := newEchoBackend(t)
	other := newEchoBackend(t)
	e := startAgentEdge(t, "  - {path: /other, target: '"+other.srv.URL+"/', via: ci}\n")
	_, alog, _ := runTestAgent(t, e, "ci", agentToken, "127.0.0.1/32:"+portOf(allowed.srv.URL))
	waitUntil(t, "the agent's tunnels", func() bool { return e.s.agents.Connected("ci") > 0 })
	code, body := get(t, e.url("/other"))
	if code != 502 || body != `{"message":"Bad Gateway"}` {
		t.Fatalf("got %d %s", code, body)
	}
	if n := e.requests("/other", "GET", metrics.EgressDenied); n != 1 {
		t.Errorf("egress_denied count = %v", n)
	}
	if len(other.take()) != 0 {
		t.Error("the agent dialed a target outside its egress.allow")
	}
	if !strings.Contains(alog.String(), "egress_denied") || !strings.Contains(e.log.String(), "egress denied") {
		t.Errorf("the reason is not in both logs:\nagent: %s\nedge: %s", alog, e.log)
	}

	// An edge that asks anyway (its own RoundTripper, no gateway in
	// between): still refused by the agent.
	req, _ := http.NewRequest("GET", other.srv.URL+"/direct-ask", nil)
	_, err := e.s.agents.Transport("ci").RoundTrip(req)
	if err == nil || !strings.Contains(err.Error(), "egress denied") {
		t.Fatalf("edge asking directly: err = %v", err)
	}
	if len(other.take()) != 0 {
		t.Error("the agent dialed a target outside its egress.allow")
	}
}

func TestAgentCredentials(t *testing.T) {
	b := newEchoBackend(t)
	e := startAgentEdge(t, "  - {path: /x, target: '"+b.srv.URL+"/', via: ci}\n")
	allow := "127.0.0.1/32:" + portOf(b.srv.URL)

	// A wrong token, and billing's token under the name ci: refused.
	_, wrongLog, stopWrong := runTestAgent(t, e, "ci", "wrong-token-0123456789", allow)
	_, stolenLog, stopStolen := runTestAgent(t, e, "billing", agentToken, allow)
	waitUntil(t, "refusals", func() bool {
		return strings.Count(wrongLog.String(), "refused") >= 2 && strings.Count(stolenLog.String(), "refused") >= 2
	})
	if e.s.agents.Connected("ci") != 0 || e.s.agents.Connected("billing") != 0 {
		t.Fatal("an agent with a wrong credential was registered")
	}
	stopWrong()
	stopStolen()

	// Plain HTTP on the agents listener: no answer but a closed connection.
	c, err := net.Dial("tcp", e.s.AgentsAddr())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET "+tunnel.HelloPath+" HTTP/1.1\r\nHost: x\r\nUpgrade: "+tunnel.Upgrade+"\r\n"+tunnel.NameHeader+": ci\r\nAuthorization: Bearer "+agentToken+"\r\n\r\n")
	got, _ := io.ReadAll(c)
	c.Close()
	if strings.Contains(string(got), "HTTP/1.1 101") || e.s.agents.Connected("ci") != 0 {
		t.Fatalf("plain HTTP hello accepted: %q", got)
	}

	// The right token connects; revoking it on reload closes its tunnels
	// within a second.
	a, alog, _ := runTestAgent(t, e, "ci", agentToken, allow)
	waitUntil(t, "the agent's tunnels", func() bool { return e.s.agents.Connected("ci") == 2 && a.Connected() == 2 })
	if code, _ := get(t, e.url("/x")); code != 201 {
		t.Fatalf("via the agent: %d", code)
	}
	writeConfig(t, e.path, edgeYAML("a-new-token-0123456789abcdef", "  - {path: /x, target: '"+b.srv.URL+"/', via: ci}\n"))
	t0 := time.Now()
	if err := e.s.Reload(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the revoked tunnels to close", func() bool { return e.s.agents.Connected("ci") == 0 && a.Connected() == 0 })
	if d := time.Since(t0); d > time.Second {
		t.Errorf("revoked tunnels closed %v after the reload, want within 1s", d)
	}
	t.Logf("revoked tunnels closed %v after the reload", time.Since(t0))
	for _, l := range []string{e.log.String(), alog.String(), wrongLog.String(), stolenLog.String()} {
		if strings.Contains(l, agentToken) || strings.Contains(l, otherToken) {
			t.Error("a token is in a log")
		}
	}
}

func TestAgentTimeoutAndCancel(t *testing.T) {
	entered := make(chan struct{}, 4)
	canceled := make(chan time.Time, 4)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-r.Context().Done():
			canceled <- time.Now()
		case <-time.After(30 * time.Second):
		}
	}))
	defer slow.Close()
	e := startAgentEdge(t, "  - {path: /slow, target: '"+slow.URL+"/', timeout: 500ms, via: ci}\n"+
		"  - {path: /long, target: '"+slow.URL+"/', timeout: 60s, via: ci}\n")
	runTestAgent(t, e, "ci", agentToken, "127.0.0.1/32:"+portOf(slow.URL))
	waitUntil(t, "the agent's tunnels", func() bool { return e.s.agents.Connected("ci") > 0 })

	code, body := get(t, e.url("/slow"))
	if code != 504 || body != `{"message":"Endpoint request timed out"}` {
		t.Fatalf("route timeout: %d %s", code, body)
	}
	<-entered
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the route timeout did not cancel the backend request")
	}

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url("/long"), nil)
	go http.DefaultClient.Do(req)
	<-entered
	t0 := time.Now()
	cancel()
	select {
	case at := <-canceled:
		d := at.Sub(t0)
		t.Logf("client disconnect reached the backend in %v", d)
		if d > time.Second {
			t.Errorf("client disconnect cancelled the backend after %v, want within 1s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client disconnect did not cancel the backend request")
	}
}

// TestAgentAsyncWaitsForAnAgent: an async signed webhook route via an
// agent accepts events while no agent is connected; once one connects,
// every event is delivered exactly once, in order.
func TestAgentAsyncWaitsForAnAgent(t *testing.T) {
	const secret = "gh-secret-for-the-agent-test"
	t.Setenv("DB_AGENT_TEST_GH_SECRET", secret)
	var mu sync.Mutex
	var got []string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}))
	defer backend.Close()
	const n = 50
	e := startSignedAsyncEdge(t, backend.URL, secret, "d", n)
	time.Sleep(300 * time.Millisecond) // several retry rounds with no agent
	mu.Lock()
	early := len(got)
	mu.Unlock()
	if early != 0 {
		t.Fatalf("%d events delivered with no agent connected", early)
	}
	runTestAgent(t, e, "ci", agentToken, "127.0.0.1/32:"+portOf(backend.URL))
	waitUntil(t, "every event", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= n })
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("%d deliveries for %d events", len(got), n)
	}
	for i, b := range got {
		if want := fmt.Sprintf(`{"n":%d}`, i); b != want {
			t.Fatalf("delivery %d is %s, want %s (order: %v)", i, b, want, got)
		}
	}
}

func hmacHex(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

// startAgentEdgeState is startAgentEdge with the embedded state driver
// (async routes need a durable queue).
func startAgentEdgeState(t *testing.T, routes string) *agentEdge {
	t.Helper()
	ca := newCA(t, "edge-ca")
	dir := t.TempDir()
	c, k := ca.leaf(t, true)
	writeFile(t, dir, "cert.pem", c)
	writeFile(t, dir, "key.pem", k)
	e := &agentEdge{dir: dir, ca: writeFile(t, dir, "ca.pem", ca.pem), log: &syncBuffer{}}
	text := strings.Replace(edgeYAML(agentToken, routes), "state: {driver: memory}", "state: {driver: embedded, path: "+dir+"/state.db}", 1)
	e.path = writeFile(t, dir, "drawbridge.yaml", []byte(text))
	s, err := Start(e.path, slog.New(slog.NewJSONHandler(e.log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	e.s = s
	return e
}

// agentProcess runs `drawbridge agent` against the edge at agentsAddr.
func agentProcess(t *testing.T, dir, agentsAddr, caFile, allow string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	path := writeFile(t, dir, fmt.Sprintf("agent-%d.yaml", time.Now().UnixNano()), []byte("edge: https://"+agentsAddr+"\nname: ci\ntoken_env: DRAWBRIDGE_AGENT_TOKEN\n"+
		"ca: "+caFile+"\nconnections: 1\nadmin: 'off'\negress: {allow: ['"+allow+"']}\n"))
	cmd := exec.Command(drawbridgeBinary(t), "agent", "-c", path)
	cmd.Env = append(os.Environ(), "DRAWBRIDGE_AGENT_TOKEN="+agentToken)
	log := &syncBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, log
}

// TestAgentFailoverAndReconnect: two agents share a name; SIGKILL of one
// under load fails no idempotent request; after an edge restart the
// survivor reconnects within 5 s, its backoff jitter in its log.
func TestAgentFailoverAndReconnect(t *testing.T) {
	b := newEchoBackend(t)
	e := startAgentEdge(t, "  - {path: /x/*, target: '"+b.srv.URL+"/', timeout: 10s, via: ci}\n")
	allow := "127.0.0.1/32:" + portOf(b.srv.URL)
	a1, _ := agentProcess(t, e.dir, e.s.AgentsAddr(), e.ca, allow)
	_, log2 := agentProcess(t, e.dir, e.s.AgentsAddr(), e.ca, allow)
	waitUntil(t, "both agents", func() bool { return e.s.agents.Connected("ci") == 2 })

	var sent sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	stop := make(chan struct{})
	ok := 0
	for w := range 8 {
		sent.Add(1)
		go func() {
			defer sent.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := http.Get(e.url(fmt.Sprintf("/x/%d/%d", w, i)))
				mu.Lock()
				if err != nil {
					bad = append(bad, err.Error())
				} else {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 201 {
						bad = append(bad, res.Status)
					} else {
						ok++
					}
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	a1.Process.Kill() // SIGKILL mid-load
	waitUntil(t, "the killed agent's tunnel to go", func() bool { return e.s.agents.Connected("ci") == 1 })
	time.Sleep(300 * time.Millisecond)
	close(stop)
	sent.Wait()
	b.take()
	if len(bad) > 0 {
		t.Fatalf("%d of %d idempotent requests failed across the SIGKILL: %v", len(bad), ok+len(bad), bad[:min(len(bad), 5)])
	}
	t.Logf("%d requests, none failed, across the SIGKILL of one agent", ok)

	// Restart the edge on the same agents address.
	addr := e.s.AgentsAddr()
	e.s.Shutdown()
	text := strings.Replace(edgeYAML(agentToken, "  - {path: /x/*, target: '"+b.srv.URL+"/', timeout: 10s, via: ci}\n"),
		"listen: 127.0.0.1:0\n  tls", "listen: "+addr+"\n  tls", 1)
	writeConfig(t, e.path, text)
	time.Sleep(200 * time.Millisecond) // the agent notices and backs off
	s, err := Start(e.path, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	d := waitUntil(t, "the agent to reconnect", func() bool { return s.agents.Connected("ci") == 1 })
	t.Logf("agent reconnected %v after the edge restarted", d)
	if d > 5*time.Second {
		t.Errorf("reconnect took %v, want within 5s", d)
	}
	if code, _ := get(t, "http://"+s.Addr()+"/x/after"); code != 201 {
		t.Errorf("after the restart: %d", code)
	}
	if !strings.Contains(log2.String(), `"in_ms"`) {
		t.Errorf("no backoff in the agent's log:\n%s", log2)
	}
}

// gaugeValue reads a gauge or counter of the edge's registry by name and
// one label pair.
func gaugeValue(t *testing.T, e *agentEdge, metric, label, value string) float64 {
	t.Helper()
	mfs, err := e.s.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if m.Gauge != nil {
						return m.GetGauge().GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// TestAgentMalformedFramesCloseOnlyThatTunnel: an authenticated peer
// that sends a protocol violation after the hello loses its own tunnel;
// the other agent's tunnels keep serving.
func TestAgentMalformedFramesCloseOnlyThatTunnel(t *testing.T) {
	b := newEchoBackend(t)
	e := startAgentEdge(t, "  - {path: /x, target: '"+b.srv.URL+"/', via: ci}\n")
	runTestAgent(t, e, "ci", agentToken, "127.0.0.1/32:"+portOf(b.srv.URL))
	waitUntil(t, "the agent's tunnels", func() bool { return e.s.agents.Connected("ci") == 2 })
	if v := gaugeValue(t, e, "drawbridge_agents", "name", "ci"); v != 2 {
		t.Errorf("drawbridge_agents{name=ci} = %v", v)
	}

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(e.ca)
	pool.AppendCertsFromPEM(caPEM)
	raw, err := tls.Dial("tcp", e.s.AgentsAddr(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c, err := tunnel.Hello(raw, e.s.AgentsAddr(), "ci", agentToken, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the rogue tunnel", func() bool { return e.s.agents.Connected("ci") == 3 })
	fr := http2.NewFramer(c, c)
	fr.AllowIllegalWrites = true
	fr.WriteSettings()
	fr.WriteData(0, false, []byte("data on stream 0 is a connection error")) // RFC 9113 §6.1
	fr.WriteRawFrame(0xff, 0, 0, []byte{1, 2, 3})
	waitUntil(t, "the rogue tunnel to close", func() bool { return e.s.agents.Connected("ci") == 2 })
	for range 20 {
		if code, _ := get(t, e.url("/x")); code != 201 {
			t.Fatalf("after the rogue tunnel closed: %d", code)
		}
	}
}

// TestAgentMutualTLS: a client_ca credential admits the agent whose
// certificate names it, and no other name.
func TestAgentMutualTLS(t *testing.T) {
	b := newEchoBackend(t)
	clients := newCA(t, "agents-ca")
	e := startAgentEdge(t, "  - {path: /x, target: '"+b.srv.URL+"/', via: ci}\n")
	writeFile(t, e.dir, "clients.pem", clients.pem)
	text := strings.Replace(edgeYAML(agentToken, "  - {path: /x, target: '"+b.srv.URL+"/', via: ci}\n"),
		"    - {name: ci, sha256: "+sha(agentToken)+"}\n", "    - {name: ci, client_ca: clients.pem}\n", 1)
	writeConfig(t, e.path, text)
	e.s.Shutdown()
	s, err := Start(e.path, slog.New(slog.NewJSONHandler(e.log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	e.s = s

	for _, c := range []struct {
		cn, name string
		ok       bool
	}{{"ci", "ci", true}, {"billing", "billing", false}, {"ci", "billing", false}} {
		cert, key := clientLeaf(t, clients, c.cn)
		cfg := &config.AgentConfig{File: "agent.yaml", Edge: "https://" + s.AgentsAddr(), Name: c.name, CA: e.ca, Connections: 1,
			Cert: writeFile(t, e.dir, c.cn+"-cert.pem", cert), Key: writeFile(t, e.dir, c.cn+"-key.pem", key),
			Egress: config.Egress{Allow: []string{"127.0.0.1/32:" + portOf(b.srv.URL)}}}
		log := &syncBuffer{}
		a, err := agent.New(cfg, agent.Options{Log: slog.New(slog.NewJSONHandler(log, nil)), Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { a.Run(ctx); close(done) }()
		if c.ok {
			waitUntil(t, "the mTLS agent", func() bool { return s.agents.Connected("ci") == 1 })
			if code, _ := get(t, e.url("/x")); code != 201 {
				t.Errorf("via the mTLS agent: %d", code)
			}
		} else {
			waitUntil(t, "a refusal", func() bool { return strings.Contains(log.String(), "refused") })
			if s.agents.Connected(c.name) != 0 {
				t.Errorf("certificate for %s registered as %s", c.cn, c.name)
			}
		}
		cancel()
		<-done
	}
}

// clientLeaf is a client certificate of ca with Common Name cn.
func clientLeaf(t *testing.T, ca *testCA, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// vmHWM is a process's peak resident set size, from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			var kb int64
			fmt.Sscan(f[1], &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestAgentStreamsLargeBodies: 100 MiB up through the tunnel and 100 MiB
// down through a via route, with the agent's peak RSS and the edge's
// peak heap far below the size moved (bodies stream; HTTP/2 flow control
// bounds what either end holds). The edge's gateway buffers request
// bodies by design (limits.max_body_bytes), so the upload goes through
// the tunnel's RoundTripper, as a sender that streams would.
func TestAgentStreamsLargeBodies(t *testing.T) {
	size := int64(100 << 20)
	if raceEnabled {
		size = 32 << 20
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, n)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.Copy(w, io.LimitReader(zeros{}, size))
	}))
	defer backend.Close()
	e := startAgentEdge(t, "  - {path: /big, target: '"+backend.URL+"/', timeout: 120s, via: ci}\n")
	ag, _ := agentProcess(t, e.dir, e.s.AgentsAddr(), e.ca, "127.0.0.1/32:"+portOf(backend.URL))
	waitUntil(t, "the agent", func() bool { return e.s.agents.Connected("ci") == 1 })

	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	t0 := time.Now()
	req, _ := http.NewRequest("PUT", backend.URL+"/up", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	res, err := e.s.agents.Transport("ci").RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(got) != fmt.Sprint(size) {
		t.Fatalf("upload: backend read %s bytes, want %d", got, size)
	}
	up := time.Since(t0)

	t0 = time.Now()
	res, err = http.Get(e.url("/big"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, err %v", n, err)
	}
	down := time.Since(t0)
	close(stop)
	<-sampled

	agentPeak := vmHWM(t, ag.Process.Pid)
	t.Logf("%d MiB up in %v, down in %v; agent peak RSS %.1f MiB; edge (test process) peak heap %.1f MiB (%.1f MiB before)",
		size>>20, up, down, float64(agentPeak)/(1<<20), float64(peak)/(1<<20), float64(before.HeapInuse)/(1<<20))
	if agentPeak > 64<<20 {
		t.Errorf("agent peak RSS %d MiB: bodies are not streamed", agentPeak>>20)
	}
	if peak > before.HeapInuse+48<<20 {
		t.Errorf("edge heap grew from %d to %d MiB: bodies are not streamed", before.HeapInuse>>20, peak>>20)
	}
}

// TestAgentAsyncSurvivesAgentKills: deliveries through an agent that is
// SIGKILLed and restarted mid-delivery, again and again: every accepted
// event arrives (at least once: an attempt cut by the kill may have
// reached the backend, and is sent again with the same delivery id).
func TestAgentAsyncSurvivesAgentKills(t *testing.T) {
	const secret = "gh-secret-for-the-kill-test"
	t.Setenv("DB_AGENT_TEST_GH_SECRET", secret)
	var mu sync.Mutex
	seen := map[string]int{} // body -> deliveries
	ids := map[string]string{}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		time.Sleep(20 * time.Millisecond) // a window for the kills to land mid-delivery
		mu.Lock()
		seen[string(b)]++
		if id, ok := ids[string(b)]; ok && id != r.Header.Get("X-Drawbridge-Delivery") {
			t.Errorf("event %s came back with another delivery id", b)
		}
		ids[string(b)] = r.Header.Get("X-Drawbridge-Delivery")
		mu.Unlock()
	}))
	defer backend.Close()
	const n = 50
	e := startSignedAsyncEdge(t, backend.URL, secret, "k", n)
	allow := "127.0.0.1/32:" + portOf(backend.URL)
	delivered := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	for kill := 1; kill <= 4; kill++ {
		ag, _ := agentProcess(t, e.dir, e.s.AgentsAddr(), e.ca, allow)
		waitUntil(t, "the agent", func() bool { return e.s.agents.Connected("ci") == 1 })
		target := min(n, kill*10)
		waitUntil(t, "some deliveries", func() bool { return delivered() >= target })
		ag.Process.Kill()
		ag.Wait()
		waitUntil(t, "the killed agent's tunnel to go", func() bool { return e.s.agents.Connected("ci") == 0 })
	}
	agentProcess(t, e.dir, e.s.AgentsAddr(), e.ca, allow)
	waitUntil(t, "every event", func() bool { return delivered() == n })
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("%d events delivered across 4 agent SIGKILLs, %d sent twice", n, dups)
}

// TestAgentGracefulStop: an agent told to stop (SIGTERM: its context
// ends) sends GOAWAY, so the edge opens no new stream on its tunnels,
// and lets the requests in flight finish.
func TestAgentGracefulStop(t *testing.T) {
	entered := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			time.Sleep(500 * time.Millisecond)
		}
		io.WriteString(w, "done")
	}))
	defer slow.Close()
	e := startAgentEdge(t, "  - {path: /x/*, target: '"+slow.URL+"/', timeout: 10s, via: ci}\n")
	allow := "127.0.0.1/32:" + portOf(slow.URL)
	_, _, stopA := runTestAgent(t, e, "ci", agentToken, allow)
	waitUntil(t, "agent A", func() bool { return e.s.agents.Connected("ci") == 2 })

	result := make(chan string, 1)
	go func() {
		res, err := http.Get(e.url("/x/slow"))
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		result <- fmt.Sprintf("%d %s", res.StatusCode, b)
	}()
	<-entered
	stopped := make(chan struct{})
	go func() { stopA(); close(stopped) }()
	runTestAgent(t, e, "ci", agentToken, allow) // agent B
	waitUntil(t, "agent B", func() bool { return gaugeValue(t, e, "drawbridge_agent_connects_total", "name", "ci") == 4 })
	for range 10 {
		if code, body := get(t, e.url("/x/fast")); code != 200 || body != "done" {
			t.Fatalf("while agent A drains: %d %s\n%s", code, body, e.log)
		}
	}
	if got := <-result; got != "200 done" {
		t.Fatalf("the request in flight on the stopping agent: %s", got)
	}
	<-stopped
	waitUntil(t, "agent A's tunnels to go", func() bool { return e.s.agents.Connected("ci") == 2 })
}

// TestAgentListenerShedsFloods: the agents listener has the public
// listener's connection caps, so a flood of unauthenticated connections
// from one address is shed at accept.
func TestAgentListenerShedsFloods(t *testing.T) {
	e := startAgentEdge(t, "  - {path: /x, target: 'http://127.0.0.1:9/', via: ci}\n")
	text := strings.Replace(edgeYAML(agentToken, "  - {path: /x, target: 'http://127.0.0.1:9/', via: ci}\n"),
		"state: {driver: memory}\n", "state: {driver: memory}\nlimits: {max_conns_per_ip: 3}\n", 1)
	writeConfig(t, e.path, text)
	e.s.Shutdown()
	s, err := Start(e.path, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	e.s = s
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", s.AgentsAddr())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Let the listener count them before the fourth arrives.
	waitUntil(t, "three connections held", func() bool {
		c, err := net.Dial("tcp", s.AgentsAddr())
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		return err == io.EOF
	})
	if v := gaugeValue(t, e, "drawbridge_connections_shed_total", "reason", "max_conns_per_ip"); v < 1 {
		t.Fatalf("no connection shed: drawbridge_connections_shed_total{reason=max_conns_per_ip} = %v", v)
	}
}

// startSignedAsyncEdge starts an edge whose async, GitHub-signed route
// /events goes via the agent "ci" to target/hook (retried every 20-100 ms
// for an hour, so deliveries wait for an agent), and sends it n signed
// events {"n":i} with delivery ids PREFIX-i, each of which must be
// accepted (202).
func startSignedAsyncEdge(t *testing.T, target, secret, prefix string, n int) *agentEdge {
	t.Helper()
	e := startAgentEdgeState(t, "  - path: /events\n    target: '"+target+"/hook'\n    via: ci\n"+
		"    verify: {provider: github, secret_env: DB_AGENT_TEST_GH_SECRET}\n"+
		"    delivery: {mode: async, retry: {max_attempts: 100000, max_age: 1h, base: 20ms, max: 100ms}}\n")
	for i := range n {
		body := fmt.Sprintf(`{"n":%d}`, i)
		req, _ := http.NewRequest("POST", e.url("/events"), strings.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("%s-%d", prefix, i))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hmacHex(secret, body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 202 {
			t.Fatalf("event %d: %d", i, res.StatusCode)
		}
	}
	return e
}
