package policy

import "github.com/drawbridge/drawbridge/internal/glob"

// hasWildcard reports whether p contains '*' or '?'.
func hasWildcard(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] == '*' || p[i] == '?' {
			return true
		}
	}
	return false
}

// residuals returns the positions in p from which the rest of a subject
// must match after a subject prefix has been consumed: the states of p's
// NFA reachable after reading the prefix. Each state reads a prefix byte:
// '*' consumes it and stays put, '?' and an equal byte consume it and
// advance.
//
// Used to specialise a full ARN resource pattern for this gateway's API id
// at compile time, so evaluation only ever matches stage/METHOD/path.
func residuals(p string, prefix string) []int {
	states := make([]bool, len(p)+1)
	states[0] = true
	closure(p, states)
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		next := make([]bool, len(p)+1)
		for st, on := range states[:len(p)] {
			if !on {
				continue
			}
			switch p[st] {
			case '*':
				next[st] = true
			case '?':
				next[st+1] = true
			default:
				if p[st] == c {
					next[st+1] = true
				}
			}
		}
		states = next
		closure(p, states)
	}
	return positions(p, states)
}

// unknownIDResiduals is residuals for the prefix "<unknown API id>/": an
// unknown id is assumed to match whatever the pattern demands, as long as it
// contains no '/'; then one '/' is read.
func unknownIDResiduals(p string) []int {
	// Reachable while reading id characters: every position up to and
	// including the first literal '/' (positions before it consume a
	// character each, or any run for '*').
	reach := make([]bool, len(p)+1)
	for i := 0; i <= len(p); i++ {
		reach[i] = true
		if i < len(p) && p[i] == '/' {
			break
		}
	}
	next := make([]bool, len(p)+1)
	for st, on := range reach[:len(p)] {
		if !on {
			continue
		}
		switch p[st] {
		case '*':
			next[st] = true
		case '?', '/':
			next[st+1] = true
		}
	}
	closure(p, next)
	return positions(p, next)
}

// closure adds, for every state on a '*', the state after it (the star
// matching the empty run). One ascending pass suffices: it only moves
// forward.
func closure(p string, states []bool) {
	for i := 0; i < len(p); i++ {
		if states[i] && p[i] == '*' {
			states[i+1] = true
		}
	}
}

// positions lists the states that are on, leaving out a state right after
// an on '*' state: "*x" already matches everything "x" does.
func positions(p string, states []bool) []int {
	var out []int
	for i, on := range states {
		if on && !(i > 0 && states[i-1] && p[i-1] == '*') {
			out = append(out, i)
		}
	}
	return out
}

// pattern is a glob pre-split for the request path: the literal text
// before the first wildcard and after the last one are compared directly,
// so most non-matching resources are rejected by a prefix or suffix
// comparison, and only the middle runs the backtracking matcher.
type pattern struct {
	glob   string
	exact  bool // no wildcard: plain equality
	prefix string
	suffix string
	middle string // glob between prefix and suffix; starts and ends with a wildcard
}

func newPattern(glob string) pattern {
	first, last := -1, -1
	for i := 0; i < len(glob); i++ {
		if glob[i] == '*' || glob[i] == '?' {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return pattern{glob: glob, exact: true}
	}
	return pattern{glob: glob, prefix: glob[:first], suffix: glob[last+1:], middle: glob[first : last+1]}
}

func (p *pattern) match(s []byte) bool {
	if p.exact {
		return string(s) == p.glob
	}
	if len(s) < len(p.prefix)+len(p.suffix) ||
		string(s[:len(p.prefix)]) != p.prefix ||
		string(s[len(s)-len(p.suffix):]) != p.suffix {
		return false
	}
	if p.middle == "*" {
		return true
	}
	return glob.Match(p.middle, s[len(p.prefix):len(s)-len(p.suffix)])
}
