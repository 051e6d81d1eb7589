package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// agentEdgeConfig is drawbridge with an agents listener and the plain
// config's /small route sent through an agent (docs/agent.md): the
// target drawbridge-agent, beside drawbridge and direct in the same run.
const agentEdgeConfig = `
listen: "{LISTEN}"
admin: "off"
state: {driver: memory}
account_throttle: {rate: 1000000, burst: 1000000}
agents:
  listen: "{AGENTS}"
  tls: {cert: "{DIR}/agent-edge.pem", key: "{DIR}/agent-edge-key.pem"}
  tokens: [{name: bench, sha256: {TOKENHASH}}]
routes:
  - path: /small
    target: {BACKEND}/small
    via: bench
`

const agentSideConfig = `
edge: https://{AGENTS}
name: bench
token_env: DRAWBRIDGE_BENCH_AGENT_TOKEN
ca: "{DIR}/agent-edge.pem"
connections: 2
admin: "{ADMIN}"
egress: {allow: ["127.0.0.1/32:{PORT}"]}
`

const agentToken = "bench-agent-token-0123456789"

// agentEdgeArgv writes the edge's certificate and config and returns its
// argv; agentsAddr is where agents connect.
func agentEdgeArgv(dir, db, backend, agentsAddr string) func(addr string) ([]string, error) {
	return func(addr string) ([]string, error) {
		if err := writeSelfSigned(dir); err != nil {
			return nil, err
		}
		text := strings.NewReplacer("{LISTEN}", addr, "{AGENTS}", agentsAddr, "{DIR}", dir, "{BACKEND}", backend,
			"{TOKENHASH}", fmt.Sprintf("%x", sha256.Sum256([]byte(agentToken)))).Replace(agentEdgeConfig)
		path := filepath.Join(dir, "agent-edge.yaml")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return nil, err
		}
		return []string{db, "serve", "-c", path}, nil
	}
}

// startAgentSide starts `drawbridge agent` for the edge at agentsAddr and
// waits until its tunnels are up (its /readyz).
func startAgentSide(dir, db, agentsAddr, backendAddr string, start func(name, addr string, env []string, argv ...string) (*proc, error)) error {
	admin := freeAddr()
	_, port, _ := net.SplitHostPort(backendAddr)
	text := strings.NewReplacer("{AGENTS}", agentsAddr, "{DIR}", dir, "{ADMIN}", admin, "{PORT}", port).Replace(agentSideConfig)
	path := filepath.Join(dir, "agent-side.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	if _, err := start("drawbridge-agent-side", admin, []string{"DRAWBRIDGE_BENCH_AGENT_TOKEN=" + agentToken}, db, "agent", "-c", path); err != nil {
		return err
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if res, err := http.Get("http://" + admin + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("agent not connected after 15s")
}

func writeSelfSigned(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench edge"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "agent-edge.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "agent-edge-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}
