package cli

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestHealthAgainstServer runs `drawbridge health` against a real
// gateway's admin listener, then against one that is gone.
func TestHealthAgainstServer(t *testing.T) {
	s, _ := startInProcess(t, configText("http://127.0.0.1:1", ""))
	url := "http://" + s.AdminAddr() + "/healthz"
	code, stdout, stderr := runMain(t, "health", "--url", url)
	if code != 0 || strings.TrimSpace(stdout) != `{"status":"ok"}` {
		t.Fatalf("health on a running gateway: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	s.Shutdown()
	code, _, stderr = runMain(t, "health", "--url", url)
	if code != 1 || !strings.Contains(stderr, "connection refused") {
		t.Fatalf("health on a stopped gateway: exit %d, stderr %q; want 1 and the dial error", code, stderr)
	}
}

// TestHealthFromConfig finds the admin address in the config, as the
// container image's HEALTHCHECK does, and fails on any status but 200.
func TestHealthFromConfig(t *testing.T) {
	status := http.StatusOK
	var asked string
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = r.Method + " " + r.URL.Path
		w.WriteHeader(status)
		w.Write([]byte(`{"status":"x"}`))
	}))
	defer admin.Close()
	port := admin.URL[strings.LastIndex(admin.URL, ":")+1:]
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	const routes = "routes:\n  - {path: /x, target: http://127.0.0.1:1/}\n"
	// Listening on every address: the probe asks loopback.
	// (Every address needs an operator token: internal/config/console.go.)
	writeConfig(t, cfg, "listen: 127.0.0.1:0\nadmin: 0.0.0.0:"+port+"\nadmin_auth: {tokens: [{name: ops, sha256: "+strings.Repeat("ab", 32)+"}]}\nstate: {driver: memory}\n"+routes)

	code, _, stderr := runMain(t, "health", "-c", cfg)
	if code != 0 || asked != "GET /healthz" {
		t.Fatalf("exit %d (stderr %q), asked %q; want 0 and GET /healthz", code, stderr, asked)
	}
	status = http.StatusServiceUnavailable
	code, _, stderr = runMain(t, "health", "-c", cfg)
	if code != 1 || !strings.Contains(stderr, "503 Service Unavailable") {
		t.Fatalf("a 503: exit %d, stderr %q; want 1 and the status", code, stderr)
	}
	status = http.StatusFound // a redirect is not followed, nor healthy
	if code, _, _ = runMain(t, "health", "-c", cfg); code != 1 {
		t.Fatalf("a 302: exit %d, want 1", code)
	}

	writeConfig(t, cfg, "listen: 127.0.0.1:0\nadmin: \"off\"\nstate: {driver: memory}\n"+routes)
	if code, _, stderr = runMain(t, "health", "-c", cfg); code != 1 || !strings.Contains(stderr, "admin listener off") {
		t.Fatalf("admin off: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr = runMain(t, "health", "-c", filepath.Join(t.TempDir(), "missing.yaml")); code != 1 || !strings.Contains(stderr, "cannot read config") {
		t.Fatalf("no config: exit %d, stderr %q", code, stderr)
	}
}

func TestHealthURL(t *testing.T) {
	for admin, want := range map[string]string{
		"127.0.0.1:9090": "http://127.0.0.1:9090/healthz",
		":9090":          "http://127.0.0.1:9090/healthz",
		"0.0.0.0:9090":   "http://127.0.0.1:9090/healthz",
		"[::]:9090":      "http://[::1]:9090/healthz",
		"[::1]:9091":     "http://[::1]:9091/healthz",
		"10.1.2.3:9090":  "http://10.1.2.3:9090/healthz",
	} {
		if got, err := healthURL(admin); err != nil || got != want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", admin, got, err, want)
		}
	}
}
