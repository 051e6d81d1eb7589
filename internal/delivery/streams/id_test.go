package streams

import (
	"slices"
	"testing"
)

// TestIDs: entry IDs repeat across streams, qualified ids do not; their
// order is by time, then sequence (numerically), then stream, and
// nextEntry is the least entry ID above its argument.
func TestIDs(t *testing.T) {
	a, b := routeTag("/a"), routeTag("/b")
	if a == b || len(a) != 16 {
		t.Fatalf("tags %q %q", a, b)
	}
	same := []string{publicID("5-0", false, a), publicID("5-0", true, a), publicID("5-0", false, b), publicID("5-0", true, b)}
	for i, x := range same {
		entry, dead, tag, ok := parseID(x)
		if !ok || entry != "5-0" || dead != (i%2 == 1) || tag != []string{a, a, b, b}[i] {
			t.Fatalf("parseID(%q) = %q %v %q %v", x, entry, dead, tag, ok)
		}
		for j, y := range same {
			if (compareIDs(x, y) == 0) != (i == j) || compareIDs(x, y) != -compareIDs(y, x) {
				t.Fatalf("compareIDs(%q, %q) = %d", x, y, compareIDs(x, y))
			}
		}
	}
	order := []string{publicID("9-0", false, b), publicID("10-0", true, a), publicID("10-2", false, a), publicID("10-10", false, a), publicID("100-0", false, a)}
	shuffled := []string{order[3], order[0], order[4], order[2], order[1]}
	slices.SortFunc(shuffled, compareIDs)
	if !slices.Equal(shuffled, order) {
		t.Fatalf("sorted %q, want %q", shuffled, order)
	}
	for in, want := range map[string]string{"5-0": "5-1", "5-9": "5-10", "5-18446744073709551615": "6-0"} {
		if got := nextEntry(in); got != want {
			t.Errorf("nextEntry(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseID: a delivery id from a URL or a form either parses back to
// the id it was made from or is refused; nothing else.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{publicID("1796688171725-0", true, routeTag("/a")), "0-1", "nope", "1-0.p", "1-0.p0123456789abcdeF", "18446744073709551616-0.p0123456789abcdef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		entry, dead, tag, ok := parseID(id)
		if ok && publicID(entry, dead, tag) != id {
			t.Fatalf("parseID(%q) = %q %v %q, which makes %q", id, entry, dead, tag, publicID(entry, dead, tag))
		}
	})
}
