package console

import (
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/metrics"
)

// The recent view's bounds. Memory is fixed whatever the traffic: Window
// seconds of per-second counts with at most MaxCells (route, outcome)
// pairs each, RejectionRing rejections and LatencyRing upstream times.
const (
	Window        = 600 // seconds of per-second counts (10 minutes)
	MaxCells      = 256 // (route, outcome) pairs counted per second; the rest count as OtherRoute
	RejectionRing = 4096
	LatencyRing   = 4096
	// OtherRoute labels the counts beyond MaxCells pairs in one second
	// (only a config with over a hundred routes gets there).
	OtherRoute = "_other"
)

// Recent is the console's bounded, in-process view of the requests the
// gateway finished: it implements metrics.Recorder. Prometheus keeps the
// totals; Recent keeps what a page needs and a scrape cannot give: the
// last minutes second by second and who was refused.
type Recent struct {
	mu   sync.Mutex
	secs [Window]second
	rej  [RejectionRing]metrics.Event
	rejN uint64 // rejections recorded so far; rej[rejN%len] is the next slot
	lat  [LatencyRing]latency
	latN uint64
}

type second struct {
	unix  int64
	cells []cell // capacity kept when the slot is reused: no allocation in steady state
}

type cell struct {
	route   string
	outcome metrics.Outcome
	n       int64
}

type latency struct {
	at    int64 // unix second
	route string
	d     time.Duration
}

// NewRecent returns an empty view.
func NewRecent() *Recent { return &Recent{} }

// Record implements metrics.Recorder: one mutex hold, no allocation once
// each second slot has grown to the number of (route, outcome) pairs seen.
func (r *Recent) Record(e metrics.Event) {
	sec := e.At.Unix()
	r.mu.Lock()
	s := &r.secs[uint64(sec)%Window]
	if s.unix != sec {
		s.unix, s.cells = sec, s.cells[:0]
	}
	s.add(e.Route, e.Outcome, 1)
	if rejected(e.Outcome) {
		r.rej[r.rejN%RejectionRing] = e
		r.rejN++
	}
	if e.Upstream > 0 {
		r.lat[r.latN%LatencyRing] = latency{at: sec, route: e.Route, d: e.Upstream}
		r.latN++
	}
	r.mu.Unlock()
}

func (s *second) add(route string, o metrics.Outcome, n int64) {
	for i := range s.cells {
		if c := &s.cells[i]; c.outcome == o && c.route == route {
			c.n += n
			return
		}
	}
	// The last cell is kept for the overflow (one more per outcome at
	// most): a second never holds much more than MaxCells cells.
	if len(s.cells) >= MaxCells-1 {
		route = OtherRoute
		for i := range s.cells {
			if c := &s.cells[i]; c.outcome == o && c.route == route {
				c.n += n
				return
			}
		}
	}
	s.cells = append(s.cells, cell{route: route, outcome: o, n: n})
}

// rejected: an outcome that cost no backend work and was not a CORS
// preflight or a filtered webhook (answered, not refused). Upstream
// failures (a missing agent among them) did cost backend work, a dial or
// a tunnel's, and are neither billable nor rejections: the overview shows
// them apart.
func rejected(o metrics.Outcome) bool {
	switch o {
	case metrics.Forwarded, metrics.Accepted, metrics.Preflight, metrics.Filtered,
		metrics.UpstreamError, metrics.UpstreamTimeout, metrics.AgentUnavailable:
		return false
	}
	return true
}

// Snapshot is a copy of the view over the last Seconds seconds before
// Now, for one page.
type Snapshot struct {
	Now     time.Time
	Seconds int
	// Series has one entry per second, oldest first.
	Series []Point
	// Cells are the (route, outcome) counts over the window.
	Cells map[string]map[metrics.Outcome]int64
	// Rejections are the ones in the window, newest first.
	Rejections []metrics.Event
	// Latencies are the upstream times in the window, sorted.
	Latencies []time.Duration
}

// Point is one second's requests, split as the overview's chart draws
// them.
type Point struct {
	Unix                         int64
	Billable, Rejected, Upstream int64 // Upstream: upstream_error and upstream_timeout
}

// Snapshot copies what the last seconds (at most Window) hold.
func (r *Recent) Snapshot(now time.Time, seconds int) Snapshot {
	seconds = min(max(seconds, 1), Window)
	end := now.Unix()
	from := end - int64(seconds) + 1
	snap := Snapshot{Now: now, Seconds: seconds, Series: make([]Point, seconds),
		Cells: map[string]map[metrics.Outcome]int64{}}
	for i := range snap.Series {
		snap.Series[i].Unix = from + int64(i)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range snap.Series {
		p := &snap.Series[i]
		s := &r.secs[uint64(p.Unix)%Window]
		if s.unix != p.Unix {
			continue
		}
		for _, c := range s.cells {
			switch {
			case c.outcome.Billable():
				p.Billable += c.n
			case rejected(c.outcome):
				p.Rejected += c.n
			case c.outcome != metrics.Preflight:
				p.Upstream += c.n
			}
			m := snap.Cells[c.route]
			if m == nil {
				m = map[metrics.Outcome]int64{}
				snap.Cells[c.route] = m
			}
			m[c.outcome] += c.n
		}
	}
	fromT := time.Unix(from, 0)
	for i := uint64(0); i < min(r.rejN, RejectionRing); i++ {
		e := r.rej[(r.rejN-1-i)%RejectionRing]
		if e.At.Before(fromT) {
			break // newest first: the rest are older
		}
		if e.At.Unix() <= end {
			snap.Rejections = append(snap.Rejections, e)
		}
	}
	for i := uint64(0); i < min(r.latN, LatencyRing); i++ {
		l := r.lat[(r.latN-1-i)%LatencyRing]
		if l.at < from {
			break
		}
		if l.at <= end {
			snap.Latencies = append(snap.Latencies, l.d)
		}
	}
	slices.Sort(snap.Latencies)
	return snap
}

// Percentile is the q-quantile (0..1) of sorted durations by the
// nearest-rank method; 0 when there are none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Count is one name and how often it occurred, for the top tables.
type Count struct {
	Name string
	N    int
}

// Top counts the values name picks out of es and returns the n most
// frequent, most first (ties by name, so the page is stable).
func Top(es []metrics.Event, n int, name func(metrics.Event) string) []Count {
	m := map[string]int{}
	for _, e := range es {
		if k := name(e); k != "" {
			m[k]++
		}
	}
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return out[i].Name < out[j].Name
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func addrName(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}
