// Package routepath is the grammar of a route's path, shared by the
// config loader (which refuses what breaks it, with the line), the
// serverless.yml reader (which maps API Gateway's resource paths onto it)
// and the gateway (which matches requests by it): an exact path, a prefix
// ending in "/*", or a template whose segments may be a whole "{name}" and,
// last, a greedy "{name+}", as API Gateway's resource paths
// (docs/config.md, "Path templates").
package routepath

import (
	"fmt"
	"strings"
)

// Check returns why a configured route path is unusable, or "".
// A path is exact, a prefix ending in "/*", or a template whose segments
// may be a whole "{name}" and, last, a greedy "{name+}" (as API Gateway's
// resource paths); templates and "/*" do not mix.
func Check(p string) string {
	if p == "" || p[0] != '/' {
		return "must start with /"
	}
	base := p
	if strings.HasSuffix(p, "/*") {
		base = p[:len(p)-2]
	}
	if strings.ContainsAny(base, "*?#%\\ ") {
		return "may only end in /* and must not contain * ? # % \\ or spaces"
	}
	if base == "" {
		return ""
	}
	segs := strings.Split(base[1:], "/")
	names := map[string]bool{}
	for i, seg := range segs {
		if seg == "" && base != "/" {
			return "empty segment"
		}
		if seg == "." || seg == ".." {
			return "dot segment"
		}
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		name, greedy, ok := Param(seg)
		switch {
		case !ok:
			return fmt.Sprintf("segment %q: a parameter is a whole segment {name} (letters, digits, _ . -) or, last, {name+}", seg)
		case greedy && i != len(segs)-1:
			return fmt.Sprintf("%s must be the last segment", seg)
		case base != p:
			return "a path with {parameters} cannot end in /*; end it in {name+} instead"
		case names[name]:
			return fmt.Sprintf("parameter {%s} appears twice", name)
		}
		names[name] = true
	}
	return ""
}

// Param reads a path segment written "{name}" or "{name+}".
func Param(seg string) (name string, greedy, ok bool) {
	if len(seg) < 3 || seg[0] != '{' || seg[len(seg)-1] != '}' {
		return "", false, false
	}
	name = seg[1 : len(seg)-1]
	if strings.HasSuffix(name, "+") {
		name, greedy = name[:len(name)-1], true
	}
	if name == "" {
		return "", false, false
	}
	for _, c := range name {
		if !(c == '_' || c == '.' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", false, false
		}
	}
	return name, greedy, true
}

// Shape is a path with its parameter names blanked, so that
// /items/{id} and /items/{name}, which match the same requests, are one
// route for the duplicate check.
func Shape(p string) string {
	if !strings.Contains(p, "{") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if _, greedy, ok := Param(seg); ok {
			segs[i] = "{}"
			if greedy {
				segs[i] = "{+}"
			}
		}
	}
	return strings.Join(segs, "/")
}
