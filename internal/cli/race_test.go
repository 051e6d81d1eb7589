//go:build race

package cli

// raceEnabled: the race detector slows the gateway 5-10 times and caps
// live goroutines at 8,128; load tests scale down under it.
const raceEnabled = true
