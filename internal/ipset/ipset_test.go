package ipset

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestContains(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		addr    string
		want    bool
	}{
		{"slash22 first", []string{"192.30.252.0/22"}, "192.30.252.0", true},
		{"slash22 last", []string{"192.30.252.0/22"}, "192.30.255.255", true},
		{"slash22 one below", []string{"192.30.252.0/22"}, "192.30.251.255", false},
		{"slash22 one above", []string{"192.30.252.0/22"}, "192.31.0.0", false},
		{"slash32 exact", []string{"10.0.0.1/32"}, "10.0.0.1", true},
		{"slash32 neighbour", []string{"10.0.0.1/32"}, "10.0.0.2", false},
		{"bare v4 is /32", []string{"10.0.0.1"}, "10.0.0.1", true},
		{"bare v4 neighbour", []string{"10.0.0.1"}, "10.0.0.0", false},
		{"slash0 v4 low", []string{"0.0.0.0/0"}, "0.0.0.0", true},
		{"slash0 v4 high", []string{"0.0.0.0/0"}, "255.255.255.255", true},
		{"slash0 v4 excludes v6", []string{"0.0.0.0/0"}, "2001:db8::1", false},
		{"slash0 v6", []string{"::/0"}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"slash0 v6 excludes v4", []string{"::/0"}, "1.2.3.4", false},
		{"slash128", []string{"2001:db8::1/128"}, "2001:db8::1", true},
		{"slash128 neighbour", []string{"2001:db8::1/128"}, "2001:db8::2", false},
		{"v6 /32 last", []string{"2606:50c0::/32"}, "2606:50c0:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"v6 /32 above", []string{"2606:50c0::/32"}, "2606:50c1::", false},
		{"v6 /65 edge", []string{"2001:db8:0:0:8000::/65"}, "2001:db8::ffff:ffff:ffff:ffff", true},
		{"v6 /65 below", []string{"2001:db8:0:0:8000::/65"}, "2001:db8::7fff:ffff:ffff:ffff", false},
		{"mapped client unmapped", []string{"192.30.252.0/22"}, "::ffff:192.30.252.1", true},
		{"mapped prefix becomes v4", []string{"::ffff:192.30.252.0/118"}, "192.30.252.1", true},
		{"zoned client", []string{"fe80::/10"}, "fe80::1%eth0", true},
		{"host bits cleared", []string{"10.1.2.3/8"}, "10.200.0.1", true},
		{"builtin github v4", []string{GitHubHooks}, "143.55.64.10", true},
		{"builtin github v6", []string{GitHubHooks}, "2a0a:a447::1", true},
		{"builtin github miss", []string{GitHubHooks}, "8.8.8.8", false},
		{"empty set", nil, "1.2.3.4", false},
		{"overlapping merged", []string{"10.0.0.0/24", "10.0.0.128/25", "10.0.1.0/24"}, "10.0.1.255", true},
		{"gap between ranges", []string{"10.0.0.0/24", "10.0.2.0/24"}, "10.0.1.0", false},
		{"top of v4 space", []string{"255.255.255.0/24", "255.255.255.255"}, "255.255.255.255", true},
		{"top of v6 space", []string{"ffff::/16", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(tt.entries, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("Contains(%s) in %v = %v, want %v", tt.addr, tt.entries, got, tt.want)
			}
		})
	}
}

func TestContainsInvalidAndNil(t *testing.T) {
	s, err := Compile([]string{"0.0.0.0/0", "::/0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Contains(netip.Addr{}) {
		t.Error("unknown client address must never be contained")
	}
	var nilSet *Set
	if nilSet.Contains(netip.MustParseAddr("1.2.3.4")) {
		t.Error("nil set contains an address")
	}
}

func TestCompileNamed(t *testing.T) {
	named := map[string][]string{
		"office":  {"203.0.113.0/24"},
		"both":    {"office", "github-hooks"},
		"loop-a":  {"loop-b"},
		"loop-b":  {"loop-a"},
		"broken":  {"10.0.0.0/33"},
		"dangles": {"nowhere"},
	}
	tests := []struct {
		name    string
		entries []string
		in, out []string
		wantErr string
	}{
		{name: "named and cidr", entries: []string{"office", "198.51.100.7"}, in: []string{"203.0.113.9", "198.51.100.7"}, out: []string{"198.51.100.8"}},
		{name: "nested names", entries: []string{"both"}, in: []string{"203.0.113.1", "140.82.112.1"}, out: []string{"1.1.1.1"}},
		{name: "unknown name", entries: []string{"offce"}, wantErr: `unknown ip set "offce"`},
		{name: "bad cidr", entries: []string{"10.0.0.300/8"}, wantErr: `bad CIDR "10.0.0.300/8"`},
		{name: "bad bare ip", entries: []string{"1.2.3"}, wantErr: `bad CIDR "1.2.3"`},
		{name: "zone in cidr", entries: []string{"fe80::1%eth0"}, wantErr: `bad CIDR "fe80::1%eth0"`},
		{name: "empty entry", entries: []string{""}, wantErr: `bad CIDR ""`},
		{name: "cycle", entries: []string{"loop-a"}, wantErr: "refers to itself"},
		{name: "bad cidr inside named", entries: []string{"broken"}, wantErr: `ip set "broken": bad CIDR "10.0.0.0/33"`},
		{name: "unknown inside named", entries: []string{"dangles"}, wantErr: `ip set "dangles": unknown ip set "nowhere"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(tt.entries, named)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tt.in {
				if !s.Contains(netip.MustParseAddr(a)) {
					t.Errorf("%s not contained", a)
				}
			}
			for _, a := range tt.out {
				if s.Contains(netip.MustParseAddr(a)) {
					t.Errorf("%s contained", a)
				}
			}
		})
	}
}

func TestConfigOverridesBuiltin(t *testing.T) {
	s, err := Compile([]string{GitHubHooks}, map[string][]string{GitHubHooks: {"10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Contains(netip.MustParseAddr("10.1.1.1")) || s.Contains(netip.MustParseAddr("140.82.112.1")) {
		t.Errorf("config's github-hooks did not replace the built-in: %v", s)
	}
}

func TestBuiltinMatchesAnchors(t *testing.T) {
	// api.github.com/meta's "hooks" of 2026; the blog's three blocks must stay in.
	want := []string{"140.82.112.0/20", "143.55.64.0/20", "185.199.108.0/22", "192.30.252.0/22", "2606:50c0::/32", "2a0a:a440::/29"}
	s, err := Compile([]string{GitHubHooks}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range s.Prefixes() {
		got[p.String()] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("built-in github-hooks lacks %s", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("built-in github-hooks has %d prefixes, want %d", len(got), len(want))
	}
	if v4, v6 := s.Families(); !v4 || !v6 {
		t.Errorf("Families() = %v, %v; want both", v4, v6)
	}
	b := Builtin()
	b[GitHubHooks][0] = "changed"
	if Builtin()[GitHubHooks][0] == "changed" {
		t.Error("Builtin returned shared storage")
	}
}

func TestFamilies(t *testing.T) {
	s, _ := Compile([]string{"0.0.0.0/0"}, nil)
	if v4, v6 := s.Families(); !v4 || v6 {
		t.Errorf("0.0.0.0/0: Families() = %v, %v", v4, v6)
	}
}

func TestParseGitHubMeta(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "github-meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := ParseGitHubMeta(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	want := "192.30.252.0/22 185.199.108.0/22 140.82.112.0/20 143.55.64.0/20 2a0a:a440::/29 2606:50c0::/32"
	if strings.Join(got, " ") != want {
		t.Errorf("hooks = %v, want %v", got, want)
	}

	bad := []struct{ name, doc, wantErr string }{
		{"not json", `hooks`, "parse github meta"},
		{"no hooks", `{"web":["1.2.3.0/24"]}`, `no "hooks"`},
		{"null hooks", `{"hooks":null}`, `no "hooks"`},
		{"empty hooks", `{"hooks":[]}`, "empty"},
		{"hooks not array", `{"hooks":"1.2.3.0/24"}`, "parse github meta"},
		{"bad entry", `{"hooks":["1.2.3.0/24","nope"]}`, `"nope"`},
		{"trailing garbage", `{"hooks":["1.2.3.0/24"]} x`, "parse github meta"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseGitHubMeta([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseGitHubMeta(f *testing.F) {
	f.Add([]byte(`{"hooks":["192.30.252.0/22","2606:50c0::/32"]}`))
	f.Add([]byte(`{"hooks":["::ffff:1.2.3.4/120","10.0.0.1"]}`))
	f.Add([]byte(`{"hooks":[]}`))
	f.Add([]byte(`{"hooks":[1]}`))
	if data, err := os.ReadFile(filepath.Join("testdata", "github-meta.json")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseGitHubMeta(data)
		if err != nil {
			return
		}
		s := FromPrefixes(ps)
		for _, p := range ps {
			// Every prefix's first and last address must be inside the set.
			if !p.IsValid() {
				t.Fatalf("invalid prefix returned")
			}
			if !s.Contains(p.Addr()) || !s.Contains(lastAddr(p)) {
				t.Fatalf("set built from %v misses an edge of %v", ps, p)
			}
		}
	})
}

// FuzzContains checks the merged-range search against a linear scan.
func FuzzContains(f *testing.F) {
	f.Add("10.0.0.0/8,10.0.0.0/24,192.168.1.1", "10.255.255.255")
	f.Add("::/0", "::ffff:1.2.3.4")
	f.Add("2001:db8::/32,2001:db9::/32", "2001:db9:ffff::")
	f.Fuzz(func(t *testing.T, list, addr string) {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		var ps []netip.Prefix
		for _, e := range strings.Split(list, ",") {
			if p, err := ParsePrefix(e); err == nil {
				ps = append(ps, p)
			}
		}
		want := false
		u := a.Unmap().WithZone("")
		for _, p := range ps {
			if p.Contains(u) {
				want = true
			}
		}
		if got := FromPrefixes(ps).Contains(a); got != want {
			t.Fatalf("Contains(%v) over %v = %v, linear scan says %v", a, ps, got, want)
		}
	})
}

func BenchmarkContains(b *testing.B) {
	gh, _ := Compile([]string{GitHubHooks}, nil)
	var many []netip.Prefix
	for i := range 4096 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 4), byte(i << 4), 0}), 28))
	}
	big := FromPrefixes(many)
	for _, bc := range []struct {
		name string
		set  *Set
		addr netip.Addr
	}{
		{"github-hit-v4", gh, netip.MustParseAddr("140.82.115.1")},
		{"github-miss-v4", gh, netip.MustParseAddr("8.8.8.8")},
		{"github-hit-v6", gh, netip.MustParseAddr("2606:50c0::1")},
		{"github-mapped", gh, netip.MustParseAddr("::ffff:140.82.115.1")},
		{"4096-ranges", big, netip.MustParseAddr("10.200.33.1")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.set.Contains(bc.addr)
			}
		})
	}
}

func ExampleCompile() {
	s, err := Compile([]string{"github-hooks", "office"}, map[string][]string{"office": {"203.0.113.0/24"}})
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Contains(netip.MustParseAddr("::ffff:192.30.252.10")), s.Contains(netip.MustParseAddr("8.8.8.8")))
	// Output: true false
}
