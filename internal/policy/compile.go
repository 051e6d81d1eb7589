package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/drawbridge/drawbridge/internal/glob"
)

// Error is a compile error. Statement lets the config loader point at the
// statement's line in a YAML file.
type Error struct {
	// Statement is the 0-based index of the offending statement, or -1 for
	// the document as a whole.
	Statement int
	Sid       string
	Msg       string
}

func (e *Error) Error() string {
	if e.Statement < 0 {
		return "resource policy: " + e.Msg
	}
	s := "resource policy: statement " + itoa(e.Statement)
	if e.Sid != "" {
		s += " (Sid " + quote(e.Sid) + ")"
	}
	return s + ": " + e.Msg
}

// Compile parses a policy document (JSON; the config loader turns inline
// YAML into JSON first) for an API whose identity is unknown. See
// CompileFor.
func Compile(doc []byte) (*Policy, error) {
	return CompileFor(doc, Identity{})
}

// CompileFor parses a policy document for the API named by id (used only
// by full ARN resources). Unknown elements, operators and condition keys,
// unsupported principals and malformed values are errors naming them.
func CompileFor(doc []byte, id Identity) (*Policy, error) {
	var top map[string]json.RawMessage
	if err := decodeObject(doc, &top); err != nil {
		return nil, &Error{Statement: -1, Msg: "not a JSON object: " + err.Error()}
	}
	for _, k := range sortedKeys(top) {
		switch k {
		case "Version", "Id", "Statement":
		default:
			return nil, &Error{Statement: -1, Msg: fmt.Sprintf("unknown element %q (want Version, Id, Statement)", k)}
		}
	}
	if raw, ok := top["Version"]; ok {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil || (v != "2012-10-17" && v != "2008-10-17") {
			return nil, &Error{Statement: -1, Msg: fmt.Sprintf("Version %s: want \"2012-10-17\"", compact(raw))}
		}
	}
	raw, ok := top["Statement"]
	if !ok {
		return nil, &Error{Statement: -1, Msg: "no Statement"}
	}
	var list []json.RawMessage
	switch firstByte(raw) {
	case '{':
		list = []json.RawMessage{raw}
	case '[':
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, &Error{Statement: -1, Msg: "Statement: " + err.Error()}
		}
	default:
		return nil, &Error{Statement: -1, Msg: "Statement must be an object or an array of objects"}
	}
	if len(list) == 0 {
		return nil, &Error{Statement: -1, Msg: "Statement is empty: every request would be denied"}
	}
	p := &Policy{count: len(list)}
	sids := map[string]int{}
	for i, raw := range list {
		st, deny, inert, err := compileStatement(i, raw, id)
		if err != nil {
			return nil, err
		}
		if st.sid != "" {
			if j, dup := sids[st.sid]; dup {
				return nil, &Error{Statement: i, Sid: st.sid, Msg: fmt.Sprintf("Sid repeats statement %d's", j)}
			}
			sids[st.sid] = i
		}
		if inert {
			continue
		}
		if deny {
			p.denies = append(p.denies, st)
		} else {
			p.allows = append(p.allows, st)
		}
		for _, c := range st.conds {
			p.headers = p.headers || c.key == keyUserAgent || c.key == keyReferer
		}
	}
	return p, nil
}

// compileStatement compiles statement i. inert reports a statement that can
// never apply to execute-api:Invoke on this API (its actions exclude
// Invoke, or its resources name another API).
func compileStatement(i int, raw json.RawMessage, id Identity) (st statement, deny, inert bool, err error) {
	st.index = i
	fail := func(format string, args ...any) (statement, bool, bool, error) {
		return statement{}, false, false, &Error{Statement: i, Sid: st.sid, Msg: fmt.Sprintf(format, args...)}
	}
	var m map[string]json.RawMessage
	if firstByte(raw) != '{' {
		return fail("not a JSON object")
	}
	if e := decodeObject(raw, &m); e != nil {
		return fail("%v", e)
	}
	if v, ok := m["Sid"]; ok {
		if e := json.Unmarshal(v, &st.sid); e != nil {
			return fail("Sid %s: want a string", compact(v))
		}
	}
	for _, k := range sortedKeys(m) {
		switch k {
		case "Sid", "Effect", "Principal", "Action", "NotAction", "Resource", "NotResource", "Condition":
		case "NotPrincipal":
			return fail("NotPrincipal is not supported: drawbridge has no IAM callers; use Principal \"*\" and conditions")
		default:
			return fail("unknown element %q", k)
		}
	}

	var effect string
	if e := json.Unmarshal(m["Effect"], &effect); e != nil || (effect != "Allow" && effect != "Deny") {
		return fail("Effect %s: want \"Allow\" or \"Deny\"", compact(m["Effect"]))
	}
	deny = effect == "Deny"

	if e := checkPrincipal(m["Principal"]); e != "" {
		return fail("%s", e)
	}

	// Action / NotAction: decided now, since only execute-api:Invoke exists.
	actKey, actRaw, e := exactlyOne(m, "Action", "NotAction")
	if e != "" {
		return fail("%s", e)
	}
	actions, e := stringList(actKey, actRaw)
	if e != "" {
		return fail("%s", e)
	}
	covers := false
	for _, a := range actions {
		hit, e := actionCoversInvoke(a)
		if e != "" {
			return fail("%s %q: %s", actKey, a, e)
		}
		covers = covers || hit
	}
	if actKey == "NotAction" {
		covers = !covers
	}

	resKey, resRaw, e := exactlyOne(m, "Resource", "NotResource")
	if e != "" {
		return fail("%s", e)
	}
	resources, e := stringList(resKey, resRaw)
	if e != "" {
		return fail("%s", e)
	}
	st.notResource = resKey == "NotResource"
	seen := map[string]bool{}
	for _, r := range resources {
		pats, e := compileResource(r, id)
		if e != "" {
			return fail("%s %q: %s", resKey, r, e)
		}
		for _, pat := range pats {
			if pat == "*" {
				st.allResources = true
			}
			if !seen[pat] {
				seen[pat] = true
				st.resources = append(st.resources, newPattern(pat))
			}
		}
	}
	if st.allResources {
		st.resources = nil
	}

	if c, ok := m["Condition"]; ok {
		conds, e := compileConditions(c)
		if e != "" {
			return fail("Condition: %s", e)
		}
		st.conds = conds
	}

	inert = !covers || (!st.notResource && !st.allResources && len(st.resources) == 0)
	return st, deny, inert, nil
}

func checkPrincipal(raw json.RawMessage) string {
	if raw == nil {
		return "no Principal: a resource policy statement needs Principal \"*\""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "*" {
			return ""
		}
		return fmt.Sprintf("Principal %q is not supported: drawbridge has no IAM callers; use \"*\"", s)
	}
	var m map[string]json.RawMessage
	if firstByte(raw) == '{' && decodeObject(raw, &m) == nil && len(m) == 1 && m["AWS"] != nil {
		// Only everyone: a list mixing "*" with an account would suggest
		// the account is singled out, which drawbridge cannot honour.
		if vals, e := stringList("Principal.AWS", m["AWS"]); e == "" && len(vals) == 1 && vals[0] == "*" {
			return ""
		}
	}
	return fmt.Sprintf("Principal %s is not supported: drawbridge has no IAM callers, only \"*\" or {\"AWS\": \"*\"}", compact(raw))
}

// actionCoversInvoke validates one Action value and reports whether it
// matches execute-api:Invoke. IAM action names are case-insensitive.
func actionCoversInvoke(a string) (bool, string) {
	if a == "*" {
		return true, ""
	}
	svc, name, ok := strings.Cut(a, ":")
	if !ok || svc == "" || name == "" {
		return false, "want SERVICE:ACTION, e.g. execute-api:Invoke"
	}
	if !glob.Match(strings.ToLower(svc), "execute-api") {
		return false, "not an execute-api action; a resource policy can only govern execute-api"
	}
	if !hasWildcard(name) {
		switch strings.ToLower(name) {
		case "invoke", "invalidatecache", "manageconnections":
		default:
			return false, "unknown execute-api action (want Invoke, InvalidateCache or ManageConnections)"
		}
	}
	return glob.Match(strings.ToLower(a), "execute-api:invoke"), ""
}

// compileResource turns one Resource value into glob patterns over
// "STAGE/METHOD/PATH". Several patterns come back when a full ARN's API-id
// part has wildcards that may or may not reach into the stage; none when
// the ARN names another region, account or API.
func compileResource(r string, id Identity) ([]string, string) {
	if strings.Contains(r, "${") {
		return nil, "policy variables are not supported"
	}
	if r == "*" {
		return []string{"*"}, ""
	}
	if rest, ok := strings.CutPrefix(r, "execute-api:/"); ok {
		return []string{rest}, ""
	}
	if !strings.HasPrefix(r, "arn:") {
		return nil, `want "*", execute-api:/STAGE/METHOD/PATH or arn:aws:execute-api:REGION:ACCOUNT:API-ID/STAGE/METHOD/PATH`
	}
	parts := strings.SplitN(r, ":", 6)
	if len(parts) < 6 || parts[1] == "" {
		return nil, "malformed ARN: want arn:aws:execute-api:REGION:ACCOUNT:API-ID/STAGE/METHOD/PATH"
	}
	if !glob.Match(parts[2], "execute-api") {
		return nil, "not an execute-api resource"
	}
	if id.Region != "" && !glob.Match(parts[3], id.Region) {
		return nil, ""
	}
	if id.Account != "" && !glob.Match(parts[4], id.Account) {
		return nil, ""
	}
	pat := parts[5]
	var states []int
	if id.APIID != "" {
		states = residuals(pat, id.APIID+"/")
	} else {
		states = unknownIDResiduals(pat)
	}
	out := make([]string, 0, len(states))
	for _, s := range states {
		out = append(out, pat[s:])
	}
	return out, ""
}

// exactlyOne returns whichever of a and b is present, and an error unless
// exactly one is.
func exactlyOne(m map[string]json.RawMessage, a, b string) (string, json.RawMessage, string) {
	ra, okA := m[a]
	rb, okB := m[b]
	switch {
	case okA && okB:
		return "", nil, fmt.Sprintf("both %s and %s", a, b)
	case okA:
		return a, ra, ""
	case okB:
		return b, rb, ""
	}
	return "", nil, fmt.Sprintf("no %s (or %s)", a, b)
}

// stringList reads a string or a non-empty array of strings.
func stringList(name string, raw json.RawMessage) ([]string, string) {
	switch firstByte(raw) {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return []string{s}, ""
		}
	case '[':
		var ss []string
		if json.Unmarshal(raw, &ss) == nil {
			if len(ss) == 0 {
				return nil, name + " is an empty list"
			}
			return ss, ""
		}
	}
	return nil, fmt.Sprintf("%s %s: want a string or a list of strings", name, compact(raw))
}

// decodeObject decodes a JSON object into a map, rejecting null and
// trailing data.
func decodeObject(data []byte, m *map[string]json.RawMessage) error {
	if err := json.Unmarshal(data, m); err != nil {
		return err
	}
	if *m == nil {
		return fmt.Errorf("null is not an object")
	}
	return nil
}

func firstByte(raw []byte) byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// compact renders a raw JSON value for an error message, shortened.
func compact(raw json.RawMessage) string {
	if raw == nil {
		return "(missing)"
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	s := b.String()
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
