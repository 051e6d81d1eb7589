package policy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/glob"
)

type condKey uint8

const (
	keySourceIP condKey = iota
	keyUserAgent
	keyReferer
	keyCurrentTime
	keySecureTransport
)

// condKeys are the keys drawbridge can supply; IAM key names are
// case-insensitive. Other keys API Gateway knows (aws:SourceVpc,
// aws:PrincipalOrgID, ...) describe things drawbridge does not have, so
// they are compile errors rather than conditions that quietly never hold.
var condKeys = map[string]condKey{
	"aws:sourceip":        keySourceIP,
	"aws:useragent":       keyUserAgent,
	"aws:referer":         keyReferer,
	"aws:currenttime":     keyCurrentTime,
	"aws:securetransport": keySecureTransport,
}

var keyNames = [...]string{"aws:SourceIp", "aws:UserAgent", "aws:Referer", "aws:CurrentTime", "aws:SecureTransport"}

type opKind uint8

const (
	opIP opKind = iota
	opStringEquals
	opStringEqualsFold
	opStringLike
	opDateEquals
	opDateLess
	opDateLessEq
	opDateGreater
	opDateGreaterEq
	opBool
	opNull
)

type opInfo struct {
	kind   opKind
	negate bool
}

var operators = map[string]opInfo{
	"ipaddress":                 {opIP, false},
	"notipaddress":              {opIP, true},
	"stringequals":              {opStringEquals, false},
	"stringnotequals":           {opStringEquals, true},
	"stringequalsignorecase":    {opStringEqualsFold, false},
	"stringnotequalsignorecase": {opStringEqualsFold, true},
	"stringlike":                {opStringLike, false},
	"stringnotlike":             {opStringLike, true},
	"dateequals":                {opDateEquals, false},
	"datenotequals":             {opDateEquals, true},
	"datelessthan":              {opDateLess, false},
	"datelessthanequals":        {opDateLessEq, false},
	"dategreaterthan":           {opDateGreater, false},
	"dategreaterthanequals":     {opDateGreaterEq, false},
	"bool":                      {opBool, false},
	"null":                      {opNull, false},
}

// condition is one (operator, key) pair with its values pre-parsed.
type condition struct {
	kind     opKind
	key      condKey
	negate   bool
	ifExists bool
	prefixes []netip.Prefix
	strs     []string
	times    []time.Time
	// bool and Null operators: which request truth values satisfy them.
	whenTrue, whenFalse bool
}

func compileConditions(raw json.RawMessage) ([]condition, string) {
	var block map[string]json.RawMessage
	if firstByte(raw) != '{' || decodeObject(raw, &block) != nil {
		return nil, "want an object of operators"
	}
	var out []condition
	for _, opName := range sortedKeys(block) {
		lower := strings.ToLower(opName)
		if strings.HasPrefix(lower, "foranyvalue:") || strings.HasPrefix(lower, "forallvalues:") {
			return nil, fmt.Sprintf("operator %q: set operators are not supported (every supported key is single-valued)", opName)
		}
		base, ifExists := strings.CutSuffix(lower, "ifexists")
		info, ok := operators[base]
		if !ok {
			return nil, fmt.Sprintf("unknown or unsupported operator %q", opName)
		}
		if info.kind == opNull && ifExists {
			return nil, fmt.Sprintf("operator %q: Null cannot take IfExists", opName)
		}
		var keys map[string]json.RawMessage
		if firstByte(block[opName]) != '{' || decodeObject(block[opName], &keys) != nil {
			return nil, fmt.Sprintf("%s: want an object of condition keys", opName)
		}
		if len(keys) == 0 {
			return nil, fmt.Sprintf("%s: no condition keys", opName)
		}
		for _, keyName := range sortedKeys(keys) {
			key, ok := condKeys[strings.ToLower(keyName)]
			if !ok {
				return nil, fmt.Sprintf("%s: unsupported condition key %q (supported: %s)", opName, keyName, strings.Join(keyNames[:], ", "))
			}
			c := condition{kind: info.kind, key: key, negate: info.negate, ifExists: ifExists}
			vals, e := conditionValues(keys[keyName])
			if e != "" {
				return nil, fmt.Sprintf("%s %s: %s", opName, keyName, e)
			}
			if e := c.parseValues(vals); e != "" {
				return nil, fmt.Sprintf("%s %s: %s", opName, keyName, e)
			}
			out = append(out, c)
		}
	}
	return out, ""
}

// conditionValues reads a scalar or a non-empty array of scalars. Numbers
// and booleans are kept as their JSON text, so `true` and "true" are the
// same value, as in IAM (and as YAML-converted documents need).
func conditionValues(raw json.RawMessage) ([]string, string) {
	var items []json.RawMessage
	if firstByte(raw) == '[' {
		if json.Unmarshal(raw, &items) != nil {
			return nil, "malformed list"
		}
		if len(items) == 0 {
			return nil, "empty list of values"
		}
	} else {
		items = []json.RawMessage{raw}
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		switch c := firstByte(it); {
		case c == '"':
			var s string
			if json.Unmarshal(it, &s) != nil {
				return nil, "malformed string"
			}
			if strings.Contains(s, "${") {
				return nil, fmt.Sprintf("value %q: policy variables are not supported", s)
			}
			out = append(out, s)
		case c == 't' || c == 'f' || c == '-' || (c >= '0' && c <= '9'):
			var v any
			if json.Unmarshal(it, &v) != nil {
				return nil, "malformed value " + compact(it)
			}
			out = append(out, strings.TrimSpace(string(it)))
		default:
			return nil, fmt.Sprintf("value %s: want a string, number, boolean or a list of them", compact(it))
		}
	}
	return out, ""
}

func (c *condition) parseValues(vals []string) string {
	keyOK := func(keys ...condKey) string {
		for _, k := range keys {
			if c.key == k {
				return ""
			}
		}
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = keyNames[k]
		}
		return "this operator applies to " + strings.Join(names, " or ") + " only"
	}
	switch c.kind {
	case opIP:
		if e := keyOK(keySourceIP); e != "" {
			return e
		}
		for _, v := range vals {
			p, err := parsePrefix(v)
			if err != nil {
				return fmt.Sprintf("value %q: not an IP address or CIDR", v)
			}
			c.prefixes = append(c.prefixes, p)
		}
	case opStringEquals, opStringEqualsFold, opStringLike:
		if e := keyOK(keyUserAgent, keyReferer); e != "" {
			return e
		}
		c.strs = vals
	case opDateEquals, opDateLess, opDateLessEq, opDateGreater, opDateGreaterEq:
		if e := keyOK(keyCurrentTime); e != "" {
			return e
		}
		for _, v := range vals {
			t, ok := parseDate(v)
			if !ok {
				return fmt.Sprintf("value %q: want an ISO 8601 date (2006-01-02T15:04:05Z) or epoch seconds", v)
			}
			c.times = append(c.times, t)
		}
	case opBool, opNull:
		if c.kind == opBool {
			if e := keyOK(keySecureTransport); e != "" {
				return e
			}
		}
		for _, v := range vals {
			switch strings.ToLower(v) {
			case "true":
				c.whenTrue = true
			case "false":
				c.whenFalse = true
			default:
				return fmt.Sprintf("value %q: want true or false", v)
			}
		}
	}
	return ""
}

// parsePrefix reads a CIDR or a single address, v4 or v6, clearing host
// bits and turning IPv4-mapped IPv6 into IPv4, because client addresses are
// unmapped before the check and netip.Prefix.Contains never matches across
// families (docs/hardening.md#unmapped-addresses).
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.IndexByte(s, '/') >= 0 {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, err
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, err
		}
		if a.Zone() != "" {
			return p, fmt.Errorf("zone not allowed")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseDate reads the forms IAM accepts for dates: ISO 8601 (a missing zone
// is UTC) or whole epoch seconds.
func parseDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > 1<<40 {
			return time.Time{}, false
		}
		return time.Unix(n, 0).UTC(), true
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func (c *condition) eval(ctx *evalContext) bool {
	r := ctx.req
	var present bool
	switch c.key {
	case keySourceIP:
		present = ctx.ip.IsValid()
	case keyUserAgent:
		present = r.UserAgent != ""
	case keyReferer:
		present = r.Referer != ""
	case keyCurrentTime:
		present = !r.Now.IsZero()
	case keySecureTransport:
		present = true
	}
	if c.kind == opNull {
		// Null: true means "the key is absent".
		return (c.whenTrue && !present) || (c.whenFalse && present)
	}
	if !present {
		return c.ifExists || c.negate
	}
	return c.anyValue(ctx) != c.negate
}

// anyValue reports whether the request's key value matches any of the
// condition's values (the OR across values).
func (c *condition) anyValue(ctx *evalContext) bool {
	r := ctx.req
	switch c.kind {
	case opIP:
		for _, p := range c.prefixes {
			if p.Contains(ctx.ip) {
				return true
			}
		}
	case opStringEquals, opStringEqualsFold, opStringLike:
		v := r.UserAgent
		if c.key == keyReferer {
			v = r.Referer
		}
		for _, s := range c.strs {
			switch c.kind {
			case opStringEquals:
				if v == s {
					return true
				}
			case opStringEqualsFold:
				if strings.EqualFold(v, s) {
					return true
				}
			default:
				if glob.Match(s, v) {
					return true
				}
			}
		}
	case opDateEquals, opDateLess, opDateLessEq, opDateGreater, opDateGreaterEq:
		for _, t := range c.times {
			cmp := r.Now.Compare(t)
			switch c.kind {
			case opDateEquals:
				if cmp == 0 {
					return true
				}
			case opDateLess:
				if cmp < 0 {
					return true
				}
			case opDateLessEq:
				if cmp <= 0 {
					return true
				}
			case opDateGreater:
				if cmp > 0 {
					return true
				}
			default:
				if cmp >= 0 {
					return true
				}
			}
		}
	case opBool:
		return (c.whenTrue && r.Secure) || (c.whenFalse && !r.Secure)
	}
	return false
}
