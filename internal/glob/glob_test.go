package glob

import "testing"

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"", "", true},
		{"*", "", true},
		{"refs/heads/*", "refs/heads/a/b", true}, // '*' crosses '/'
		{"refs/heads/*", "refs/tags/a", false},
		{"Push", "push", false}, // case-sensitive
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"?", "é", true}, // '?' is one character, not one byte
		{"??", "é", false},
		{"*??", "€", false}, // a byte-stepping star would split the rune
		{"?", "\xff", true}, // a stray byte counts as one character
		{"**a", "a", true},
	} {
		if Match(tc.p, tc.s) != tc.want || Match(tc.p, []byte(tc.s)) != tc.want {
			t.Errorf("Match(%q, %q) != %v", tc.p, tc.s, tc.want)
		}
	}
}
