package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/agent"
	"github.com/drawbridge/drawbridge/internal/apikey"
	"github.com/drawbridge/drawbridge/internal/config"
)

// demoAgentConfig is the edge's config of `drawbridge demo --agent`.
const demoAgentConfig = `# drawbridge demo --agent: the edge. The backend is reached only through
# the agent, which dialed in to the agents listener below.
listen: "{LISTEN}"
admin: "{ADMIN}"
state: {driver: memory}
agents:
  listen: 127.0.0.1:0        # where agents connect (TLS only)
  tls: {cert: edge-cert.pem, key: edge-key.pem}
  tokens:
    - {name: demo, sha256: {TOKENHASH}}   # the agent's token, kept as its SHA-256
routes:
  - path: /app/*
    methods: [GET, POST]
    target: {BACKEND}/     # the private URL: the agent dials it, never the edge
    via: demo
    timeout: 5s
  - path: /elsewhere
    target: http://127.0.0.1:9/   # not in the agent's egress.allow: refused by the agent
    via: demo
`

// demoAgentAgentConfig is the agent's side, written for the user to read
// (the demo runs the agent in process with the same settings).
const demoAgentAgentConfig = `# drawbridge demo --agent: the agent (drawbridge agent -c THIS_FILE).
edge: https://{AGENTS}
name: demo
token_env: DRAWBRIDGE_AGENT_TOKEN
ca: edge-cert.pem            # the demo edge's self-signed certificate
connections: 2
admin: 'off'
egress: {allow: ["{BACKENDRULE}"]}   # the only address the agent will dial
`

var demoAgentExamples = []demoExample{
	{"A request through the edge, the tunnel and the agent to the private backend", "curl -si '{GW}/app/hello?name=world'", 200},
	{"A POST with a body, streamed through the tunnel", "curl -si --data 'ping' {GW}/app/echo", 200},
	{"A route whose target the agent's egress.allow does not list: the agent refuses", "curl -si {GW}/elsewhere", 502},
}

// runAgentDemo is `drawbridge demo --agent`: a backend, an agent allowed
// to reach it, and an edge whose only way to the backend is the agent.
func runAgentDemo(ctx context.Context, listen, adminAddr, dir string, verbose bool, stdout, stderr io.Writer) error {
	var err error
	if dir == "" {
		if dir, err = os.MkdirTemp("", "drawbridge-demo-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bsrv := &http.Server{Handler: http.HandlerFunc(demoBackend)}
	go bsrv.Serve(backend)
	defer bsrv.Close()
	backendURL := "http://" + backend.Addr().String()

	certPEM, keyPEM, err := demoCertificate()
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{"edge-cert.pem": certPEM, "edge-key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	token := apikey.Generate()
	path := filepath.Join(dir, "drawbridge.yaml")
	text := strings.NewReplacer("{LISTEN}", freeOr(listen), "{ADMIN}", freeOr(adminAddr), "{BACKEND}", backendURL,
		"{TOKENHASH}", fmt.Sprintf("%x", sha256.Sum256([]byte(token)))).Replace(demoAgentConfig)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	logOut := io.Discard
	if verbose {
		logOut = stderr
	}
	log := slog.New(slog.NewJSONHandler(logOut, nil))
	s, err := Start(path, log)
	if err != nil {
		return err
	}
	defer s.Shutdown()

	agentPath := filepath.Join(dir, "agent.yaml")
	agentText := strings.NewReplacer("{AGENTS}", s.AgentsAddr(), "{BACKENDRULE}", "127.0.0.1/32:"+portOfAddr(backend.Addr())).Replace(demoAgentAgentConfig)
	if err := os.WriteFile(agentPath, []byte(agentText), 0o644); err != nil {
		return err
	}
	cfg, err := config.ParseAgent(agentPath, []byte(agentText), func(n string) (string, bool) { return token, n == "DRAWBRIDGE_AGENT_TOKEN" })
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, agent.Options{Log: log})
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Run(actx); close(done) }()
	defer func() { cancel(); <-done }()
	for t0 := time.Now(); s.agents.Connected("demo") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(t0) > 10*time.Second {
			return fmt.Errorf("demo agent did not connect")
		}
	}

	gw := "http://" + s.Addr()
	fmt.Fprintf(stdout, "drawbridge demo --agent\n")
	fmt.Fprintf(stdout, "  private backend: %s (the edge has no route to it but the agent)\n", backendURL)
	fmt.Fprintf(stdout, "  agent:           in this process, connected to %s (config: %s)\n", s.AgentsAddr(), agentPath)
	fmt.Fprintf(stdout, "  edge:            %s (config: %s)\n", gw, path)
	fmt.Fprintf(stdout, "  metrics:         http://%s/metrics (drawbridge_agents, drawbridge_agent_*)\n\n", s.AdminAddr())
	fmt.Fprintf(stdout, "Try these (Ctrl-C stops the demo):\n\n")
	fill := strings.NewReplacer("{GW}", gw)
	for i, ex := range demoAgentExamples {
		fmt.Fprintf(stdout, "# %d. %s: expect %d\n%s\n\n", i+1, ex.what, ex.status, fill.Replace(ex.command))
	}
	fmt.Fprintf(stdout, "%s\n", demoEnd)
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping the demo")
	return nil
}

func portOfAddr(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

// demoCertificate is a self-signed certificate for 127.0.0.1, the demo
// edge's agents listener's.
func demoCertificate() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drawbridge demo edge"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
