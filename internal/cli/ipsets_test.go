package cli

import (
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/ipset"
)

func TestParseIPSetFile(t *testing.T) {
	cases := []struct {
		name, data string
		want       []string
		err        string
	}{
		{"ranges and comments", "# hooks\n\n192.30.252.0/22\n  2606:50c0::/32  \n10.0.0.1\n", []string{"192.30.252.0/22", "2606:50c0::/32", "10.0.0.1"}, ""},
		{"empty", "# nothing\n", nil, "no ranges"},
		{"garbage line", "10.0.0.0/8\nnot-a-cidr\n", nil, "f.txt:2: \"not-a-cidr\" is not a CIDR"},
		{"zone", "fe80::1%eth0\n", nil, "is not a CIDR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseIPSetFile("f.txt", []byte(c.data))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// FuzzParseIPSetFile: any input either fails or yields entries that all
// compile into a set.
func FuzzParseIPSetFile(f *testing.F) {
	for _, s := range []string{"192.30.252.0/22\n", "# c\n\n2606:50c0::/32\r\n", "::ffff:10.0.0.0/104\n", "1.2.3.4/33\n", "\x00\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseIPSetFile("f", data)
		if err != nil {
			return
		}
		if len(entries) == 0 {
			t.Fatal("no error and no entries")
		}
		if _, err := ipset.Compile(entries, nil); err != nil {
			t.Fatalf("entries %q do not compile: %v", entries, err)
		}
	})
}
