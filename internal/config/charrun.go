package config

// charRun matches what a regexp `^[class]{min,max}$` matches, for a
// class of ASCII bytes, without a compiled program. Those programs stay
// in the heap for the life of the process, and with counted repetitions
// they are large (≈ 134 KB of pointers for the five below, 38 % of it
// `{1,128}`): the garbage collector marked them at every cycle of a
// serving process (docs/performance.md#the-garbage-collectors-share-2026-12-08).
type charRun struct {
	min, max int
	set      [4]uint64 // the bytes of the class
}

// newCharRun takes the class as single bytes and "a-z" ranges.
func newCharRun(min, max int, class ...string) *charRun {
	c := &charRun{min: min, max: max}
	for _, r := range class {
		lo, hi := r[0], r[len(r)-1]
		for b := int(lo); b <= int(hi); b++ {
			c.set[b>>6] |= 1 << (b & 63)
		}
	}
	return c
}

// MatchString reports whether every byte of s is in the class and s is
// min to max bytes long. A byte outside ASCII is never in the class, so
// counting bytes is counting the regexp's runes.
func (c *charRun) MatchString(s string) bool {
	if len(s) < c.min || len(s) > c.max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; c.set[b>>6]&(1<<(b&63)) == 0 {
			return false
		}
	}
	return true
}

var (
	stageName   = newCharRun(1, 128, "A-Z", "a-z", "0-9", "_", "-")     // ^[A-Za-z0-9_-]{1,128}$
	hexDigest   = newCharRun(64, 64, "0-9", "a-f", "A-F")               // ^[0-9a-fA-F]{64}$
	methodToken = newCharRun(1, 20, "A-Z")                              // ^[A-Z]{1,20}$
	keyFormat   = newCharRun(20, 128, "A-Z", "a-z", "0-9")              // ^[A-Za-z0-9]{20,128}$: API Gateway's API key format (apikey.Valid checks the same at the edge)
	agentName   = newCharRun(1, 64, "A-Z", "a-z", "0-9", "_", ".", "-") // ^[A-Za-z0-9_.-]{1,64}$: it appears in metric labels and logs
)
