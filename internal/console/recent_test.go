package console

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/metrics"
)

// TestRecentWindow: counts land in their second, old seconds fall out of
// the window, and a slot reused a window later starts from zero.
func TestRecentWindow(t *testing.T) {
	r := NewRecent()
	rec := func(at time.Time, route string, o metrics.Outcome, n int) {
		for range n {
			r.Record(metrics.Event{At: at, Route: route, Outcome: o})
		}
	}
	rec(t0, "/a", metrics.Forwarded, 3)
	rec(t0, "/a", metrics.Throttled, 2)
	rec(t0.Add(time.Second), "/b", metrics.Accepted, 1)
	rec(t0.Add(2*time.Second), "/a", metrics.UpstreamTimeout, 1)
	rec(t0.Add(2*time.Second), "/a", metrics.Preflight, 4)

	s := r.Snapshot(t0.Add(2*time.Second), 60)
	if len(s.Series) != 60 {
		t.Fatalf("series of %d seconds", len(s.Series))
	}
	last := s.Series[57:]
	if last[0] != (Point{Unix: t0.Unix(), Billable: 3, Rejected: 2}) || last[1].Billable != 1 || last[2].Upstream != 1 || last[2].Rejected != 0 {
		t.Fatalf("last three seconds %+v", last)
	}
	if s.Cells["/a"][metrics.Forwarded] != 3 || s.Cells["/a"][metrics.Throttled] != 2 || s.Cells["/b"][metrics.Accepted] != 1 || s.Cells["/a"][metrics.Preflight] != 4 {
		t.Fatalf("cells %v", s.Cells)
	}
	if len(s.Rejections) != 2 {
		t.Fatalf("%d rejections, want 2 (preflights and upstream failures are not rejections)", len(s.Rejections))
	}
	// A minute later t0 is out of a one-minute window.
	if s := r.Snapshot(t0.Add(62*time.Second), 60); len(s.Cells) != 0 || len(s.Rejections) != 0 {
		t.Fatalf("stale counts in the window: %v %d", s.Cells, len(s.Rejections))
	}
	// Exactly one window later the slot of t0 is reused from zero.
	rec(t0.Add(Window*time.Second), "/a", metrics.Forwarded, 1)
	s = r.Snapshot(t0.Add(Window*time.Second), Window)
	if s.Cells["/a"][metrics.Forwarded] != 1 || s.Cells["/a"][metrics.Throttled] != 0 {
		t.Fatalf("a reused slot kept old counts: %v", s.Cells)
	}
}

// TestRecentBounded: the memory does not grow with distinct routes in a
// second, nor with rejections or latencies.
func TestRecentBounded(t *testing.T) {
	r := NewRecent()
	for i := range 2 * MaxCells {
		r.Record(metrics.Event{At: t0, Route: fmt.Sprintf("/r%d", i), Outcome: metrics.Forwarded})
	}
	s := r.Snapshot(t0, 1)
	if len(s.Cells) != MaxCells {
		t.Fatalf("%d routes counted, want %d plus the overflow", len(s.Cells), MaxCells)
	}
	if got := s.Cells[OtherRoute][metrics.Forwarded]; got != MaxCells+1 {
		t.Fatalf("overflow counted %d, want %d", got, MaxCells+1)
	}
	if got := s.Series[0].Billable; got != 2*MaxCells {
		t.Fatalf("total %d", got)
	}
	for i := range RejectionRing + 10 {
		r.Record(metrics.Event{At: t0, Route: "/x", Outcome: metrics.KeyRejected, Client: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Upstream: time.Duration(i)})
	}
	s = r.Snapshot(t0, 1)
	if len(s.Rejections) != RejectionRing || len(s.Latencies) != LatencyRing {
		t.Fatalf("%d rejections, %d latencies", len(s.Rejections), len(s.Latencies))
	}
	last := RejectionRing + 9
	if newest := s.Rejections[0].Client; newest != netip.AddrFrom4([4]byte{10, 0, byte(last >> 8), byte(last)}) {
		t.Fatalf("newest rejection first: got %v", newest)
	}
}

func TestPercentileAndTop(t *testing.T) {
	ds := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for q, want := range map[float64]time.Duration{.5: 5, .9: 9, .99: 10, 1: 10, 0: 1} {
		if got := Percentile(ds, q); got != want {
			t.Errorf("p%v = %v, want %v", q*100, got, want)
		}
	}
	if Percentile(nil, .5) != 0 {
		t.Error("no samples")
	}
	es := []metrics.Event{{Key: "b"}, {Key: "a"}, {Key: "b"}, {Key: ""}, {Key: "c"}}
	top := Top(es, 2, func(e metrics.Event) string { return e.Key })
	if len(top) != 2 || top[0] != (Count{"b", 2}) || top[1] != (Count{"a", 1}) {
		t.Fatalf("top %v", top)
	}
}

// TestRecordAllocs: once a second's slot has grown, recording allocates
// nothing (the ring is on the request path).
func TestRecordAllocs(t *testing.T) {
	r := NewRecent()
	e := metrics.Event{At: t0, Route: "/a", Method: "GET", Outcome: metrics.Throttled, Guard: "throttle", Key: "k", Upstream: time.Millisecond}
	r.Record(e)
	if n := testing.AllocsPerRun(1000, func() { r.Record(e) }); n != 0 {
		t.Fatalf("%v allocations per Record", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	r := NewRecent()
	e := metrics.Event{At: time.Now(), Route: "/hooks/github", Method: "POST", Outcome: metrics.Forwarded, Upstream: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		r.Record(e)
	}
}

// TestRejectedOutcomes: the rejections view counts refusals only. A
// filtered webhook was answered, and a target's or a tunnel's failure is
// shown with the failures, not as a refusal; an authorizer that could not
// decide refused the request without backend work, so it is one.
func TestRejectedOutcomes(t *testing.T) {
	notRejected := map[metrics.Outcome]bool{
		metrics.Forwarded: true, metrics.Accepted: true, metrics.Preflight: true, metrics.Filtered: true,
		metrics.UpstreamError: true, metrics.UpstreamTimeout: true, metrics.AgentUnavailable: true,
	}
	for _, o := range metrics.Outcomes {
		if got := rejected(o); got == notRejected[o] {
			t.Errorf("rejected(%s) = %v", o, got)
		}
	}
}

// TestRecentRejectionsAsRecorded: a rejection comes back from the ring as
// it was recorded, whether its names are numbered (the usual case) or
// kept whole (a client's own method, an address with a zone), and a
// slot's whole event is dropped when the slot is reused.
func TestRecentRejectionsAsRecorded(t *testing.T) {
	r := NewRecent()
	at := t0.Add(123456789 * time.Nanosecond)
	es := []metrics.Event{
		{At: at, Route: "/a", Method: "GET", Outcome: metrics.KeyRejected, Guard: "api_key", Client: netip.MustParseAddr("140.82.112.5")},
		{At: at, Route: "/b", Method: "POST", Outcome: metrics.Throttled, Guard: "throttle", Key: "partner", Client: netip.MustParseAddr("2001:db8::7"), Upstream: 3},
		{At: at, Route: metrics.NoRouteLabel, Method: "BREW", Outcome: metrics.NoRoute, Client: netip.MustParseAddr("::ffff:10.0.0.1")},
		{At: at, Route: "/a", Method: "GET", Outcome: metrics.PolicyDenied, Guard: "resource_policy", Client: netip.MustParseAddr("fe80::1%eth0")},
		{At: at, Route: "/a", Method: "DELETE", Outcome: metrics.QuotaExceeded, Guard: "usage_plan", Key: "k"},
	}
	for _, e := range es {
		r.Record(e)
	}
	s := r.Snapshot(at, 1)
	if len(s.Rejections) != len(es) {
		t.Fatalf("%d rejections, want %d", len(s.Rejections), len(es))
	}
	for i, got := range s.Rejections {
		want := es[len(es)-1-i] // newest first
		if !got.At.Equal(want.At) {
			t.Errorf("rejection %d at %v, want %v", i, got.At, want.At)
		}
		got.At = want.At
		if got != want {
			t.Errorf("rejection %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	if len(r.odd) != 2 {
		t.Fatalf("%d rejections kept whole, want 2 (BREW, the zone)", len(r.odd))
	}
	for range RejectionRing {
		r.Record(es[0])
	}
	if len(r.odd) != 0 {
		t.Fatalf("%d whole rejections left after their slots were reused", len(r.odd))
	}
}

// TestRecentRingsHoldNoPointers: the rings are what the garbage collector
// would scan at every cycle; a field with a pointer (a string, a
// netip.Addr, a time.Time) would bring that back.
func TestRecentRingsHoldNoPointers(t *testing.T) {
	for _, v := range []any{rejection{}, latency{}, cell{}} {
		if p := pointerIn(reflect.TypeOf(v)); p != "" {
			t.Errorf("%T holds a pointer: %s", v, p)
		}
	}
}

func pointerIn(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return ""
	case reflect.Array:
		return pointerIn(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if p := pointerIn(t.Field(i).Type); p != "" {
				return t.Field(i).Name + ": " + p
			}
		}
		return ""
	}
	return t.String()
}
