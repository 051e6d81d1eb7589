package accesslog

import (
	"cmp"
	crand "crypto/rand"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sampler decides which rejected requests get a full access line, so that
// a flood of refusals cannot flood the log
// (docs/performance.md#rejection-log-sampling). Each rejection has a key (the caller's: a route and an
// outcome) and a client network (/24 for IPv4, /48 for IPv6); it is
// logged in full while both have a token. A network's bucket holds Burst
// tokens and refills at Rate per second, whatever routes it is refused
// on; a key's holds KeyShare times as many and refills KeyShare times as
// fast, so one network flooding one route uses a tenth of that route's
// lines and the others still get theirs, while a thousand networks
// together still cannot write more than the key's. The rest are counted;
// Summary hands the counts over once per interval, for one summary line.
//
// Memory is fixed when the Sampler is made: one bucket per key (keys are
// the caller's fixed set) and a table of netSets×netWays networks. A new
// network takes an empty way of its set or the one idle longest, so an
// attacker with many addresses recycles table entries, never grows them;
// the per-key buckets still bound the lines written.
//
// Times are the caller's (the request's clock), so tests drive a Sampler
// with an injected clock.
type Sampler struct {
	rate, burst float64   // a network's bucket; a key's is KeyShare times both
	epoch       time.Time // times are kept as nanoseconds since epoch
	seed        uint64    // network hash seed: which networks share a set is not known outside
	keys        []keyBucket
	outcomes    []string // the outcome of each key, for the summary
	sets        []netSet

	armed  atomic.Bool  // a window is open: some rejection was suppressed since the last Summary
	since  atomic.Int64 // the window's first suppression
	closed atomic.Bool  // after Close every rejection is logged in full
}

// KeyShare is how many networks' worth of lines a key's bucket holds.
const KeyShare = 10

const (
	netWays = 4
	netBits = 10
	netSets = 1 << netBits // 4,096 networks, 32 bytes each
	// TopNetworks is how many networks a summary names.
	TopNetworks = 5
)

type keyBucket struct {
	mu         sync.Mutex
	tokens     float64
	last       int64
	suppressed atomic.Int64 // in the current window
}

type netSet struct {
	mu sync.Mutex
	e  [netWays]netEntry
}

type netEntry struct {
	key        uint64 // netKey; 0: empty
	tokens     float64
	last       int64
	suppressed int64 // in the current window
}

// NewSampler returns a sampler for keys 0..len(outcomes)-1, outcomes[k]
// naming key k's outcome in summaries. now is the clock's reading at
// start.
func NewSampler(rate float64, burst int, outcomes []string, now time.Time) *Sampler {
	var seed [8]byte
	crand.Read(seed[:])
	s := &Sampler{
		rate: rate, burst: float64(burst), epoch: now,
		seed:     binary.LittleEndian.Uint64(seed[:]) | 1,
		keys:     make([]keyBucket, len(outcomes)),
		outcomes: outcomes,
		sets:     make([]netSet, netSets),
	}
	for i := range s.keys {
		s.keys[i].tokens = KeyShare * s.burst
	}
	return s
}

// Allow reports whether a rejection with key from client, at now, gets
// its full line; when it does not, it is counted for the next summary.
// arm is true for the first suppressed rejection after a Summary: the
// caller then schedules the next Summary (one interval later), so a
// quiet sampler runs no timer.
func (s *Sampler) Allow(key int, client netip.Addr, now time.Time) (full, arm bool) {
	if s.closed.Load() {
		return true, false
	}
	t := int64(now.Sub(s.epoch))
	nk := netKey(client)
	set := &s.sets[(nk*s.seed)>>(64-netBits)]
	kb := &s.keys[key]
	set.mu.Lock()
	e := set.find(nk, t, s.burst)
	e.tokens = refill(e.tokens, t-e.last, s.rate, s.burst)
	e.last = max(e.last, t)
	kb.mu.Lock()
	kb.tokens = refill(kb.tokens, t-kb.last, KeyShare*s.rate, KeyShare*s.burst)
	kb.last = max(kb.last, t)
	full = e.tokens >= 1 && kb.tokens >= 1
	if full {
		e.tokens--
		kb.tokens--
	} else {
		// Both counts under the set's lock: Summary holds every set's,
		// so each suppression is in one summary's totals and networks.
		e.suppressed++
		kb.suppressed.Add(1)
	}
	kb.mu.Unlock()
	set.mu.Unlock()
	if full {
		return true, false
	}
	if !s.armed.Load() && s.armed.CompareAndSwap(false, true) {
		s.since.Store(t)
		return false, true
	}
	return false, false
}

// refill adds the tokens earned over dt nanoseconds, up to burst. A
// negative dt (requests finishing out of order) earns none.
func refill(tokens float64, dt int64, rate, burst float64) float64 {
	if dt > 0 {
		tokens += float64(dt) * rate / 1e9
	}
	return min(tokens, burst)
}

// find returns the entry of network nk, taking an empty way or the one
// idle longest (its counts go with it) when nk has none.
func (set *netSet) find(nk uint64, t int64, burst float64) *netEntry {
	victim := &set.e[0]
	for i := range set.e {
		e := &set.e[i]
		if e.key == nk {
			return e
		}
		if e.key == 0 {
			victim = e
			break
		}
		if e.last < victim.last {
			victim = e
		}
	}
	*victim = netEntry{key: nk, tokens: burst, last: t}
	return victim
}

// netKey packs a client's network into 64 bits, never 0: a tag in the
// top two bits (1 IPv4, 2 IPv6, 3 unknown), then the /24's 24 bits or the
// /48's 48.
func netKey(a netip.Addr) uint64 {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		return 1<<62 | uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
	case a.Is6():
		b := a.As16()
		return 2<<62 | uint64(binary.BigEndian.Uint64(b[:8])>>16)
	}
	return 3 << 62
}

// netOf is netKey's network, as text ("203.0.113.0/24",
// "2001:db8:1::/48", "unknown").
func netOf(k uint64) string {
	switch k >> 62 {
	case 1:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(k >> 16), byte(k >> 8), byte(k)}), 24).String()
	case 2:
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], k<<16)
		return netip.PrefixFrom(netip.AddrFrom16(b), 48).String()
	}
	return "unknown"
}

// Count is a number of suppressed rejections with what they share: an
// outcome or a client network.
type Count struct {
	Name string
	N    int64
}

// Summary is what a window suppressed.
type Summary struct {
	Since      time.Time // the window's first suppressed rejection
	Suppressed int64     // all of them
	Outcomes   []Count   // by outcome, most first
	Networks   int       // client networks they came from (as far as the table kept them)
	Top        []Count   // the TopNetworks networks that sent most, most first
}

// Summary ends the current window and returns what it suppressed; ok is
// false when it suppressed nothing (then there is nothing to log). The
// window closes before the counts are read: a rejection suppressed
// meanwhile opens the next one, and is counted in this summary or the
// next, never in none.
func (s *Sampler) Summary() (sum Summary, ok bool) {
	s.armed.Store(false)
	sum.Since = s.epoch.Add(time.Duration(s.since.Load()))
	// Every set's lock, in order, for a moment once per interval: the
	// totals and the networks are then read at one instant.
	for i := range s.sets {
		s.sets[i].mu.Lock()
	}
	defer func() {
		for i := range s.sets {
			s.sets[i].mu.Unlock()
		}
	}()
	by := map[string]int64{}
	for i := range s.keys {
		if n := s.keys[i].suppressed.Swap(0); n > 0 {
			by[s.outcomes[i]] += n
			sum.Suppressed += n
		}
	}
	if sum.Suppressed == 0 {
		return sum, false
	}
	for name, n := range by {
		sum.Outcomes = append(sum.Outcomes, Count{name, n})
	}
	sortCounts(sum.Outcomes)
	var top []Count
	for i := range s.sets {
		set := &s.sets[i]
		for j := range set.e {
			e := &set.e[j]
			if e.suppressed == 0 {
				continue
			}
			sum.Networks++
			if len(top) < TopNetworks || e.suppressed > top[len(top)-1].N {
				c := Count{netOf(e.key), e.suppressed}
				if len(top) == TopNetworks {
					top = top[:TopNetworks-1]
				}
				at, _ := slices.BinarySearchFunc(top, c, func(a, b Count) int { return cmp.Compare(b.N, a.N) })
				top = slices.Insert(top, at, c)
			}
			e.suppressed = 0
		}
	}
	sortCounts(top)
	sum.Top = top
	return sum, true
}

// sortCounts orders counts most first, then by name, so a summary reads
// the same for the same counts.
func sortCounts(cs []Count) {
	slices.SortFunc(cs, func(a, b Count) int {
		if c := cmp.Compare(b.N, a.N); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}

// Close makes every later rejection get its full line (a gateway being
// replaced still finishes its requests) and returns the last summary.
func (s *Sampler) Close() (Summary, bool) {
	s.closed.Store(true)
	return s.Summary()
}
