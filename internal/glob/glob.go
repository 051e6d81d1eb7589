// Package glob is the one wildcard matcher of resource policies and of
// routes' match rules: '*' and '?' over UTF-8 text, no allocation.
package glob

// Match reports whether s matches the wildcard pattern p: '*'
// matches any run of characters, including '/' and the empty run; '?'
// matches exactly one character (one UTF-8 sequence, so "?" matches "é");
// everything else matches itself, case-sensitively. There is no escape
// character, as in IAM's wildcards, which are the same grammar as the
// value lists of a route's match (docs/delivery.md#routing-on-the-event).
//
// It is the single-backtrack matcher: remembering only the last '*' is
// enough for patterns whose only multi-character wildcard is '*', and the
// cost is O(len(p)·len(s)) in the worst case, with no allocation. It is
// generic so a caller can match a stack buffer or a JSON body ([]byte) and
// a header value (string) without converting either.
func Match[S ~string | ~[]byte](p string, s S) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		if px < len(p) {
			switch c := p[px]; {
			case c == '*':
				starP, starS = px, sx
				px++
				continue
			case c == '?':
				px++
				sx += seqLen(s, sx)
				continue
			case c == s[sx]:
				px++
				sx++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last '*' swallow one more character and retry after it.
		starS += seqLen(s, starS)
		px, sx = starP+1, starS
	}
	for px < len(p) && p[px] == '*' {
		px++
	}
	return px == len(p)
}

// seqLen is the length of the UTF-8 sequence starting at s[i], or 1 for a
// byte that does not start a valid sequence (it then counts as one
// character, as strings.ToValidUTF8 would replace it by one U+FFFD).
func seqLen[S ~string | ~[]byte](s S, i int) int {
	c := s[i]
	var n int
	switch {
	case c < 0x80:
		return 1
	case c&0xE0 == 0xC0:
		n = 2
	case c&0xF0 == 0xE0:
		n = 3
	case c&0xF8 == 0xF0:
		n = 4
	default:
		return 1
	}
	if i+n > len(s) {
		return 1
	}
	for k := 1; k < n; k++ {
		if s[i+k]&0xC0 != 0x80 {
			return 1
		}
	}
	return n
}
