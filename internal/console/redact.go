package console

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/egress"
)

// redactedYAML is the effective config (defaults filled in) as YAML, with
// what could help an attacker removed: key and token digests (a digest
// lets anyone test guesses offline), passwords in state URLs, and any
// key named like a password or secret value. Secrets themselves never
// reach the Config (they stay in the environment, or as digests).
func redactedYAML(cfg *config.Config) (string, error) {
	b, err := yaml.MarshalWithOptions(cfg,
		yaml.CustomMarshaler[config.Duration](func(d config.Duration) ([]byte, error) {
			return []byte(time.Duration(d).String()), nil
		}),
		yaml.CustomMarshaler[config.Policy](func(p config.Policy) ([]byte, error) {
			// The document is kept as JSON text: show it as a mapping.
			var v any
			if err := json.Unmarshal([]byte(p), &v); err != nil || p == "" {
				return []byte("null"), nil
			}
			return yaml.Marshal(v)
		}))
	if err != nil {
		return "", err
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return "", err
	}
	v = redactValue("", v)
	out, err := yaml.MarshalWithOptions(v, yaml.Indent(2), yaml.IndentSequence(true))
	return string(out), err
}

func redactValue(key string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = redactValue(k, e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = redactValue(key, e)
		}
		return x
	case string:
		if secretKey(key) && x != "" {
			return delivery.Redacted
		}
		if strings.Contains(x, "://") {
			return redactURL(x)
		}
	}
	return v
}

// secretKey: the config keys whose values are secret or let one be
// guessed offline. *_env keys name variables and stay visible.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	return k == "sha256" || k == "digest" || strings.Contains(k, "password") || k == "secret" || k == "token"
}

// redactURL hides a URL's password (redis://:pw@host, and the
// multi-host sentinel and cluster forms url.Parse refuses).
func redactURL(s string) string {
	return userinfoPassword.ReplaceAllString(s, "://${1}:"+delivery.Redacted+"@")
}

var userinfoPassword = regexp.MustCompile(`://([^:@/]*):([^@/]*)@`)

// egressTable is what `drawbridge check` prints for the egress guard,
// compiled from the config in force (names are resolved when dialed, so
// compiling resolves nothing).
func egressTable(cfg *config.Config) string {
	g, err := egress.Compile(cfg, egress.Options{})
	if err != nil {
		return "egress: " + err.Error()
	}
	return g.Table()
}
