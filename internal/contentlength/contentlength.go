// Package contentlength reads a Content-Length value the strict way both
// of drawbridge's framing checks need (the client side in edge, the target
// side in forward): digits only, no sign, no spaces, no allocation, as on
// the hot path.
package contentlength

// Parse returns the length v spells, or false when v is empty, holds
// anything but ASCII digits, or is longer than 18 digits (so it cannot
// overflow an int64; no real body is an exabyte).
func Parse(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
