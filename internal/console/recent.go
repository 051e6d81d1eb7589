package console

import (
	"net/http"
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
//
// Its rings hold no pointers: names (routes, outcomes, guards, keys,
// methods) are kept once in names and referred to by number, and the
// rings are allocations of their own. The garbage collector then never
// scans them; as events with strings they were ≈ 700 KB it marked at
// every cycle, most of the collector's work under a flood of small
// requests (docs/performance.md#the-garbage-collectors-share-2026-12-08).
type Recent struct {
	mu    sync.Mutex
	names names
	other uint32 // OtherRoute's number
	secs  [Window]second
	rej   *[RejectionRing]rejection
	rejN  uint64 // rejections recorded so far; rej[rejN%len] is the next slot
	// odd holds, by their number in rejN's sequence, the rejections
	// with a name not kept in names (a client's own method, an address
	// zone): at most RejectionRing, and none in the usual case.
	odd  map[uint64]metrics.Event
	lat  *[LatencyRing]latency
	latN uint64
}

type second struct {
	unix  int64
	cells []cell // capacity kept when the slot is reused: no allocation in steady state
}

type cell struct {
	route, outcome uint32 // numbers in names
	n              int64
}

type latency struct {
	at    int64 // unix second
	route uint32
	d     time.Duration
}

// rejection is a metrics.Event without pointers.
type rejection struct {
	sec      int64 // At
	nsec     int32
	family   uint8 // Client: 0 none, 4 or 6
	odd      bool  // the event is in Recent.odd instead
	route    uint32
	method   uint32
	outcome  uint32
	guard    uint32
	key      uint32
	client   [16]byte
	upstream time.Duration
}

// maxNames bounds names: routes, guards and keys come from the config,
// methods and outcomes from short fixed lists, so only a process
// reloaded with new names many times over comes near it. Past it, a new
// route counts as OtherRoute and a new rejection's names go to odd.
const maxNames = 1 << 16

// names numbers the strings the rings refer to; "" is 0. Each field has
// a one-entry memo: a flood repeats the same route, guard and key, and
// comparing a string to the same string is a pointer comparison.
type names struct {
	ids  map[string]uint32
	list []string
	memo [5]struct {
		s  string
		id uint32
	}
}

// The memo slots of names.of.
const (
	fRoute = iota
	fOutcome
	fMethod
	fGuard
	fKey
)

func (n *names) of(field int, s string) (uint32, bool) {
	m := &n.memo[field]
	if s == m.s {
		return m.id, true
	}
	id, ok := n.ids[s]
	if !ok {
		if len(n.list) >= maxNames {
			return 0, false
		}
		id = uint32(len(n.list))
		n.list = append(n.list, s)
		n.ids[s] = id
	}
	m.s, m.id = s, id
	return id, true
}

// NewRecent returns an empty view.
func NewRecent() *Recent {
	r := &Recent{rej: new([RejectionRing]rejection), lat: new([LatencyRing]latency), odd: map[uint64]metrics.Event{},
		names: names{ids: map[string]uint32{"": 0}, list: []string{""}}}
	r.other, _ = r.names.of(fRoute, OtherRoute)
	for _, o := range metrics.Outcomes {
		r.names.of(fOutcome, string(o)) // numbered first: they always have one
	}
	return r
}

// Record implements metrics.Recorder: one mutex hold, no allocation once
// each second slot has grown to the number of (route, outcome) pairs seen
// (a rejection with a client's own method or an address zone allocates).
func (r *Recent) Record(e metrics.Event) {
	sec := e.At.Unix()
	r.mu.Lock()
	route, rok := r.names.of(fRoute, e.Route)
	outcome, ook := r.names.of(fOutcome, string(e.Outcome))
	s := &r.secs[uint64(sec)%Window]
	if s.unix != sec {
		s.unix, s.cells = sec, s.cells[:0]
	}
	if !rok {
		route = r.other
	}
	if ook { // always: every outcome was numbered by NewRecent
		s.add(route, outcome, 1, r.other)
	}
	if rejected(e.Outcome) {
		r.addRejection(e, route, rok && ook)
	}
	if e.Upstream > 0 {
		r.lat[r.latN%LatencyRing] = latency{at: sec, route: route, d: e.Upstream}
		r.latN++
	}
	r.mu.Unlock()
}

// addRejection writes e into the next slot, by numbers when every name
// has one, else whole into odd.
func (r *Recent) addRejection(e metrics.Event, route uint32, ok bool) {
	slot := &r.rej[r.rejN%RejectionRing]
	if slot.odd {
		delete(r.odd, r.rejN-RejectionRing)
	}
	x := rejection{sec: e.At.Unix(), nsec: int32(e.At.Nanosecond()), route: route, upstream: e.Upstream}
	x.outcome, _ = r.names.of(fOutcome, string(e.Outcome))
	var mok, gok, kok bool
	if standardMethod(e.Method) {
		x.method, mok = r.names.of(fMethod, e.Method)
	}
	x.guard, gok = r.names.of(fGuard, e.Guard)
	x.key, kok = r.names.of(fKey, e.Key)
	switch a := e.Client; {
	case a.Zone() != "":
		ok = false
	case a.Is4():
		x.family = 4
		a4 := a.As4()
		copy(x.client[:], a4[:])
	case a.Is6():
		x.family, x.client = 6, a.As16()
	}
	if !(ok && mok && gok && kok) {
		x = rejection{odd: true}
		r.odd[r.rejN] = e
	}
	*slot = x
	r.rejN++
}

// standardMethod: the methods names keeps; any other (a client may send
// any token) goes with its rejection into odd.
func standardMethod(m string) bool {
	switch m {
	case "", http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return true
	}
	return false
}

// event is rejection number i as recorded.
func (r *Recent) event(i uint64) metrics.Event {
	x := &r.rej[i%RejectionRing]
	if x.odd {
		return r.odd[i]
	}
	n := r.names.list
	e := metrics.Event{At: time.Unix(x.sec, int64(x.nsec)), Route: n[x.route], Method: n[x.method],
		Outcome: metrics.Outcome(n[x.outcome]), Guard: n[x.guard], Key: n[x.key], Upstream: x.upstream}
	switch x.family {
	case 4:
		e.Client = netip.AddrFrom4([4]byte(x.client[:4]))
	case 6:
		e.Client = netip.AddrFrom16(x.client)
	}
	return e
}

func (s *second) add(route, o uint32, n int64, other uint32) {
	for i := range s.cells {
		if c := &s.cells[i]; c.outcome == o && c.route == route {
			c.n += n
			return
		}
	}
	// The last cell is kept for the overflow (one more per outcome at
	// most): a second never holds much more than MaxCells cells.
	if len(s.cells) >= MaxCells-1 {
		route = other
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
			o, route := metrics.Outcome(r.names.list[c.outcome]), r.names.list[c.route]
			switch {
			case o.Billable():
				p.Billable += c.n
			case rejected(o):
				p.Rejected += c.n
			case o != metrics.Preflight:
				p.Upstream += c.n
			}
			m := snap.Cells[route]
			if m == nil {
				m = map[metrics.Outcome]int64{}
				snap.Cells[route] = m
			}
			m[o] += c.n
		}
	}
	fromT := time.Unix(from, 0)
	for i := uint64(0); i < min(r.rejN, RejectionRing); i++ {
		e := r.event(r.rejN - 1 - i)
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
