package cli

import "runtime/debug"

// serveGCPercent is the collector's target for serve when GOGC is not set.
// A gateway's live heap is small (1–2 MB: config, buckets, pools) and
// nearly all it allocates dies with the request, so at Go's default
// (GOGC=100, a 4 MB heap floor) it collected every ~700 requests and the
// collector's fixed cost per cycle (roots, stacks of every connection's
// goroutine) was ≈ 5 % of a rejection's instructions. 400 collects a
// quarter as often for ≈ 12 MB more heap (docs/performance.md).
const serveGCPercent = 400

// tuneGC sets serveGCPercent unless the operator chose GOGC, and returns
// the percentage in force.
func tuneGC(lookupEnv func(string) (string, bool)) int {
	if _, set := lookupEnv("GOGC"); set {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(serveGCPercent)
	return serveGCPercent
}
