package contentlength

import (
	"strconv"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		n    int64
		want bool
	}{
		{"0", 0, true},
		{"13", 13, true},
		{"000123", 123, true},
		{"999999999999999999", 999999999999999999, true},
		{"1000000000000000000", 0, false}, // 19 digits
		{"", 0, false},
		{"+5", 0, false},
		{"-5", 0, false},
		{" 5", 0, false},
		{"5 ", 0, false},
		{"0x10", 0, false},
		{"1_000", 0, false},
		{"5,5", 0, false},
	}
	for _, c := range cases {
		n, ok := Parse([]byte(c.in))
		if ok != c.want || n != c.n {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", c.in, n, ok, c.n, c.want)
		}
	}
}

// FuzzParse: whatever Parse accepts, strconv reads as the same number, and
// it accepts every plain decimal of up to 18 digits.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "42", "+1", "", "999999999999999999", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := Parse([]byte(s))
		plain := len(s) > 0 && len(s) <= 18
		for i := 0; i < len(s); i++ {
			plain = plain && s[i] >= '0' && s[i] <= '9'
		}
		if ok != plain {
			t.Fatalf("Parse(%q) ok = %v, want %v", s, ok, plain)
		}
		if ok {
			if m, err := strconv.ParseInt(s, 10, 64); err != nil || m != n {
				t.Fatalf("Parse(%q) = %d, strconv %d, %v", s, n, m, err)
			}
		}
	})
}
