package serverless

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/drawbridge/drawbridge/internal/config"
)

// This file turns a serverless.yml AST into a small tree that keeps every
// node's line, and resolves the Serverless Framework's ${...} variables
// in it lazily: only the values drawbridge reads are resolved, so a
// ${ssm:...} under an ignored key (vpc, resources) costs nothing and
// fails nothing.

type snKind uint8

const (
	snNull snKind = iota
	snScalar
	snMap
	snSeq
)

// scalar types, as YAML wrote them
type snType uint8

const (
	tString snType = iota
	tInt
	tFloat
	tBool
)

// snode is one YAML value with its line.
type snode struct {
	kind  snKind
	line  int
	typ   snType
	str   string   // scalar text
	tag   string   // "!Ref", "!GetAtt", ... (CloudFormation short forms)
	keys  []string // snMap, in file order
	kline []int
	vals  []*snode
	items []*snode // snSeq
	// fromVar marks a scalar that a variable produced: ${env:T} is text,
	// yet "timeout: ${env:T, 6}" means a number.
	fromVar bool
}

func (n *snode) get(key string) (*snode, int) {
	if n == nil || n.kind != snMap {
		return nil, 0
	}
	for i, k := range n.keys {
		if k == key {
			return n.vals[i], n.kline[i]
		}
	}
	return nil, 0
}

// at is get without the line.
func (n *snode) at(key string) *snode {
	v, _ := n.get(key)
	return v
}

// maxNodes bounds the tree (anchors and aliases can make a small file
// describe a huge one) and the work of resolving variables.
const maxNodes = 200000

// maxVarDepth bounds variables that refer to variables.
const maxVarDepth = 16

type treeBuilder struct {
	anchors map[string]*snode
	count   int
}

type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return e.msg }

func lineErrorf(line int, format string, args ...any) error {
	return &lineError{line: line, msg: fmt.Sprintf(format, args...)}
}

// buildTree converts body; goccy/go-yaml ASTs can be odd on odd input, so
// a panic becomes an error as in config.Decode.
func buildTree(body ast.Node) (n *snode, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = nil, lineErrorf(config.NodeLine(body), "malformed YAML that the parser cannot decode")
		}
	}()
	b := &treeBuilder{anchors: map[string]*snode{}}
	return b.node(body, 0)
}

func (b *treeBuilder) node(n ast.Node, depth int) (*snode, error) {
	b.count++
	if b.count > maxNodes || depth > 200 {
		return nil, lineErrorf(config.NodeLine(n), "serverless.yml is too large or too deeply nested")
	}
	line := config.NodeLine(n)
	switch n := n.(type) {
	case nil:
		return &snode{kind: snNull}, nil
	case *ast.NullNode:
		return &snode{kind: snNull, line: line}, nil
	case *ast.StringNode:
		return &snode{kind: snScalar, line: line, typ: tString, str: n.Value}, nil
	case *ast.LiteralNode:
		s := ""
		if n.Value != nil {
			s = n.Value.Value
		}
		return &snode{kind: snScalar, line: line, typ: tString, str: s}, nil
	case *ast.IntegerNode:
		return &snode{kind: snScalar, line: line, typ: tInt, str: n.GetToken().Value}, nil
	case *ast.FloatNode:
		return &snode{kind: snScalar, line: line, typ: tFloat, str: n.GetToken().Value}, nil
	case *ast.InfinityNode, *ast.NanNode:
		return &snode{kind: snScalar, line: line, typ: tFloat, str: n.GetToken().Value}, nil
	case *ast.BoolNode:
		return &snode{kind: snScalar, line: line, typ: tBool, str: strconv.FormatBool(n.Value)}, nil
	case *ast.AnchorNode:
		v, err := b.node(n.Value, depth+1)
		if err != nil {
			return nil, err
		}
		if n.Name != nil {
			b.anchors[n.Name.GetToken().Value] = v
		}
		return v, nil
	case *ast.AliasNode:
		name := ""
		if n.Value != nil {
			name = n.Value.GetToken().Value
		}
		v, ok := b.anchors[name]
		if !ok {
			return nil, lineErrorf(line, "unknown alias *%s", name)
		}
		return v, nil
	case *ast.TagNode:
		v, err := b.node(n.Value, depth+1)
		if err != nil {
			return nil, err
		}
		tag := n.Start.Value
		if v.kind == snScalar && (tag == "!!str" || tag == "tag:yaml.org,2002:str") {
			c := *v
			c.typ = tString
			return &c, nil
		}
		c := *v
		c.tag = tag
		return &c, nil
	case *ast.MappingValueNode:
		m := &snode{kind: snMap, line: line}
		return m, b.entry(m, n, depth)
	case *ast.MappingNode:
		m := &snode{kind: snMap, line: line}
		for _, mv := range n.Values {
			if err := b.entry(m, mv, depth); err != nil {
				return nil, err
			}
		}
		if len(n.Values) > 0 {
			m.line = config.NodeLine(n.Values[0].Key)
		}
		return m, nil
	case *ast.SequenceNode:
		s := &snode{kind: snSeq, line: line}
		for _, v := range n.Values {
			c, err := b.node(v, depth+1)
			if err != nil {
				return nil, err
			}
			s.items = append(s.items, c)
		}
		return s, nil
	case *ast.CommentNode:
		return &snode{kind: snNull, line: line}, nil
	}
	return nil, lineErrorf(line, "unsupported YAML construct %s", n.Type())
}

func (b *treeBuilder) entry(m *snode, mv *ast.MappingValueNode, depth int) error {
	v, err := b.node(mv.Value, depth+1)
	if err != nil {
		return err
	}
	kl := config.NodeLine(mv.Key)
	if mv.Key.IsMergeKey() {
		// "<<: *base" merges the keys not already present.
		srcs := []*snode{v}
		if v.kind == snSeq {
			srcs = v.items
		}
		for _, s := range srcs {
			if s.kind != snMap {
				return lineErrorf(kl, "<< merges mappings only")
			}
			for i, k := range s.keys {
				if c, _ := m.get(k); c == nil {
					m.keys, m.kline, m.vals = append(m.keys, k), append(m.kline, s.kline[i]), append(m.vals, s.vals[i])
				}
			}
		}
		return nil
	}
	kn, err := b.node(mv.Key, depth+1)
	if err != nil {
		return err
	}
	if kn.kind != snScalar {
		return lineErrorf(kl, "mapping keys must be text")
	}
	if c, _ := m.get(kn.str); c != nil {
		return lineErrorf(kl, "mapping key %q already defined", kn.str)
	}
	m.keys, m.kline, m.vals = append(m.keys, kn.str), append(m.kline, kl), append(m.vals, v)
	return nil
}

// Options are the command-line options a serverless.yml may read
// as ${opt:NAME}: stage and region have their own fields, the rest are in
// Opts. The zero value means "none given", as `serverless package` run
// without flags.
type Options struct {
	Stage  string
	Region string
	Opts   map[string]string
	// WithoutSecrets checks the file without the API keys' values: a
	// value_env that is not set is accepted and its Digest left zero.
	// For `drawbridge import`, which writes only the variables' names.
	WithoutSecrets bool
}

func (o Options) lookup(name string) (string, bool) {
	switch {
	case name == "stage" && o.Stage != "":
		return o.Stage, true
	case name == "region" && o.Region != "":
		return o.Region, true
	}
	v, ok := o.Opts[name]
	return v, ok
}

// resolver resolves ${...} variables of one serverless.yml.
type resolver struct {
	root  *snode
	dir   string            // the serverless.yml's directory: ${file()} paths are relative to it
	files map[string]*snode // ${file()} trees by path, read once
	code  map[string]bool   // JavaScript files already refused
	env   config.LookupEnv
	opts  Options
	stage string // for ${sls:stage}, once known
	work  int
	stack []string // self: addresses being resolved, to report cycles
}

// value returns n with the variables of a scalar resolved; maps and lists
// come back as they are and are resolved as they are read.
func (r *resolver) value(n *snode) (*snode, error) {
	if n == nil || n.kind != snScalar || n.typ != tString || !strings.Contains(n.str, "${") {
		return n, nil
	}
	r.work++
	if r.work > maxNodes {
		return nil, lineErrorf(n.line, "variables need too much work to resolve")
	}
	return r.interpolate(n.str, n.line)
}

// interpolate resolves every ${...} in s. A string that is exactly one
// variable takes the variable's value, whatever its kind (a list, a
// number); one with text around variables is text.
func (r *resolver) interpolate(s string, line int) (*snode, error) {
	start, end, err := findVar(s, line)
	if err != nil {
		return nil, err
	}
	if start == 0 && end == len(s) {
		return r.variable(s[2:len(s)-1], line)
	}
	var b strings.Builder
	for {
		b.WriteString(s[:start])
		v, err := r.variable(s[start+2:end-1], line)
		if err != nil {
			return nil, err
		}
		if v.kind != snScalar {
			return nil, lineErrorf(line, "variable %s is used inside text but is not text itself", s[start:end])
		}
		b.WriteString(v.str)
		s = s[end:]
		if !strings.Contains(s, "${") {
			b.WriteString(s)
			break
		}
		if start, end, err = findVar(s, line); err != nil {
			return nil, err
		}
	}
	return &snode{kind: snScalar, line: line, typ: tString, str: b.String(), fromVar: true}, nil
}

// findVar finds the first ${...} in s, with nested ${} counted.
func findVar(s string, line int) (start, end int, err error) {
	start = strings.Index(s, "${")
	if start < 0 {
		return 0, 0, lineErrorf(line, "no variable in %q", s)
	}
	depth := 0
	for i := start; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "${"):
			depth++
			i++
		case s[i] == '}':
			depth--
			if depth == 0 {
				return start, i + 1, nil
			}
		}
	}
	return 0, 0, lineErrorf(line, "unterminated variable %q: missing }", s[start:])
}

// variable resolves the inside of one ${...}: a source and its fallbacks,
// "opt:stage, self:provider.stage, 'dev'".
func (r *resolver) variable(inner string, line int) (*snode, error) {
	if len(r.stack) > maxVarDepth {
		return nil, lineErrorf(line, "variables nested more than %d deep", maxVarDepth)
	}
	parts := splitFallbacks(inner)
	var why []string
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, lineErrorf(line, "empty variable in ${%s}", inner)
		}
		v, ok, err := r.source(p, line)
		if err != nil {
			if bareWord(p) {
				// ${opt:stage, dev}: name the whole variable and say what to
				// write, rather than calling dev a variable of its own.
				return nil, lineErrorf(line, "${%s}: %s is neither a quoted default nor source:address (self:, opt:, env:, sls:); write '%s' in quotes", inner, p, p)
			}
			return nil, err
		}
		if ok {
			return v, nil
		}
		if strings.HasPrefix(p, "file(") {
			p += " (no such file next to the serverless.yml, or no such key in it)"
		} else if src, _, _ := strings.Cut(p, ":"); !knownSources[src] {
			p += " (answered by AWS or the framework, not here)"
		}
		why = append(why, p)
	}
	return nil, lineErrorf(line, "cannot resolve ${%s}: %s not set", inner, strings.Join(why, ", "))
}

// bareWord reports whether a fallback is a plain word without a source,
// such as dev in ${opt:stage, dev}.
func bareWord(p string) bool {
	return p != "" && !strings.ContainsAny(p, ":'\"${}")
}

var knownSources = map[string]bool{"self": true, "opt": true, "env": true, "sls": true}

// splitFallbacks splits at commas outside quotes and nested ${}.
func splitFallbacks(s string) []string {
	var parts []string
	depth, quote, from := 0, byte(0), 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '$' && i+1 < len(s) && s[i+1] == '{':
			depth++
			i++
		case c == '}':
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, s[from:i])
			from = i + 1
		}
	}
	return append(parts, s[from:])
}

// source resolves one candidate: a quoted or numeric literal, a nested
// variable, or source:address. ok is false when it is simply not set, so
// the next fallback is tried.
func (r *resolver) source(p string, line int) (*snode, bool, error) {
	if len(p) >= 2 && (p[0] == '\'' || p[0] == '"') && p[len(p)-1] == p[0] {
		return &snode{kind: snScalar, line: line, typ: tString, str: p[1 : len(p)-1], fromVar: true}, true, nil
	}
	if _, err := strconv.ParseFloat(p, 64); err == nil {
		typ := tFloat
		if _, err := strconv.ParseInt(p, 10, 64); err == nil {
			typ = tInt
		}
		return &snode{kind: snScalar, line: line, typ: typ, str: p, fromVar: true}, true, nil
	}
	if p == "true" || p == "false" {
		return &snode{kind: snScalar, line: line, typ: tBool, str: p, fromVar: true}, true, nil
	}
	if strings.Contains(p, "${") {
		// a nested variable as a fallback, ${env:X, ${self:y}}, is that
		// variable's value; in an address, ${self:custom.${opt:stage}}, it
		// is resolved first
		whole := false
		if start, end, err := findVar(p, line); err == nil && start == 0 && end == len(p) {
			whole = true
		}
		v, err := r.interpolate(p, line)
		if err != nil {
			return nil, false, err
		}
		if whole || v.kind != snScalar {
			return v, true, nil
		}
		p = v.str
		if strings.Contains(p, "${") {
			return nil, false, lineErrorf(line, "variable %q did not resolve", p)
		}
	}
	if strings.HasPrefix(p, "file(") {
		return r.file(p, line)
	}
	src, addr, found := strings.Cut(p, ":")
	if !found {
		return nil, false, lineErrorf(line, "variable ${%s}: want source:address (self:, opt:, env:, sls:) or a quoted default", p)
	}
	addr = strings.TrimSpace(addr)
	switch src {
	case "self":
		return r.self(addr, line)
	case "opt":
		v, ok := r.opts.lookup(addr)
		return textNode(v, line), ok, nil
	case "env":
		v, ok := r.env(addr)
		return textNode(v, line), ok && v != "", nil
	case "sls":
		if addr == "stage" {
			return textNode(r.stage, line), r.stage != "", nil
		}
		return nil, false, lineErrorf(line, "variable ${sls:%s}: only sls:stage is known outside the Serverless Framework", addr)
	}
	// ${ssm:...}, ${cf:...}, ${s3:...}, ${aws:...}, ${file(...)}: AWS or
	// the framework would answer these; drawbridge cannot, so a default
	// is used when given.
	return nil, false, nil
}

// maxFileBytes bounds a file ${file()} reads: it is configuration, not data.
const maxFileBytes = 1 << 20

// file resolves ${file(NAME)} and ${file(NAME):a.b}: a YAML or JSON file,
// relative to the serverless.yml as the framework reads it, and an
// address inside it. Its variables resolve as the serverless.yml's own
// (self: is the serverless.yml). A missing file or address is not set, so
// a fallback applies, as in the framework. JavaScript (.js, .ts) is code
// the framework runs for the value; drawbridge runs none, and says so once
// per file.
func (r *resolver) file(p string, line int) (*snode, bool, error) {
	end := strings.IndexByte(p, ')')
	if end < 0 {
		return nil, false, lineErrorf(line, "variable ${%s}: missing )", p)
	}
	name := strings.Trim(strings.TrimSpace(p[len("file("):end]), `'"`)
	addr := ""
	if rest := strings.TrimSpace(p[end+1:]); rest != "" {
		if rest[0] != ':' {
			return nil, false, lineErrorf(line, "variable ${%s}: want file(NAME) or file(NAME):address", p)
		}
		addr = strings.TrimSpace(rest[1:])
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yml", ".yaml", ".json":
	case ".js", ".cjs", ".mjs", ".ts":
		if r.code[name] {
			return nil, false, errReported
		}
		if r.code == nil {
			r.code = map[string]bool{}
		}
		r.code[name] = true
		return nil, false, lineErrorf(line, "${%s}: %s is code the Serverless Framework runs to get values; drawbridge runs no code: write the values in a .yml or .json file (${file(x.yml):key}) or in the serverless.yml", p, name)
	default:
		return nil, false, lineErrorf(line, "${%s}: drawbridge reads .yml, .yaml and .json files only", p)
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(r.dir, path)
	}
	n, ok := r.files[path]
	if !ok {
		var err error
		if n, err = readTree(path, line); err != nil {
			return nil, false, err
		}
		if r.files == nil {
			r.files = map[string]*snode{}
		}
		r.files[path] = n
	}
	if n == nil {
		return nil, false, nil // no such file
	}
	return r.walk(n, addr)
}

// readTree reads a file for ${file()}; nil without error when it does not
// exist. Its nodes take line, the referencing line of the serverless.yml,
// so messages point where the user wrote the variable.
func readTree(path string, line int) (*snode, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, lineErrorf(line, "read %s: %v", filepath.Base(path), err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, lineErrorf(line, "read %s: %v", filepath.Base(path), err)
	}
	if len(data) > maxFileBytes {
		return nil, lineErrorf(line, "%s: larger than %d bytes", filepath.Base(path), maxFileBytes)
	}
	body, err := config.Document(path, data)
	if err != nil {
		return nil, lineErrorf(line, "%s: %v", filepath.Base(path), err)
	}
	n, err := buildTree(body)
	if err != nil {
		return nil, lineErrorf(line, "%s: %v", filepath.Base(path), err)
	}
	setLines(n, line)
	return n, nil
}

func setLines(n *snode, line int) {
	if n == nil {
		return
	}
	n.line = line
	for i := range n.kline {
		n.kline[i] = line
	}
	for _, c := range n.vals {
		setLines(c, line)
	}
	for _, c := range n.items {
		setLines(c, line)
	}
}

// errReported is an error already reported once: fail records nothing.
var errReported = &lineError{}

func textNode(s string, line int) *snode {
	return &snode{kind: snScalar, line: line, typ: tString, str: s, fromVar: true}
}

// self resolves ${self:a.b.0.c} against the file itself, reporting cycles.
func (r *resolver) self(addr string, line int) (*snode, bool, error) {
	for i, a := range r.stack {
		if a == addr {
			chain := append(append([]string{}, r.stack[i:]...), addr)
			return nil, false, lineErrorf(line, "variable cycle: self:%s", strings.Join(chain, " -> self:"))
		}
	}
	r.stack = append(r.stack, addr)
	defer func() { r.stack = r.stack[:len(r.stack)-1] }()
	return r.walk(r.root, addr)
}

// walk follows a dotted address (a.b.0) from n, resolving variables on
// the way; ok is false when something on the way is not there.
func (r *resolver) walk(n *snode, addr string) (*snode, bool, error) {
	n, err := r.value(n)
	if err != nil {
		return nil, false, err
	}
	if addr == "" {
		return n, true, nil
	}
	for _, seg := range strings.Split(addr, ".") {
		switch n.kind {
		case snMap:
			c, _ := n.get(seg)
			if c == nil {
				return nil, false, nil
			}
			n = c
		case snSeq:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(n.items) {
				return nil, false, nil
			}
			n = n.items[i]
		default:
			return nil, false, nil
		}
		if n, err = r.value(n); err != nil {
			return nil, false, err
		}
	}
	if n.kind == snNull {
		return nil, false, nil
	}
	return n, true, nil
}

// plain resolves n and everything under it into Go values (map[string]any,
// []any, string, int64, float64, bool, nil), for documents drawbridge
// keeps whole, as a resource policy.
func (r *resolver) plain(n *snode) (any, error) {
	n, err := r.value(n)
	if err != nil {
		return nil, err
	}
	r.work++
	if r.work > maxNodes {
		return nil, lineErrorf(n.line, "variables need too much work to resolve")
	}
	switch n.kind {
	case snMap:
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			v, err := r.plain(n.vals[i])
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case snSeq:
		l := make([]any, len(n.items))
		for i, c := range n.items {
			v, err := r.plain(c)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return l, nil
	case snScalar:
		if n.tag != "" {
			return nil, lineErrorf(n.line, "CloudFormation function %s cannot be evaluated outside AWS", n.tag)
		}
		switch n.typ {
		case tInt:
			if v, err := strconv.ParseInt(n.str, 0, 64); err == nil {
				return v, nil
			}
			return n.str, nil
		case tFloat:
			if v, err := strconv.ParseFloat(n.str, 64); err == nil {
				return v, nil
			}
		case tBool:
			return n.str == "true", nil
		}
		return n.str, nil
	}
	return nil, nil
}
