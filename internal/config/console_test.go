package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestAdminExposure: an admin listener other machines can reach needs
// admin_auth or admin_tls; the error names the file and the admin line.
func TestAdminExposure(t *testing.T) {
	digest := sha256.Sum256([]byte("operator-token"))
	hexd := hex.EncodeToString(digest[:])
	cases := []struct {
		name, yaml, err string
	}{
		{"loopback by default", minimal, ""},
		{"loopback v6", "admin: \"[::1]:9090\"\n" + minimal, ""},
		{"localhost", "admin: localhost:9090\n" + minimal, ""},
		{"off", "admin: \"off\"\n" + minimal, ""},
		{"all addresses", "stage: prod\nadmin: \":9090\"\n" + minimal, `c.yaml:2: admin: ":9090" is reachable from other machines`},
		{"public address", "admin: 10.0.0.5:9090\n" + minimal, `c.yaml:1: admin: "10.0.0.5:9090" is reachable`},
		{"with tokens", "admin: \":9090\"\nadmin_auth:\n  tokens:\n    - {name: ops, sha256: " + hexd + "}\n" + minimal, ""},
		{"with client ca", "admin: \":9090\"\nadmin_tls: {cert: a.pem, key: a.key, client_ca: ca.pem}\n" + minimal, ""},
		{"tls without ca", "admin: \":9090\"\nadmin_tls: {cert: a.pem, key: a.key}\n" + minimal, "c.yaml:2: admin_tls: cert, key and client_ca are all required"},
		{"bad digest", "admin_auth:\n  tokens:\n    - name: ops\n      sha256: nothex\n" + minimal, "c.yaml:4: admin_auth.tokens[0]: sha256 must be 64 hex digits"},
		{"no tokens", "admin_auth: {tokens: []}\n" + minimal, "c.yaml:1: admin_auth: tokens: at least one"},
		{"twice", "admin_auth:\n  tokens:\n    - {name: a, sha256: " + hexd + "}\n    - {name: a, sha256: " + hexd + "}\n" + minimal, `admin_auth: token name "a" is used twice`},
		{"host with port", "admin_hosts: [\"console.example:9090\"]\n" + minimal, "c.yaml:1: admin_hosts:"},
		{"unknown key", "admin_auth: {token: x}\n" + minimal, "c.yaml:1:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(c.yaml), nil)
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
			_ = cfg
		})
	}
}

func TestAdminTokenDigest(t *testing.T) {
	digest := sha256.Sum256([]byte("operator-token"))
	y := "admin_auth:\n  tokens:\n    - {name: ops, sha256: " + strings.ToUpper(hex.EncodeToString(digest[:])) + "}\nadmin_hosts: [console.example]\n" + minimal
	cfg, err := Parse("c.yaml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminAuth.Tokens[0].Digest != digest || cfg.AdminHosts[0] != "console.example" {
		t.Fatalf("tokens %+v hosts %v", cfg.AdminAuth.Tokens, cfg.AdminHosts)
	}
}
