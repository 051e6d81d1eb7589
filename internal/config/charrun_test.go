package config

import (
	"regexp"
	"strings"
	"testing"
)

// charRunPatterns are the regexps the charRuns replace.
var charRunPatterns = []struct {
	c  *charRun
	re *regexp.Regexp
}{
	{stageName, regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)},
	{hexDigest, regexp.MustCompile(`^[0-9a-fA-F]{64}$`)},
	{methodToken, regexp.MustCompile(`^[A-Z]{1,20}$`)},
	{keyFormat, regexp.MustCompile(`^[A-Za-z0-9]{20,128}$`)},
	{agentName, regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)},
}

func checkCharRuns(t *testing.T, s string) {
	for _, p := range charRunPatterns {
		if got, want := p.c.MatchString(s), p.re.MatchString(s); got != want {
			t.Fatalf("%s on %q: %v, the regexp says %v", p.re, s, got, want)
		}
	}
}

// TestCharRuns: each charRun accepts exactly what its regexp accepts, at
// and around its length bounds, every byte value, and non-ASCII.
func TestCharRuns(t *testing.T) {
	for b := range 256 {
		for _, n := range []int{1, 20, 64} {
			checkCharRuns(t, strings.Repeat(string(rune(b)), n))         // as UTF-8
			checkCharRuns(t, strings.Repeat(string([]byte{byte(b)}), n)) // the raw byte
			checkCharRuns(t, strings.Repeat("a", n-1)+string([]byte{byte(b)}))
		}
	}
	for _, n := range []int{0, 1, 19, 20, 21, 63, 64, 65, 127, 128, 129} {
		for _, c := range []string{"a", "A", "0", "f", "G", "_", "-", ".", "é", "\n"} {
			checkCharRuns(t, strings.Repeat(c, n))
			checkCharRuns(t, strings.Repeat(c, n)+"\n")
		}
	}
}

func FuzzCharRuns(f *testing.F) {
	for _, s := range []string{"", "prod", "GET", strings.Repeat("ab12", 8), strings.Repeat("0f", 32), "agent-1.eu_west", "a\n", "ÀÀ"} {
		f.Add(s)
	}
	f.Fuzz(checkCharRuns)
}
