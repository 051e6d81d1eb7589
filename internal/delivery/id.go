package delivery

import (
	"crypto/rand"
	"sync"
	"time"
)

// crockford is Crockford's base32 alphabet: sorted, so that string order
// of ids is numeric order.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDLen is the length of a delivery id.
const IDLen = 26

// idGen makes monotonic ULIDs. Within one millisecond, and when the clock
// steps back, it increments the previous id instead of drawing new random
// bits, so ids never go backwards: the order of ids is the order of
// acceptance even across an NTP step.
type idGen struct {
	mu   sync.Mutex
	ms   uint64
	rand [10]byte // 80 bits, big-endian
}

func (g *idGen) next(now time.Time) string {
	ms := uint64(now.UnixMilli())
	g.mu.Lock()
	defer g.mu.Unlock()
	if ms > g.ms {
		g.ms = ms
		rand.Read(g.rand[:])
		g.rand[0] &= 0x7f // leave room to increment within the millisecond
	} else {
		// Same millisecond or clock went back: increment. An overflow
		// of 2^79 ids in one millisecond cannot happen; carry into ms
		// anyway so order still holds.
		i := len(g.rand) - 1
		for ; i >= 0; i-- {
			g.rand[i]++
			if g.rand[i] != 0 {
				break
			}
		}
		if i < 0 {
			g.ms++
		}
	}
	return encodeID(g.ms, g.rand)
}

func encodeID(ms uint64, r [10]byte) string {
	var b [IDLen]byte
	// 48-bit time: 10 characters, the first holding 3 bits (50 bits).
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	// 80 random bits: 16 characters of 5 bits.
	var acc uint64
	bits := 0
	j := 10
	for _, c := range r {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			b[j] = crockford[(acc>>bits)&31]
			j++
		}
	}
	return string(b[:])
}

// idFloor is the smallest id at or after t: a lower bound for a scan.
func idFloor(t time.Time) string {
	if t.Before(time.UnixMilli(0)) {
		t = time.UnixMilli(0)
	}
	return encodeID(uint64(t.UnixMilli()), [10]byte{})
}

func decodeChar(c byte) int {
	for i := range len(crockford) {
		if crockford[i] == c {
			return i
		}
	}
	return -1
}

// validID reports whether id has the form of a delivery id, so that
// handlers reject junk before it reaches the store.
func validID(id string) bool {
	if len(id) != IDLen || id[0] > '7' {
		return false
	}
	for i := range len(id) {
		if decodeChar(id[i]) < 0 {
			return false
		}
	}
	return true
}
