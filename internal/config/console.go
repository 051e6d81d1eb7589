package config

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// Console holds the admin listener's access settings: who may use the
// web console and the deliveries API on it (docs/console.md). It is
// inlined into Config, so its keys sit at the top of drawbridge.yaml.
type Console struct {
	// AdminAuth, when set, requires one of its tokens on the console and
	// the deliveries API (a bearer token, or the console's login cookie).
	AdminAuth *AdminAuth `yaml:"admin_auth"`
	// AdminTLS serves the admin listener over TLS and requires a client
	// certificate signed by ClientCA.
	AdminTLS *AdminTLS `yaml:"admin_tls"`
	// AdminHosts are host names, besides IP addresses and localhost, that
	// the admin listener answers to (a Host header naming anything else is
	// refused: DNS rebinding).
	AdminHosts []string `yaml:"admin_hosts"`
}

// AdminAuth lists the operators' tokens, stored as SHA-256 digests like
// API keys: the config never holds a token.
type AdminAuth struct {
	Tokens []AdminToken `yaml:"tokens"`
}

// AdminToken is one operator's token: a name (shown in the console and
// the log) and the SHA-256 of the token, 64 hex digits.
type AdminToken struct {
	Name   string   `yaml:"name"`
	SHA256 string   `yaml:"sha256"`
	Digest [32]byte `yaml:"-"`
}

// AdminTLS is the admin listener's TLS: its certificate and key, and the
// CA whose client certificates it accepts (all three required).
type AdminTLS struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca"`
}

// AdminLoopback reports whether addr (an admin host:port) listens on
// loopback only: a loopback IP or "localhost". An empty host (":9090")
// listens on every address.
func AdminLoopback(addr string) bool {
	host, _, err := splitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// console checks admin_auth, admin_tls and admin_hosts, and refuses an
// admin listener reachable from other machines that neither asks for a
// token nor for a client certificate: the console shows request bodies
// and can replay or purge them.
func (v *validator) console() {
	c := v.cfg
	if a := c.AdminAuth; a != nil {
		if len(a.Tokens) == 0 {
			v.errorf("$.admin_auth", "admin_auth: tokens: at least one {name, sha256}")
		}
		seen := map[string]bool{}
		for i := range a.Tokens {
			t := &a.Tokens[i]
			path := fmt.Sprintf("$.admin_auth.tokens[%d]", i)
			switch {
			case t.Name == "":
				v.errorf(path, "admin_auth.tokens[%d]: name is required", i)
			case seen[t.Name]:
				v.errorf(path+".name", "admin_auth: token name %q is used twice", t.Name)
			}
			seen[t.Name] = true
			if !hexDigest.MatchString(t.SHA256) {
				v.errorf(path+".sha256", "admin_auth.tokens[%d]: sha256 must be 64 hex digits (the SHA-256 of the token)", i)
				continue
			}
			hex.Decode(t.Digest[:], []byte(strings.ToLower(t.SHA256)))
		}
	}
	if t := c.AdminTLS; t != nil {
		if t.Cert == "" || t.Key == "" || t.ClientCA == "" {
			v.errorf("$.admin_tls", "admin_tls: cert, key and client_ca are all required")
		}
		for _, f := range []*string{&t.Cert, &t.Key, &t.ClientCA} {
			if *f != "" && !filepath.IsAbs(*f) {
				*f = filepath.Join(filepath.Dir(v.file), *f) // as tls
			}
		}
	}
	for i, h := range c.AdminHosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			v.errorf(fmt.Sprintf("$.admin_hosts[%d]", i), "admin_hosts: %q is not a host name (no port, no scheme)", h)
		}
	}
	if c.Admin != AdminOff && !AdminLoopback(c.Admin) && c.AdminAuth == nil && c.AdminTLS == nil {
		v.errorf("$.admin", "admin: %q is reachable from other machines: set admin_auth (tokens) or admin_tls (client_ca), or listen on 127.0.0.1", c.Admin)
	}
}
