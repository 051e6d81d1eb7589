package cli

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestAdminTLS: admin_tls serves the admin listener (console and API)
// over TLS to clients with a certificate from client_ca only, on an
// address other machines can reach.
func TestAdminTLS(t *testing.T) {
	ca, clients, other := newCA(t, "server CA"), newCA(t, "client CA"), newCA(t, "other CA")
	dir := t.TempDir()
	c, k := ca.leaf(t, true)
	writeFile(t, dir, "cert.pem", c)
	writeFile(t, dir, "key.pem", k)
	writeFile(t, dir, "clients.pem", clients.pem)
	path := writeFile(t, dir, "drawbridge.yaml", []byte("listen: 127.0.0.1:0\nadmin: 0.0.0.0:0\nstate: {driver: memory}\n"+
		"admin_tls: {cert: cert.pem, key: key.pem, client_ca: clients.pem}\nroutes:\n  - {path: /ok, target: \"http://127.0.0.1:1/\"}\n"))
	s, err := Start(path, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	url := "https://127.0.0.1:" + s.AdminAddr()[strings.LastIndexByte(s.AdminAddr(), ':')+1:] + "/"
	if _, err := tlsClient(ca, nil, false).Get(url); err == nil {
		t.Error("a client without a certificate was served")
	}
	oc, ok := other.leaf(t, false)
	otherCert, _ := tls.X509KeyPair(oc, ok)
	if _, err := tlsClient(ca, &otherCert, false).Get(url); err == nil {
		t.Error("a client with another CA's certificate was served")
	}
	cc, ck := clients.leaf(t, false)
	good, _ := tls.X509KeyPair(cc, ck)
	resp, err := tlsClient(ca, &good, false).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<h1>Overview</h1>") {
		t.Fatalf("console over mTLS: %d\n%s", resp.StatusCode, body)
	}
}

// TestConsoleOnServe: serve mounts the console on the admin listener with
// the guard in front of the JSON API too; `drawbridge deliveries` sends
// DRAWBRIDGE_ADMIN_TOKEN when admin_auth is set.
func TestConsoleOnServe(t *testing.T) {
	d := sha256.Sum256([]byte("ops-token-1"))
	dir := t.TempDir()
	path := writeFile(t, dir, "drawbridge.yaml", []byte("listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nstate: {driver: embedded, path: "+dir+"/s.db}\n"+
		"admin_auth: {tokens: [{name: ops, sha256: \""+hex.EncodeToString(d[:])+"\"}]}\n"+
		"routes:\n  - {path: /hooks, target: \"http://127.0.0.1:1/\", delivery: {mode: async}}\n"))
	s, err := Start(path, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	admin := "http://" + s.AdminAddr()
	get := func(p string, hdr ...string) int {
		req, _ := http.NewRequest("GET", admin+p, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/deliveries"); got != 401 {
		t.Errorf("API without a token: %d", got)
	}
	if got := get("/"); got != http.StatusSeeOther {
		t.Errorf("console without a session: %d, want the login redirect", got)
	}
	if got := get("/", "Authorization", "Bearer ops-token-1"); got != 200 {
		t.Errorf("console with the token: %d", got)
	}
	if got := get("/healthz"); got != 200 {
		t.Errorf("healthz: %d", got)
	}
	// The CLI finds the running serve by the config's admin address.
	cfg, _ := os.ReadFile(path)
	writeFile(t, dir, "drawbridge.yaml", []byte(strings.Replace(string(cfg), "admin: 127.0.0.1:0", "admin: "+s.AdminAddr(), 1)))
	t.Setenv(AdminTokenEnv, "")
	if code, _, stderr := runMain(t, "deliveries", "-c", path, "list"); code == 0 || !strings.Contains(stderr, "unauthorized") {
		t.Errorf("deliveries list without the token: exit %d, %q", code, stderr)
	}
	t.Setenv(AdminTokenEnv, "ops-token-1")
	if code, _, stderr := runMain(t, "deliveries", "-c", path, "list"); code != 0 {
		t.Errorf("deliveries list with the token: exit %d, %q", code, stderr)
	}
}
