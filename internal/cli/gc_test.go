package cli

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)

	unset := func(string) (string, bool) { return "", false }
	if got := tuneGC(unset); got != serveGCPercent {
		t.Fatalf("GOGC unset: tuneGC = %d, want %d", got, serveGCPercent)
	}
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Fatalf("GOGC unset: collector at %d%%, want %d%%", got, serveGCPercent)
	}

	// The runtime read GOGC at start; tuneGC leaves whatever it set alone.
	debug.SetGCPercent(50)
	set := func(k string) (string, bool) { return "50", k == "GOGC" }
	if got := tuneGC(set); got != 50 {
		t.Fatalf("GOGC=50: tuneGC = %d, want 50", got)
	}
	if got := debug.SetGCPercent(100); got != 50 {
		t.Fatalf("GOGC=50: collector at %d%%, want 50%%", got)
	}
}
