package agent_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/agent"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/tunnel"
)

// BenchmarkTunnel compares one small request through edge → agent →
// backend on loopback (the tunnel's RoundTripper, no gateway) with the
// same request sent directly; allocs/op are per request (per stream).
func BenchmarkTunnel(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	direct := &http.Transport{MaxIdleConnsPerHost: 256}
	defer direct.CloseIdleConnections()

	edge, stop := startTunnel(b, backend.URL)
	defer stop()
	via := edge.Transport("ci")

	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{{"direct", direct}, {"via-agent", via}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", backend.URL+"/x", nil)
					res, err := c.rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			})
		})
	}
}

func startTunnel(b *testing.B, backendURL string) (*tunnel.Edge, func()) {
	dir := b.TempDir()
	certPEM, keyPEM := selfSigned(b)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, certPEM, 0o600)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		b.Fatal(err)
	}
	const token = "bench-token-0123456789"
	e := tunnel.New(tunnel.Options{})
	e.SetCredentials(&config.Agents{Tokens: []config.AgentToken{{Name: "ci", Digest: sha256.Sum256([]byte(token))}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go e.Serve(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	_, port, _ := net.SplitHostPort(backendURL[len("http://"):])
	a, err := agent.New(&config.AgentConfig{Edge: "https://" + ln.Addr().String(), Name: "ci", Token: token, CA: caFile,
		Connections: 2, Egress: config.Egress{Allow: []string{"127.0.0.1/32:" + port}}}, agent.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	for e.Connected("ci") < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	return e, func() { cancel(); <-done; e.Close() }
}

func selfSigned(b *testing.B) (certPEM, keyPEM []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edge"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
