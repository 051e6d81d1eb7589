package apikey

import (
	"crypto/sha256"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		key  string
		want bool
	}{
		{"20 alphanumerics", strings.Repeat("a1B", 6) + "zz", true},
		{"128 alphanumerics", strings.Repeat("Ab9", 42) + "xy", true},
		{"19 characters", strings.Repeat("a", 19), false},
		{"129 characters", strings.Repeat("a", 129), false},
		{"empty", "", false},
		{"whitespace", strings.Repeat(" ", 30), false},
		{"dash", strings.Repeat("a", 20) + "-", false},
		{"underscore", "abcdefghij_klmnopqrst", false},
		{"unicode letter (2 bytes)", strings.Repeat("a", 19) + "é", false},
		{"NUL byte", strings.Repeat("a", 20) + "\x00", false},
		{"64 KB", strings.Repeat("a", 64<<10), false},
		{"comma-joined pair", strings.Repeat("a", 20) + "," + strings.Repeat("b", 20), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Valid(tt.key); got != tt.want {
				t.Fatalf("Valid(%.40q) = %v, want %v", tt.key, got, tt.want)
			}
		})
	}
}

func TestHashAndDigests(t *testing.T) {
	key := "abcdefghijklmnopqrstuvwxyz0123456789ABCD"
	d := Hash(key)
	if d != sha256.Sum256([]byte(key)) {
		t.Fatal("Hash is not SHA-256")
	}
	hexd := FormatDigest(d)
	// echo -n abcdefghijklmnopqrstuvwxyz0123456789ABCD | sha256sum
	if len(hexd) != 64 || strings.ToLower(hexd) != hexd {
		t.Fatalf("FormatDigest = %q", hexd)
	}
	for _, s := range []string{hexd, strings.ToUpper(hexd)} {
		got, err := ParseDigest(s)
		if err != nil || !Equal(got, d) {
			t.Fatalf("ParseDigest(%q) = %x, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", hexd[:63], hexd + "0", "sha256:" + hexd, strings.Repeat("zz", 32)} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) accepted", bad)
		}
	}
	other := Hash(key + "x")
	if Equal(d, other) {
		t.Fatal("Equal on different digests")
	}
	var flip = d
	flip[31] ^= 1
	if Equal(d, flip) {
		t.Fatal("Equal ignores the last byte")
	}
}

func TestKnownDigest(t *testing.T) {
	// A fixed vector so a change of algorithm cannot slip through:
	// printf %s aaaaaaaaaaaaaaaaaaaa | sha256sum
	const want = "42492da06234ad0ac76f5d5debdb6d1ae027cffbe746a1c13b89bb8bc0139137"
	if got := FormatDigest(Hash(strings.Repeat("a", 20))); got != want {
		t.Fatalf("Hash(a×20) = %s, want %s", got, want)
	}
}

func TestGenerate(t *testing.T) {
	seen := make(map[string]bool)
	var counts [256]int
	const n = 2000
	for i := 0; i < n; i++ {
		k := Generate()
		if len(k) != GenLen || !Valid(k) {
			t.Fatalf("Generate() = %q: not a valid %d-character key", k, GenLen)
		}
		if seen[k] {
			t.Fatalf("Generate repeated %q", k)
		}
		seen[k] = true
		for j := 0; j < len(k); j++ {
			counts[k[j]]++
		}
	}
	// Every symbol appears, and none wildly more than another: expected
	// n*GenLen/62 ≈ 1290 each; a modulo bias would push the first 8 to ~1.3×.
	exp := float64(n*GenLen) / 62
	for _, c := range []byte(alphabet) {
		if got := float64(counts[c]); got < 0.8*exp || got > 1.2*exp {
			t.Errorf("symbol %q appeared %v times, expected about %.0f", c, got, exp)
		}
	}
}

func BenchmarkValidHash(b *testing.B) {
	key := "abcdefghijklmnopqrstuvwxyz0123456789ABCD"
	b.ReportAllocs()
	for b.Loop() {
		if Valid(key) {
			_ = Hash(key)
		}
	}
}
