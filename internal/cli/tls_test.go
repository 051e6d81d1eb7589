package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA makes a CA and a leaf it signed, valid for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf returns PEM certificate and key for a server or client.
func (ca *testCA) leaf(t *testing.T, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsServer starts serve with a TLS listener (and mTLS when clientCA is
// set) in front of a backend that reports the protocol it saw.
func tlsServer(t *testing.T, ca *testCA, clientCA []byte) *Server {
	t.Helper()
	backend := newRecorder(t)
	dir := t.TempDir()
	c, k := ca.leaf(t, true)
	writeFile(t, dir, "cert.pem", c)
	writeFile(t, dir, "key.pem", k)
	extra := ""
	if clientCA != nil {
		writeFile(t, dir, "clients.pem", clientCA)
		extra = ", client_ca: clients.pem"
	}
	path := writeFile(t, dir, "drawbridge.yaml", []byte("listen: 127.0.0.1:0\nadmin: 'off'\nstate: {driver: memory}\n"+
		"tls: {cert: cert.pem, key: key.pem, max_concurrent_streams: 50"+extra+"}\nroutes:\n  - path: /ok\n    target: "+backend.srv.URL+"/\n"))
	s, err := Start(path, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	return s
}

func tlsClient(ca *testCA, cert *tls.Certificate, h2 bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// TestTLSListener: tls: {cert, key} serves HTTP/2 (and HTTP/1.1) over
// TLS; plain text on the TLS port gets nowhere; the backend is told
// X-Forwarded-Proto: https.
func TestTLSListener(t *testing.T) {
	ca := newCA(t, "test CA")
	s := tlsServer(t, ca, nil)
	for _, h2 := range []bool{true, false} {
		resp, err := tlsClient(ca, nil, h2).Get("https://" + s.Addr() + "/ok")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := "HTTP/1.1"
		if h2 {
			want = "HTTP/2.0"
		}
		if resp.StatusCode != 200 || resp.Proto != want {
			t.Errorf("h2=%v: %d %s", h2, resp.StatusCode, resp.Proto)
		}
	}
	// h2c prior knowledge on the TLS port is just bytes TLS refuses.
	ex := rawExchange(t, s.Addr(), []string{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"}, 0, 2*time.Second)
	if len(ex.responses) != 0 && ex.responses[0].StatusCode < 400 {
		t.Errorf("cleartext HTTP/2 on the TLS port answered %v", ex.statuses())
	}
}

// TestMutualTLS: with client_ca, a client without a certificate, or with
// one from another CA, is refused at the handshake; one signed by the CA
// is served.
func TestMutualTLS(t *testing.T) {
	ca, clients, other := newCA(t, "server CA"), newCA(t, "client CA"), newCA(t, "other CA")
	s := tlsServer(t, ca, clients.pem)
	url := "https://" + s.Addr() + "/ok"
	if _, err := tlsClient(ca, nil, true).Get(url); err == nil {
		t.Error("client without a certificate was served")
	}
	oc, ok := other.leaf(t, false)
	otherCert, _ := tls.X509KeyPair(oc, ok)
	if _, err := tlsClient(ca, &otherCert, true).Get(url); err == nil {
		t.Error("client with a certificate from another CA was served")
	}
	cc, ck := clients.leaf(t, false)
	good, _ := tls.X509KeyPair(cc, ck)
	resp, err := tlsClient(ca, &good, true).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("client with a good certificate: %d", resp.StatusCode)
	}
}

// TestTLSConfigErrors: a missing key file is reported at the tls line.
func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "d.yaml", []byte("listen: 127.0.0.1:0\nadmin: 'off'\nstate: {driver: memory}\ntls: {cert: nope.pem, key: nope.key}\nroutes:\n  - path: /ok\n    target: http://127.0.0.1:1/\n"))
	_, err := Start(path, discardLogger())
	if err == nil || !strings.HasPrefix(err.Error(), path+":4: tls: ") {
		t.Fatalf("Start = %v", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
