package serverless

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

// Native writes im.Config as a drawbridge.yaml that config.Parse reads
// back into the same Config, each value commented with the serverless.yml
// key it came from. source names the serverless.yml in those comments. Only what
// the import set is written; everything else keeps its default.
func (im *Imported) Native(source string) []byte {
	c := im.Config
	w := &nativeWriter{origins: im.Origins, source: source}
	w.line(0, "# drawbridge.yaml imported from "+source+" by `drawbridge import serverless`.", "")
	w.line(0, "# Each value names the serverless.yml key it came from. What only AWS needed", "")
	w.line(0, "# (VPC, IAM, packaging, plugins of the build) is left out:", "")
	for _, p := range c.Warnings {
		w.line(0, "#   "+strings.TrimPrefix(p.Msg, "warning: ")+w.at(p.Line), "")
	}
	w.line(0, "stage: "+quote(c.Stage), w.note("$.stage", "the Serverless Framework's default stage"))
	w.line(0, "api: "+string(c.API), "http events: REST API; httpApi events: HTTP API")
	if c.AWS.Region != "" {
		w.line(0, "aws:", "")
		w.line(1, "region: "+quote(c.AWS.Region), w.note("$.aws.region", ""))
	}
	w.drawbridgeKeys(c)
	if c.Throttle != nil {
		w.line(0, "throttle: "+throttleFlow(c.Throttle), w.note("$.throttle", ""))
	}
	if c.CORS != nil {
		w.line(0, "cors: "+corsFlow(c.CORS), w.note("$.cors", ""))
	}
	if c.ResourcePolicy != "" {
		var doc any
		json.Unmarshal([]byte(c.ResourcePolicy), &doc)
		w.line(0, "resource_policy:", w.note("$.resource_policy", ""))
		w.block(1, doc)
	}
	if len(c.UsagePlans) > 0 {
		w.line(0, "usage_plans:", "")
		names := make([]string, 0, len(c.UsagePlans))
		for n := range c.UsagePlans {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			p := c.UsagePlans[n]
			path := "$.usage_plans." + n
			if p.Quota == nil && p.Throttle == nil && len(p.Methods) == 0 {
				w.line(1, quote(n)+": {}", w.note(path, "")+"; no limits")
				continue
			}
			w.line(1, quote(n)+":", w.note(path, ""))
			if q := p.Quota; q != nil {
				s := fmt.Sprintf("quota: {limit: %d, period: %s", q.Limit, q.Period)
				if q.Offset != 0 {
					s += fmt.Sprintf(", offset: %d", q.Offset)
				}
				w.line(2, s+"}", w.note(path+".quota", ""))
			}
			if p.Throttle != nil {
				w.line(2, "throttle: "+throttleFlow(p.Throttle), w.note(path+".throttle", ""))
			}
			if len(p.Methods) > 0 {
				w.line(2, "methods:", "")
				ms := make([]string, 0, len(p.Methods))
				for m := range p.Methods {
					ms = append(ms, m)
				}
				sort.Strings(ms)
				for _, m := range ms {
					t := p.Methods[m]
					w.line(3, quote(m)+": "+throttleFlow(&t), "")
				}
			}
		}
	}
	if len(c.APIKeys) > 0 {
		w.line(0, "api_keys:", "")
		for i, k := range c.APIKeys {
			path := fmt.Sprintf("$.api_keys[%d]", i)
			w.line(1, "- name: "+quote(k.Name), w.note(path, ""))
			if k.Plan != "" {
				w.line(2, "plan: "+quote(k.Plan), "")
			}
			switch {
			case k.SHA256 != "":
				w.line(2, "sha256: "+quote(k.SHA256), "SHA-256 of the value written in "+source+": move the key to an environment variable")
			case k.ValueEnv != "":
				why := "read from " + w.note(path+".value_env", "")
				if strings.HasPrefix(k.ValueEnv, "DRAWBRIDGE_KEY_") && w.origins[path+".value_env"].Line == 0 {
					why = "AWS generated this key: put its value in this variable"
				}
				w.line(2, "value_env: "+quote(k.ValueEnv), why)
			}
			if k.Enabled != nil {
				w.line(2, "enabled: "+strconv.FormatBool(*k.Enabled), "")
			}
		}
	}
	w.authorizers(c)
	w.line(0, "routes:", "")
	for i, r := range c.Routes {
		path := fmt.Sprintf("$.routes[%d]", i)
		w.line(1, "- path: "+quote(r.Path), w.note(path, ""))
		w.line(2, "methods: ["+strings.Join(r.Methods, ", ")+"]", "")
		w.line(2, "target: "+quote(r.Target), w.note(path+".target", ""))
		w.line(2, "timeout: "+time.Duration(r.Timeout).String(), w.note(path+".timeout", "the Serverless Framework's default Lambda timeout"))
		if r.APIKeyRequired {
			w.line(2, "api_key_required: true", w.note(path+".api_key_required", ""))
		}
		if r.Throttle != nil {
			w.line(2, "throttle: "+throttleFlow(r.Throttle), w.note(path+".throttle", ""))
		}
		if r.CORS != nil {
			w.line(2, "cors: "+corsFlow(r.CORS), w.note(path+".cors", ""))
		}
		if r.Authorizer != "" {
			w.line(2, "authorizer: "+quote(r.Authorizer), w.note(path+".authorizer", ""))
			if len(r.Scopes) > 0 {
				w.line(2, "scopes: "+flowList(r.Scopes), "")
			}
		}
	}
	return w.buf.Bytes()
}

// drawbridgeKeys writes what custom.drawbridge set.
func (w *nativeWriter) drawbridgeKeys(c *config.Config) {
	set := func(k string) bool { _, ok := w.origins["$."+k]; return ok }
	list := func(l []string) string {
		q := make([]string, len(l))
		for i, s := range l {
			q[i] = quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	dur := func(d config.Duration) string { return time.Duration(d).String() }
	if set("listen") {
		w.line(0, "listen: "+quote(c.Listen), w.note("$.listen", ""))
	}
	if set("admin") {
		w.line(0, "admin: "+quote(c.Admin), w.note("$.admin", ""))
	}
	if set("client_ip") {
		w.line(0, "client_ip: {trusted_proxies: "+list(c.ClientIP.TrustedProxies)+"}", w.note("$.client_ip", ""))
	}
	if set("limits") {
		w.line(0, fmt.Sprintf("limits: {max_body_bytes: %d, max_header_bytes: %d}", c.Limits.MaxBodyBytes, c.Limits.MaxHeaderBytes), w.note("$.limits", ""))
	}
	if set("server") {
		sv := c.Server
		w.line(0, "server: {read_header_timeout: "+dur(sv.ReadHeaderTimeout)+", idle_timeout: "+dur(sv.IdleTimeout)+", shutdown_timeout: "+dur(sv.ShutdownTimeout)+"}", w.note("$.server", ""))
	}
	if set("state") {
		st := c.State
		w.line(0, "state: {driver: "+quote(st.Driver)+", path: "+quote(st.Path)+", url: "+quote(st.URL)+", prefix: "+quote(st.Prefix)+", on_error: "+quote(string(st.OnError))+"}", w.note("$.state", ""))
	}
	if set("account_throttle") {
		w.line(0, "account_throttle: "+throttleFlow(c.AccountThrottle), w.note("$.account_throttle", ""))
	}
	if set("egress") {
		w.line(0, "egress: {allow: "+list(c.Egress.Allow)+"}", w.note("$.egress", ""))
	}
	if set("ip_sets") {
		w.line(0, "ip_sets:", w.note("$.ip_sets", ""))
		names := make([]string, 0, len(c.IPSets))
		for n := range c.IPSets {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			w.line(1, quote(n)+": "+list(c.IPSets[n]), "")
		}
	}
}

type nativeWriter struct {
	buf     bytes.Buffer
	origins map[string]Origin
	source  string
}

func (w *nativeWriter) line(indent int, text, comment string) {
	pad := strings.Repeat("  ", indent)
	text = strings.ReplaceAll(text, "\n", "\n"+pad)
	w.buf.WriteString(pad + text)
	if comment != "" {
		w.buf.WriteString("  # " + comment)
	}
	w.buf.WriteByte('\n')
}

func (w *nativeWriter) at(line int) string {
	if line == 0 {
		return ""
	}
	return " (" + w.source + ":" + strconv.Itoa(line) + ")"
}

// note names where path came from, or def when the import chose it.
func (w *nativeWriter) note(path, def string) string {
	if o, ok := w.origins[path]; ok {
		return o.Key + w.at(o.Line)
	}
	return def
}

// iamOrder is the order IAM documents are usually written in.
var iamOrder = map[string]int{"Version": 1, "Id": 2, "Statement": 3, "Sid": 4, "Effect": 5, "Principal": 6,
	"NotPrincipal": 7, "Action": 8, "NotAction": 9, "Resource": 10, "NotResource": 11, "Condition": 12}

// block writes a JSON-like value (a policy document) as block YAML;
// lists of scalars go on one line.
func (w *nativeWriter) block(indent int, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			oi, oj := iamOrder[keys[i]], iamOrder[keys[j]]
			if oi != oj && oi != 0 && oj != 0 {
				return oi < oj
			}
			if (oi == 0) != (oj == 0) {
				return oi != 0
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys {
			if s, ok := flow(v[k]); ok {
				w.line(indent, keyText(k)+": "+s, "")
				continue
			}
			w.line(indent, keyText(k)+":", "")
			w.block(indent+1, v[k])
		}
	case []any:
		for _, item := range v {
			if s, ok := flow(item); ok {
				w.line(indent, "- "+s, "")
				continue
			}
			// "- " then the mapping's keys indented under it
			sub := &nativeWriter{}
			sub.block(0, item)
			lines := strings.Split(strings.TrimSuffix(sub.buf.String(), "\n"), "\n")
			for i, l := range lines {
				if i == 0 {
					w.line(indent, "- "+l, "")
				} else {
					w.line(indent, "  "+l, "")
				}
			}
		}
	}
}

var plainKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

func keyText(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return quote(k)
}

// flow writes scalars and lists of scalars inline.
func flow(v any) (string, bool) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			return "{}", true
		}
		return "", false
	case []any:
		parts := make([]string, len(v))
		for i, item := range v {
			s, ok := flow(item)
			if !ok || strings.HasPrefix(s, "[") {
				return "", false
			}
			parts[i] = s
		}
		return "[" + strings.Join(parts, ", ") + "]", true
	}
	b, _ := json.Marshal(v)
	return string(b), true
}

func throttleFlow(t *config.Throttle) string {
	s := "{rate: " + strconv.FormatFloat(float64(t.Rate), 'f', -1, 64) + ", burst: " + strconv.FormatInt(int64(t.Burst), 10)
	if t.MaxConcurrent != 0 {
		s += ", max_concurrent: " + strconv.FormatInt(int64(t.MaxConcurrent), 10)
	}
	return s + "}"
}

// quote writes s as a YAML double-quoted scalar (JSON's escapes are a
// subset of YAML's).
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// authorizers writes the authorizers: map, by name.
func (w *nativeWriter) authorizers(c *config.Config) {
	if len(c.Authorizers) == 0 {
		return
	}
	names := make([]string, 0, len(c.Authorizers))
	for n := range c.Authorizers {
		names = append(names, n)
	}
	sort.Strings(names)
	w.line(0, "authorizers:", "")
	for _, n := range names {
		a := c.Authorizers[n]
		path := "$.authorizers." + n
		w.line(1, quote(n)+":", w.note(path, ""))
		w.line(2, "type: "+string(a.Type), "")
		for _, kv := range []struct{ k, v string }{{"issuer", a.Issuer}, {"jwks_uri", a.JWKSURI}, {"url", a.URL}} {
			if kv.v != "" {
				w.line(2, kv.k+": "+quote(kv.v), "")
			}
		}
		if len(a.Audience) > 0 {
			w.line(2, "audience: "+flowList(a.Audience), "")
		}
		if a.Leeway != 0 {
			w.line(2, "leeway: "+time.Duration(a.Leeway).String(), "")
		}
		if len(a.IdentitySources) > 0 {
			w.line(2, "identity_sources: "+flowList(a.IdentitySources), "")
		}
		if a.Type == config.AuthorizerRequest {
			w.line(2, "ttl: "+a.CacheTTL().String(), "")
			if a.Timeout != 0 {
				w.line(2, "timeout: "+time.Duration(a.Timeout).String(), "")
			}
			if a.OnError != 0 {
				w.line(2, "on_error: "+strconv.Itoa(a.OnError), "")
			}
		}
	}
}

func flowList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
