package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// Agents is the edge's agents: block: where agents connect and the
// credentials they may connect with (docs/agent.md).
type Agents struct {
	Listen string `yaml:"listen"` // host:port; TLS always
	// TLS is the agents listener's certificate; nil: the top-level tls.
	TLS    *TLS         `yaml:"tls"`
	Tokens []AgentToken `yaml:"tokens"`

	Line int `yaml:"-"`
}

// AgentToken is one agent credential. An agent is registered only under
// the name of the credential it presented.
type AgentToken struct {
	Name     string `yaml:"name"`
	ValueEnv string `yaml:"value_env"` // the token, from the environment
	SHA256   string `yaml:"sha256"`    // or its SHA-256, hex
	// ClientCA authenticates by mutual TLS instead: a client certificate
	// signed by this PEM CA whose Common Name is Name.
	ClientCA string `yaml:"client_ca"`

	Digest [32]byte `yaml:"-"` // SHA-256 of the token (not for client_ca)
	Line   int      `yaml:"-"`
}

// AgentConfig is the agent's own file (drawbridge agent -c agent.yaml).
type AgentConfig struct {
	File string `yaml:"-"`

	Edge     string `yaml:"edge"` // https://host:port of the edge's agents listener
	Name     string `yaml:"name"`
	TokenEnv string `yaml:"token_env"`
	// CA verifies the edge's certificate; "": the system roots.
	CA string `yaml:"ca"`
	// Cert and Key are a client certificate for edges that authenticate
	// agents by mutual TLS (agents.tokens[].client_ca).
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// Connections is how many tunnels the agent keeps open (default 2).
	Connections Int `yaml:"connections"`
	// Egress is what the agent may dial; required, nothing else is.
	Egress Egress `yaml:"egress"`
	// Admin is the agent's /healthz and /metrics address; "off" disables.
	Admin string `yaml:"admin"`

	Token string `yaml:"-"` // the value of TokenEnv
}

// DefaultAgentConnections is AgentConfig.Connections when unset.
const DefaultAgentConnections = 2

// DefaultAgentAdmin is where the agent serves /healthz and /metrics.
const DefaultAgentAdmin = "127.0.0.1:9465"

// minTokenLen: a token is a password an attacker may guess online.
const minTokenLen = 16

// agents checks the edge's agents: block and every route's via.
func (v *validator) agents() {
	a := v.cfg.Agents
	names := map[string]bool{}
	if a != nil {
		a.Line = v.line("$.agents")
		if a.Listen == "" {
			v.errorf("$.agents", "agents.listen is required")
		} else {
			v.hostPort("$.agents.listen", "agents.listen", a.Listen)
		}
		switch {
		case a.TLS != nil:
			a.TLS.Line = v.line("$.agents.tls")
			if a.TLS.Cert == "" || a.TLS.Key == "" {
				v.errorf("$.agents.tls", "agents.tls: cert and key are both required")
			}
			for _, f := range []*string{&a.TLS.Cert, &a.TLS.Key} {
				*f = v.relative(*f)
			}
		case v.cfg.TLS == nil:
			v.errorf("$.agents", "agents: needs agents.tls or the top-level tls: agents connect over TLS only")
		}
		if len(a.Tokens) == 0 {
			v.errorf("$.agents", "agents.tokens: at least one agent credential is required")
		}
		for i := range a.Tokens {
			t := &a.Tokens[i]
			path := fmt.Sprintf("$.agents.tokens[%d]", i)
			t.Line = v.line(path)
			if !agentName.MatchString(t.Name) {
				v.errorf(path+".name", "agents.tokens[%d].name %q: use 1-64 letters, digits, '.', '-' or '_'", i, t.Name)
			}
			names[t.Name] = true
			set := 0
			for _, s := range []string{t.ValueEnv, t.SHA256, t.ClientCA} {
				if s != "" {
					set++
				}
			}
			if set != 1 {
				v.errorf(path, "agents.tokens %q: set exactly one of value_env, sha256 or client_ca", t.Name)
				continue
			}
			switch {
			case t.SHA256 != "":
				if !hexDigest.MatchString(t.SHA256) {
					v.errorf(path+".sha256", "agents.tokens %q: sha256 must be 64 hex digits", t.Name)
					continue
				}
				hex.Decode(t.Digest[:], []byte(t.SHA256))
			case t.ValueEnv != "":
				val, ok := v.env(t.ValueEnv)
				if !ok || len(val) < minTokenLen {
					// The value stays out of the message.
					v.errorf(path+".value_env", "agents.tokens %q: environment variable %s is not set or shorter than %d characters", t.Name, t.ValueEnv, minTokenLen)
					continue
				}
				t.Digest = sha256.Sum256([]byte(val))
			default:
				t.ClientCA = v.relative(t.ClientCA)
			}
		}
	}
	for i := range v.cfg.Routes {
		r := &v.cfg.Routes[i]
		if r.Via == "" {
			continue
		}
		path := fmt.Sprintf("$.routes[%d].via", i)
		switch {
		case a == nil:
			v.errorf(path, "routes[%d].via %q: no agents: block configures agents", i, r.Via)
		case !names[r.Via]:
			v.errorf(path, "routes[%d].via %q: no agent credential of that name in agents.tokens", i, r.Via)
		case r.AllowMetadata:
			v.errorf(path, "routes[%d]: allow_metadata has no meaning with via: the agent dials the target", i)
		}
	}
}

// relative resolves a file named in the config against the config's
// directory, as resource_policy_file.
func (v *validator) relative(f string) string {
	if f != "" && !filepath.IsAbs(f) {
		return filepath.Join(filepath.Dir(v.file), f)
	}
	return f
}

// LoadAgent reads and validates the agent's config file, with the token
// from the process environment.
func LoadAgent(path string) (*AgentConfig, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseAgent(path, data, os.LookupEnv)
}

// ParseAgent decodes and validates an agent config read from file. Errors
// are FILE:LINE, as drawbridge.yaml's.
func ParseAgent(file string, data []byte, env LookupEnv) (*AgentConfig, error) {
	body, err := Document(file, data)
	if err != nil {
		return nil, err
	}
	c := &AgentConfig{}
	if err := Decode(file, body, c); err != nil {
		return nil, err
	}
	c.File = file
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	v := &validator{cfg: &Config{File: file, Lines: yamlLines(body)}, file: file, env: env}
	v.agentConfig(c)
	if len(v.problems) > 0 {
		return nil, &Error{Problems: v.problems}
	}
	return c, nil
}

func (v *validator) agentConfig(c *AgentConfig) {
	u, err := url.Parse(c.Edge)
	switch {
	case c.Edge == "":
		v.errorf("$.edge", "edge is required: the https URL of the edge's agents listener")
	case err != nil || u.Scheme != "https" || u.Host == "":
		v.errorf("$.edge", "edge %q: want https://host:port (agents connect over TLS only)", c.Edge)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil:
		v.errorf("$.edge", "edge %q: want https://host:port with no path, query or credentials", c.Edge)
	}
	if !agentName.MatchString(c.Name) {
		v.errorf("$.name", "name %q: use 1-64 letters, digits, '.', '-' or '_'", c.Name)
	}
	switch {
	case c.TokenEnv != "":
		val, ok := v.env(c.TokenEnv)
		if !ok || len(val) < minTokenLen {
			v.errorf("$.token_env", "token_env: environment variable %s is not set or shorter than %d characters", c.TokenEnv, minTokenLen)
		}
		c.Token = val
	case c.Cert == "":
		v.errorf("$", "set token_env, or cert and key for mutual TLS")
	}
	if (c.Cert == "") != (c.Key == "") {
		v.errorf("$.cert", "cert and key go together")
	}
	c.CA, c.Cert, c.Key = v.relative(c.CA), v.relative(c.Cert), v.relative(c.Key)
	setInt(&c.Connections, DefaultAgentConnections)
	if c.Connections < 1 || c.Connections > 64 {
		v.errorf("$.connections", "connections must be 1-64")
	}
	if len(c.Egress.Allow) == 0 {
		v.errorf("$.egress", "egress.allow is required: the agent dials only what it lists, whatever the edge asks")
	}
	for i := range c.Egress.Allow {
		c.Egress.Lines = append(c.Egress.Lines, v.line(fmt.Sprintf("$.egress.allow[%d]", i)))
	}
	setDefault(&c.Admin, DefaultAgentAdmin)
	if c.Admin != AdminOff {
		v.hostPort("$.admin", "admin", c.Admin)
	}
}
