package config

import (
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Line is the line of cfg.File that set the key at path, a path such as
// "$.routes[2].timeout" or "$.usage_plans.gold.methods./a/GET". A key
// that is absent takes the line of its nearest parent that is present,
// and 0 means none is known (a Config built in code). Packages that find
// a problem after Load (the gateway compiles the policy and matches plan
// methods to routes) report it at this line.
func (c *Config) Line(path string) int {
	for path != "" && path != "$" {
		if n, ok := c.Lines[path]; ok {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// yamlLines maps the path of every mapping value and sequence item under
// body to the line where its value starts.
func yamlLines(body ast.Node) map[string]int {
	lines := map[string]int{}
	walkLines(body, "$", lines, 0)
	return lines
}

// walkLines records n's children. Aliases are not followed: what an alias
// sets is reported at the line that uses it, its parent's.
func walkLines(n ast.Node, path string, lines map[string]int, depth int) {
	if depth > 100 {
		return // deeper than any config; the decoder reports it
	}
	switch v := n.(type) {
	case *ast.AnchorNode:
		walkLines(v.Value, path, lines, depth+1)
	case *ast.TagNode:
		walkLines(v.Value, path, lines, depth+1)
	case *ast.MappingNode:
		for _, mv := range v.Values {
			walkLines(mv, path, lines, depth+1)
		}
	case *ast.MappingValueNode:
		if v.Key == nil || v.Key.GetToken() == nil || v.Key.IsMergeKey() {
			return
		}
		p := path + "." + v.Key.GetToken().Value
		if _, dup := lines[p]; !dup { // a duplicate key is the decoder's error
			lines[p] = NodeLine(v.Value)
		}
		walkLines(v.Value, p, lines, depth+1)
	case *ast.SequenceNode:
		for i, item := range v.Values {
			p := path + "[" + strconv.Itoa(i) + "]"
			lines[p] = NodeLine(item)
			walkLines(item, p, lines, depth+1)
		}
	}
}

// NodeLine is the line a YAML node starts on, 0 when the parser gave it
// none; the serverless.yml reader uses it too.
func NodeLine(n ast.Node) int {
	if n == nil {
		return 0
	}
	if t := n.GetToken(); t != nil && t.Position != nil {
		return t.Position.Line
	}
	return 0
}
