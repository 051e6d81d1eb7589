package config

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Duration is a Go duration written as a string ("1s", "250ms"). A bare
// number is refused: "timeout: 5" could mean seconds or nanoseconds, and
// guessing wrong turns a 5 s timeout into 5 ns. Zero and negative
// durations are refused too: every duration in the config is a limit.
type Duration time.Duration

// UnmarshalYAML implements yaml.NodeUnmarshaler so the error carries the
// node's line.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	if node.Type() != ast.StringType {
		return nodeErrorf(node, "want a duration such as 1s or 250ms, got %s", kind(node))
	}
	s := node.GetToken().Value
	v, err := time.ParseDuration(s)
	if err != nil {
		return nodeErrorf(node, "bad duration %q: want a Go duration such as 1s or 250ms", s)
	}
	if v <= 0 {
		return nodeErrorf(node, "duration %q must be positive", s)
	}
	*d = Duration(v)
	return nil
}

// Int is an integer that must be written as one: goccy/go-yaml would
// otherwise accept "12" (a string) and 1e3 or 1.5 (floats, truncated).
type Int int64

// UnmarshalYAML implements yaml.NodeUnmarshaler.
func (i *Int) UnmarshalYAML(node ast.Node) error {
	if node.Type() != ast.IntegerType {
		return nodeErrorf(node, "want an integer, got %s (%q)", kind(node), node.GetToken().Value)
	}
	switch v := node.(*ast.IntegerNode).Value.(type) {
	case int64:
		*i = Int(v)
	case uint64:
		if v > math.MaxInt64 {
			return nodeErrorf(node, "integer out of range")
		}
		*i = Int(v)
	default:
		n, err := strconv.ParseInt(node.GetToken().Value, 0, 64)
		if err != nil {
			return nodeErrorf(node, "integer out of range")
		}
		*i = Int(n)
	}
	return nil
}

// Number is a rate: an integer or a decimal (rate: 0.5 is one request every
// two seconds), never a string.
type Number float64

// UnmarshalYAML implements yaml.NodeUnmarshaler.
func (n *Number) UnmarshalYAML(node ast.Node) error {
	switch node.Type() {
	case ast.IntegerType, ast.FloatType:
	default:
		return nodeErrorf(node, "want a number, got %s (%q)", kind(node), node.GetToken().Value)
	}
	v, err := strconv.ParseFloat(node.GetToken().Value, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return nodeErrorf(node, "bad number %q", node.GetToken().Value)
	}
	*n = Number(v)
	return nil
}

// nodeError is an error at a known YAML node. Load turns it into a Problem
// with the file name.
type nodeError struct {
	line int
	msg  string
}

func (e *nodeError) Error() string { return e.msg }

func nodeErrorf(node ast.Node, format string, args ...any) error {
	line := 0
	if tok := node.GetToken(); tok != nil && tok.Position != nil {
		line = tok.Position.Line
	}
	return &nodeError{line: line, msg: fmt.Sprintf(format, args...)}
}

func kind(node ast.Node) string {
	switch node.Type() {
	case ast.StringType, ast.LiteralType:
		return "a string"
	case ast.IntegerType:
		return "an integer"
	case ast.FloatType:
		return "a decimal number"
	case ast.BoolType:
		return "a boolean"
	case ast.NullType:
		return "null"
	case ast.MappingType, ast.MappingValueType:
		return "a mapping"
	case ast.SequenceType:
		return "a list"
	}
	return node.Type().String()
}
