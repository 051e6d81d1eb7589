package accesslog

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)

// TestSamplerNetworkBucket: one network gets Burst full lines, then Rate
// per second; what it loses is counted once, in the next summary, by
// outcome and network; the first suppression of a window arms the
// summary, the others do not.
func TestSamplerNetworkBucket(t *testing.T) {
	s := NewSampler(2, 3, []string{"key_rejected", "throttled"}, t0)
	a := netip.MustParseAddr("203.0.113.7")
	var full, arms int
	for i := range 10 {
		f, arm := s.Allow(0, a, t0.Add(time.Duration(i)*time.Millisecond))
		if f {
			full++
		}
		if arm {
			arms++
		}
	}
	if full != 3 || arms != 1 {
		t.Fatalf("burst 3: %d full lines, %d arms; want 3 and 1", full, arms)
	}
	// Another address of the same /24 shares its bucket; another outcome
	// too (the network's bucket is across keys).
	if f, _ := s.Allow(1, netip.MustParseAddr("203.0.113.200"), t0.Add(10*time.Millisecond)); f {
		t.Error("same /24, other key: full line, want none (network bucket empty)")
	}
	// Half a second later: one token (rate 2/s).
	if f, _ := s.Allow(0, a, t0.Add(510*time.Millisecond)); !f {
		t.Error("after 0.5 s at 2/s: suppressed, want a full line")
	}
	if f, _ := s.Allow(0, a, t0.Add(520*time.Millisecond)); f {
		t.Error("token spent: full line, want none")
	}
	sum, ok := s.Summary()
	want := Summary{Since: t0.Add(3 * time.Millisecond), Suppressed: 9,
		Outcomes: []Count{{"key_rejected", 8}, {"throttled", 1}}, Networks: 1, Top: []Count{{"203.0.113.0/24", 9}}}
	if !ok || !summaryEqual(sum, want) {
		t.Errorf("summary = %+v, %v; want %+v", sum, ok, want)
	}
	if sum, ok := s.Summary(); ok {
		t.Errorf("second summary with nothing new = %+v, want none", sum)
	}
	// The next suppression opens a new window.
	if f, arm := s.Allow(0, a, t0.Add(530*time.Millisecond)); f || !arm {
		t.Errorf("first suppression after a summary: full %v arm %v, want false true", f, arm)
	}
	// A quiet network long enough gets its whole burst back, no more.
	full = 0
	for range 10 {
		if f, _ := s.Allow(0, a, t0.Add(time.Hour)); f {
			full++
		}
	}
	if full != 3 {
		t.Errorf("after an hour: %d full lines, want the burst, 3", full)
	}
}

// TestSamplerKeyCeiling: a key's bucket is KeyShare networks' worth, so
// many networks together cannot write more than that, and one network's
// flood leaves the others their lines.
func TestSamplerKeyCeiling(t *testing.T) {
	s := NewSampler(1, 2, []string{"policy_denied"}, t0)
	full := 0
	for n := range 100 {
		a := netip.AddrFrom4([4]byte{198, 51, byte(n), 1})
		for range 5 {
			if f, _ := s.Allow(0, a, t0); f {
				full++
			}
		}
	}
	if full != KeyShare*2 {
		t.Errorf("100 networks × 5 at one instant: %d full lines, want the key's burst %d", full, KeyShare*2)
	}
	sum, _ := s.Summary()
	if sum.Suppressed != 500-int64(full) || sum.Networks != 100 || len(sum.Top) != TopNetworks {
		t.Errorf("summary = %+v", sum)
	}

	s = NewSampler(1, 2, []string{"policy_denied"}, t0)
	flood, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:1:2::3")
	for i := range 1000 {
		s.Allow(0, flood, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if f, _ := s.Allow(0, other, t0.Add(time.Second)); !f {
		t.Error("one network's flood took another network's line on the same key")
	}
	sum, _ = s.Summary()
	if want := []Count{{"192.0.2.0/24", 1000 - 2}}; !slices.Equal(sum.Top, want) {
		t.Errorf("top = %v, want %v", sum.Top, want)
	}
}

// TestSamplerTable: networks beyond the table's size recycle its entries
// (the memory stays what NewSampler made); the per-outcome totals stay
// exact however many networks came and went.
func TestSamplerTable(t *testing.T) {
	s := NewSampler(0.001, 1, []string{"no_route"}, t0)
	const n = 3 * netSets * netWays
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		s.Allow(0, a, t0.Add(time.Duration(i)))
		s.Allow(0, a, t0.Add(time.Duration(i)))
	}
	if len(s.sets) != netSets {
		t.Fatalf("table grew to %d sets", len(s.sets))
	}
	sum, _ := s.Summary()
	if want := int64(2*n - KeyShare); sum.Suppressed != want {
		t.Errorf("suppressed = %d, want %d", sum.Suppressed, want)
	}
	if sum.Networks > netSets*netWays {
		t.Errorf("networks = %d, more than the table holds", sum.Networks)
	}
}

// TestSamplerConcurrent: every rejection is either a full line or in a
// summary, with Allow and Summary racing (run with -race).
func TestSamplerConcurrent(t *testing.T) {
	s := NewSampler(100, 10, []string{"a", "b"}, t0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	full, summed := 0, int64(0)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if sum, ok := s.Summary(); ok {
				mu.Lock()
				summed += sum.Suppressed
				mu.Unlock()
			}
		}
	}()
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := range 5000 {
				a := netip.AddrFrom4([4]byte{10, 0, byte(i % 7), 1})
				if f, _ := s.Allow(g%2, a, t0.Add(time.Duration(i)*time.Microsecond)); f {
					n++
				}
			}
			mu.Lock()
			full += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(stop)
	sum, _ := s.Close()
	mu.Lock()
	defer mu.Unlock()
	if got := int64(full) + summed + sum.Suppressed; got != 20000 {
		t.Errorf("full %d + summarised %d = %d, want 20000", full, summed+sum.Suppressed, got)
	}
	if f, _ := s.Allow(0, netip.MustParseAddr("10.0.0.1"), t0); !f {
		t.Error("after Close: suppressed, want every rejection in full")
	}
}

func TestNetOf(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.77":           "203.0.113.0/24",
		"::ffff:203.0.113.77":    "203.0.113.0/24",
		"2001:db8:abcd:12::1":    "2001:db8:abcd::/48",
		"2001:db8:abcd:ffff::ff": "2001:db8:abcd::/48",
	} {
		if got := netOf(netKey(netip.MustParseAddr(in))); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	if got := netOf(netKey(netip.Addr{})); got != "unknown" {
		t.Errorf("invalid address: %s", got)
	}
}

func summaryEqual(a, b Summary) bool {
	return a.Since.Equal(b.Since) && a.Suppressed == b.Suppressed && a.Networks == b.Networks &&
		slices.Equal(a.Outcomes, b.Outcomes) && slices.Equal(a.Top, b.Top)
}

// BenchmarkSamplerSuppressed: the cost a flood's rejection adds once its
// network's tokens are spent.
func BenchmarkSamplerSuppressed(b *testing.B) {
	s := NewSampler(10, 100, []string{"key_rejected"}, t0)
	a := netip.MustParseAddr("203.0.113.7")
	now := t0
	for range 200 {
		s.Allow(0, a, now)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Allow(0, a, now)
	}
}
