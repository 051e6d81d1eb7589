package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// TestServeRefusesUntrustedRedis: serve opens a TLS Redis whose
// certificate the configured CA signed, and refuses to start with one it
// did not, naming the state URL without its password; the password comes
// from state.password_env, and a missing variable is refused too.
func TestServeRefusesUntrustedRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true})
	dir := t.TempDir()
	wrong := redistest.NewCA(t, "another CA")
	t.Setenv("REDIS_TEST_PASSWORD", "hunter2")
	cfg := func(url, ca, pwEnv string) *config.Config {
		return &config.Config{File: filepath.Join(dir, "drawbridge.yaml"), State: config.State{
			Driver: "redis", URL: url, Prefix: "t:", PasswordEnv: pwEnv, TLS: &config.StateTLS{CA: ca}}}
	}

	st, err := openState(cfg(srv.URL(), srv.CA, ""), serving)
	if err != nil {
		t.Fatalf("trusted CA: %v", err)
	}
	if err := st.store.Ready(t.Context()); err != nil {
		t.Errorf("trusted CA: not ready: %v", err)
	}
	st.close()

	_, err = openState(cfg("rediss://:hunter2@"+srv.Addr+"/0", wrong.CertFile, ""), serving)
	if err == nil || !strings.Contains(err.Error(), "rediss://:xxxxx@"+srv.Addr+"/0") || !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("untrusted CA, password in the URL: %v", err)
	}
	_, err = openState(cfg(srv.URL(), wrong.CertFile, "REDIS_TEST_PASSWORD"), serving)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("untrusted CA, password from env: %v", err)
	}
	_, err = openState(cfg(srv.URL(), srv.CA, "REDIS_TEST_UNSET"), serving)
	if err == nil || !strings.Contains(err.Error(), "state.password_env: environment variable REDIS_TEST_UNSET is not set") {
		t.Errorf("unset password_env: %v", err)
	}
}
