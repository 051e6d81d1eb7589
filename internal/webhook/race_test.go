//go:build race

package webhook

// raceEnabled: under -race, sync.Pool drops items at random on purpose, so
// allocation counts are not meaningful and the zero-alloc checks are skipped.
const raceEnabled = true
