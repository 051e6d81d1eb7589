//go:build race

package gateway

// raceEnabled: the race detector slows the gateway 5-10 times; the flood
// test scales down under it, and test.sh runs it again at full size
// without it.
const raceEnabled = true
