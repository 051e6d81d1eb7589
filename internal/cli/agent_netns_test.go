package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// netnsBackendEnv makes this test binary an echo backend (the helper
// process TestAgentNetnsBackend runs inside the namespace).
const netnsBackendEnv = "DRAWBRIDGE_TEST_NETNS_BACKEND"

// echoSeen is what the echo backend answers: the request it received.
type echoSeen struct {
	Method, URI, Host string
	Header            http.Header
	Body              string
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(echoSeen{r.Method, r.RequestURI, r.Host, r.Header, string(b)})
}

// TestAgentNetnsBackend is not a test: with netnsBackendEnv set it serves
// echoHandler on that address until killed.
func TestAgentNetnsBackend(t *testing.T) {
	addr := os.Getenv(netnsBackendEnv)
	if addr == "" {
		t.Skip("helper process for TestAgentThroughNamespace")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("backend listening")
	http.Serve(ln, http.HandlerFunc(echoHandler))
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// TestAgentThroughNamespace: the backend and the agent live in a network
// namespace whose only link is a veth pair to the edge's side; the
// backend listens on that namespace's loopback, which nothing outside
// can reach. A request to the edge's via route reaches it intact, as the
// same request through a direct route reaches the same backend on the
// edge's own loopback.
func TestAgentThroughNamespace(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces are Linux's")
	}
	ns := fmt.Sprintf("dbagent%d", os.Getpid())
	if err := ipCmd("netns", "add", ns); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot make a network namespace under CI: %v", err)
		}
		t.Skipf("cannot make a network namespace (needs root and iproute2): %v", err)
	}
	t.Cleanup(func() { ipCmd("netns", "del", ns) })
	n := os.Getpid() % 250
	hostIP, nsIP := fmt.Sprintf("10.213.%d.1", n), fmt.Sprintf("10.213.%d.2", n)
	vh, vn := fmt.Sprintf("dbh%d", os.Getpid()%100000), fmt.Sprintf("dbn%d", os.Getpid()%100000)
	for _, c := range [][]string{
		{"link", "add", vh, "type", "veth", "peer", "name", vn},
		{"link", "set", vn, "netns", ns},
		{"addr", "add", hostIP + "/30", "dev", vh},
		{"link", "set", vh, "up"},
		{"netns", "exec", ns, "ip", "addr", "add", nsIP + "/30", "dev", vn},
		{"netns", "exec", ns, "ip", "link", "set", vn, "up"},
		{"netns", "exec", ns, "ip", "link", "set", "lo", "up"},
	} {
		if err := ipCmd(c...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { ipCmd("link", "del", vh) })

	// The backend, on the namespace's loopback.
	backendAddr := "127.0.0.1:18080"
	if c, err := net.DialTimeout("tcp", backendAddr, time.Second); err == nil {
		c.Close()
		t.Skipf("something listens on the host's %s; the test needs it free", backendAddr)
	}
	be := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestAgentNetnsBackend$")
	be.Env = append(os.Environ(), netnsBackendEnv+"="+backendAddr)
	beOut, _ := be.StdoutPipe()
	if err := be.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Process.Kill(); be.Wait() })
	line := make([]byte, 64)
	if n, _ := beOut.Read(line); !strings.Contains(string(line[:n]), "backend listening") {
		t.Fatalf("backend did not start: %q", line[:n])
	}

	// The reference backend on the edge's side, for the direct route.
	ref := &http.Server{Handler: http.HandlerFunc(echoHandler)}
	refLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ref.Serve(refLn)
	t.Cleanup(func() { ref.Close() })

	// The edge: its agents listener on the veth address.
	ca := newCA(t, "edge-ca")
	dir := t.TempDir()
	c, k := leafFor(t, ca, hostIP)
	writeFile(t, dir, "cert.pem", c)
	writeFile(t, dir, "key.pem", k)
	writeFile(t, dir, "ca.pem", ca.pem)
	routes := "  - {path: /via/*, target: 'http://" + backendAddr + "/base/', timeout: 10s, via: ci}\n" +
		"  - {path: /ref/*, target: 'http://" + refLn.Addr().String() + "/base/', timeout: 10s}\n" +
		"  - {path: /direct/*, target: 'http://" + backendAddr + "/base/', timeout: 10s}\n"
	cfgText := strings.Replace(edgeYAML(agentToken, routes), "listen: 127.0.0.1:0\n  tls", "listen: "+hostIP+":0\n  tls", 1)
	edgePath := writeFile(t, dir, "drawbridge.yaml", []byte(cfgText))
	s, err := Start(edgePath, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })

	// No inbound path: the edge's side reaches neither the namespace's
	// loopback (its own 127.0.0.1 has nothing on that port) nor the
	// backend through the veth address.
	if code, _ := get(t, "http://"+s.Addr()+"/direct/x"); code != 502 {
		t.Fatalf("direct route to the namespace's backend: %d, want 502", code)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(nsIP, "18080"), 2*time.Second); err == nil {
		c.Close()
		t.Fatal("the backend is reachable from the edge's side")
	}

	// The agent, in the namespace, run as `drawbridge agent`.
	agentPath := writeFile(t, dir, "agent.yaml", []byte("edge: https://"+s.AgentsAddr()+"\nname: ci\ntoken_env: DRAWBRIDGE_AGENT_TOKEN\n"+
		"ca: ca.pem\nconnections: 1\nadmin: 'off'\negress: {allow: ['127.0.0.1/32:18080']}\n"))
	ag := exec.Command("ip", "netns", "exec", ns, drawbridgeBinary(t), "agent", "-c", agentPath)
	ag.Env = append(os.Environ(), "DRAWBRIDGE_AGENT_TOKEN="+agentToken)
	agLog := &syncBuffer{}
	ag.Stderr = agLog
	if err := ag.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Process.Kill(); ag.Wait() })
	waitUntil(t, "the agent in the namespace to connect", func() bool { return s.agents.Connected("ci") == 1 })

	for _, row := range agentRows {
		var got [2]echoSeen
		var status [2]int
		for i, prefix := range []string{"/ref", "/via"} {
			req, _ := http.NewRequest(row.method, "http://"+s.Addr()+prefix+row.path, strings.NewReader(row.body))
			for k, vs := range row.header {
				req.Header[k] = vs
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			status[i] = res.StatusCode
			if row.method == "HEAD" {
				continue
			}
			if err := json.Unmarshal(b, &got[i]); err != nil {
				t.Fatalf("%s %s%s: %d %q", row.method, prefix, row.path, res.StatusCode, b)
			}
			got[i].Header.Del("X-Request-Id")
		}
		r, v := got[0], got[1]
		r.Host = strings.Replace(r.Host, refLn.Addr().String(), backendAddr, 1)
		if status[0] != status[1] || r.Method != v.Method || r.URI != v.URI || r.Host != v.Host || r.Body != v.Body || fmt.Sprint(r.Header) != fmt.Sprint(v.Header) {
			t.Errorf("%s %s: direct and via differ:\ndirect %d %s %s %s %v\nvia    %d %s %s %s %v", row.method, row.path,
				status[0], r.Method, r.URI, r.Host, r.Header, status[1], v.Method, v.URI, v.Host, v.Header)
		}
	}
	if strings.Contains(agLog.String(), agentToken) {
		t.Error("the token is in the agent's log")
	}
}

// leafFor is a server certificate of ca for the IP addresses ips.
func leafFor(t *testing.T, ca *testCA, ips ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "edge"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ip := range ips {
		tpl.IPAddresses = append(tpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
