package main

import (
	"math"
	"slices"
	"strings"
	"testing"
)

const wrkOut = `Running 3s test @ http://127.0.0.1:38617/small
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   577.67us  120.01us   5.21ms   90.00%
    Req/Sec    50.41k     1.20k   52.00k    80.00%
  Latency Distribution
     50%  541.00us
     75%  600.00us
     90%  700.00us
     99%    1.20ms
  151234 requests in 3.00s, 21.00MB read
  Socket errors: connect 0, read 2, write 1, timeout 0
  Non-2xx or 3xx responses: 151234
Requests/sec:  50411.33
Transfer/sec:      7.00MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOut)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 151234, Seconds: 3, RPS: 50411.33, P50: 0.541, P99: 1.2, Non2xx: 151234, Errors: 3}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if r.Requests != want.Requests || !near(r.Seconds, want.Seconds) || !near(r.RPS, want.RPS) ||
		!near(r.P50, want.P50) || !near(r.P99, want.P99) || r.Non2xx != want.Non2xx || r.Errors != want.Errors {
		t.Fatalf("parseWrk = %+v, want %+v", r, want)
	}
}

func TestParseWrkRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "unable to connect to 127.0.0.1:1 Connection refused\n", "Requests/sec: x\n"} {
		if _, err := parseWrk(s); err == nil {
			t.Errorf("parseWrk(%q): no error", s)
		}
	}
}

func TestParseLatency(t *testing.T) {
	cases := map[string]float64{"541.00us": 0.541, "1.20ms": 1.2, "2.01s": 2010, "1.00m": 60000}
	for in, want := range cases {
		got, err := parseLatency(in)
		if err != nil || math.Abs(got-want) > 1e-9 {
			t.Errorf("parseLatency(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseLatency("12ns"); err == nil {
		t.Error("parseLatency(12ns): no error")
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if m := median(nil); !math.IsNaN(m) {
		t.Errorf("median(nil) = %v", m)
	}
}

// TestWrong: a row counts the answers of another class than its target's,
// so 429s in a forwarding row (or 200s in a rejection row) are reported.
func TestWrong(t *testing.T) {
	cases := []struct {
		name string
		r    wrkResult
		want int
		n    int64
	}{
		{"forward, all 2xx", wrkResult{Requests: 1000}, 200, 0},
		{"forward, 429s mixed in", wrkResult{Requests: 1000, Non2xx: 340}, 200, 340},
		{"forward, socket errors", wrkResult{Requests: 1000, Errors: 3}, 200, 3},
		{"async 202, all accepted", wrkResult{Requests: 500}, 202, 0},
		{"rejection, all 403", wrkResult{Requests: 1000, Non2xx: 1000}, 403, 0},
		{"rejection, some let through", wrkResult{Requests: 1000, Non2xx: 990}, 403, 10},
	}
	for _, c := range cases {
		if got := wrong(sample{wrkResult: c.r}, c.want); got != c.n {
			t.Errorf("%s: wrong = %d, want %d", c.name, got, c.n)
		}
	}
}

func TestParseVariant(t *testing.T) {
	v, err := parseVariant("gcoff:GOGC=off,GODEBUG=gctrace=1")
	if err != nil || v.Label != "gcoff" || !slices.Equal(v.Env, []string{"GOGC=off", "GODEBUG=gctrace=1"}) {
		t.Fatalf("got %+v, %v", v, err)
	}
	for _, bad := range []string{"", "gcoff", ":GOGC=off", "GC:GOGC=off", "a b:X=1", "gcoff:GOGC", "gcoff:=off", "gcoff:GOGC=off,"} {
		if _, err := parseVariant(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestPrintModeRatios holds the table bench/run prints to its figures:
// medians over the repetitions, each row's ratio to the same mode's
// anchors, the bare-403 ratio only for rejections, and a line under the
// table for a row with wrong-class answers or a target that could not run.
func TestPrintModeRatios(t *testing.T) {
	m := mode{Name: "pinned-c64", Pinned: true, Conns: 64, Threads: 1, Groups: []string{"forward", "reject"}}
	ts := []target{
		{Name: "direct", Group: "forward", Want: 200},
		{Name: "nginx", Group: "forward", Want: 200},
		{Name: "bareproxy", Group: "forward", Want: 200},
		{Name: "bare403", Group: "reject", Want: 403},
		{Name: "drawbridge-guards", Group: "forward", Want: 200},
		{Name: "drawbridge-429", Group: "reject", Want: 429},
		{Name: "caddy", Group: "forward", Want: 200, Unavailable: "caddy not installed"},
		{Name: "drawbridge-async", Group: "async", Want: 202}, // not in this mode
	}
	s := func(target string, rps float64, req, non2xx int64) sample {
		return sample{Mode: m.Name, Target: target, CPUPerReq: 10, RSSKiB: 2048,
			wrkResult: wrkResult{RPS: rps, P50: 1, P99: 2, Requests: req, Non2xx: non2xx}}
	}
	samples := []sample{
		s("direct", 100000, 1000, 0), s("direct", 120000, 1000, 0), s("direct", 110000, 1000, 0),
		s("nginx", 50000, 1000, 0),
		s("bareproxy", 20000, 1000, 0),
		s("bare403", 100000, 1000, 1000),
		s("drawbridge-guards", 30000, 1000, 0), s("drawbridge-guards", 25000, 1000, 10),
		s("drawbridge-429", 90000, 1000, 1000),
		s("drawbridge-async", 5000, 1000, 0),
		{Mode: "pinned-c8", Target: "nginx", wrkResult: wrkResult{RPS: 1}}, // another mode's anchor
	}
	var b strings.Builder
	printMode(&b, m, ts, samples)
	out := b.String()
	row := func(name string) []string {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == name {
				return f
			}
		}
		t.Fatalf("no row %s in:\n%s", name, out)
		return nil
	}
	// name req/s p50 p99 cpu rss ×direct ×nginx ×bareproxy ×bare403
	for name, want := range map[string][]string{
		"direct":            {"110000", "1.000", "2.000", "10.0", "2.0", "1.00", "2.20", "5.50", "-"},
		"drawbridge-guards": {"27500", "1.000", "2.000", "10.0", "2.0", "0.25", "0.55", "1.38", "-"},
		"drawbridge-429":    {"90000", "1.000", "2.000", "10.0", "2.0", "0.82", "1.80", "4.50", "0.90"},
	} {
		if got := row(name)[1:]; !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	for _, want := range []string{
		"caddy: unavailable: caddy not installed",
		"drawbridge-guards: 10 of 2000 answers were not 200",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "drawbridge-async") || strings.Contains(out, "drawbridge-429: ") {
		t.Errorf("a row out of the mode's groups, or a wrong-answer line for a right one:\n%s", out)
	}
}
