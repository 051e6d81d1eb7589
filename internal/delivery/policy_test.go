package delivery

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestBackoffCeilings(t *testing.T) {
	p := Policy{Base: 5 * time.Second, Max: time.Hour}.WithDefaults()
	top := func(n int64) int64 { return n - 1 }
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600}
	for i, w := range want {
		if got := p.backoff(i+1, top).Round(time.Second); got != w*time.Second {
			t.Errorf("backoff after attempt %d = %v, want %v", i+1, got, w*time.Second)
		}
	}
	if got := p.backoff(200, top).Round(time.Second); got != time.Hour {
		t.Errorf("backoff after 200 attempts = %v (overflow?)", got)
	}
	if got := p.backoff(1, zeroRand); got != MinRetryDelay {
		t.Errorf("floor = %v, want %v", got, MinRetryDelay)
	}
	small := Policy{Base: 10 * time.Millisecond}.WithDefaults()
	if got := small.backoff(1, zeroRand); got != 10*time.Millisecond {
		t.Errorf("floor with a 10ms base = %v, want 10ms", got)
	}
}

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := Policy{MaxAttempts: 3, MaxAge: time.Hour, Base: time.Second, Max: time.Minute}
	fresh := &Delivery{AcceptedAt: t0}
	twoDone := &Delivery{AcceptedAt: t0, Attempts: []Attempt{{At: t0}, {At: t0}}}
	replayed := &Delivery{AcceptedAt: t0, ReplayedAt: t0.Add(2 * time.Hour), Attempts: []Attempt{{At: t0}, {At: t0}}}
	cases := []struct {
		name  string
		d     *Delivery
		r     Result
		now   time.Time
		state State
		next  time.Time
	}{
		{"2xx", fresh, Result{Status: 201}, t0, Delivered, time.Time{}},
		{"4xx", fresh, Result{Status: 422}, t0, Dead, time.Time{}},
		{"3xx", fresh, Result{Status: 302}, t0, Dead, time.Time{}},
		{"1xx", fresh, Result{Status: 100}, t0, Dead, time.Time{}},
		{"5xx backoff", fresh, Result{Status: 500}, t0, Pending, t0.Add(time.Second)},
		{"no response", fresh, Result{Err: http.ErrHandlerTimeout}, t0, Pending, t0.Add(time.Second)},
		{"Retry-After floors 503", fresh, Result{Status: 503, RetryAfter: 30 * time.Second}, t0, Pending, t0.Add(30 * time.Second)},
		{"Retry-After floors 429", fresh, Result{Status: 429, RetryAfter: 30 * time.Second}, t0, Pending, t0.Add(30 * time.Second)},
		{"Retry-After ignored on 500", fresh, Result{Status: 500, RetryAfter: 30 * time.Second}, t0, Pending, t0.Add(time.Second)},
		{"Retry-After past max_age", fresh, Result{Status: 503, RetryAfter: 2 * time.Hour}, t0, Dead, time.Time{}},
		{"last attempt", twoDone, Result{Status: 500}, t0, Dead, time.Time{}},
		{"past max_age", fresh, Result{Status: 500}, t0.Add(time.Hour), Dead, time.Time{}},
		{"backoff cut to max_age", fresh, Result{Status: 500}, t0.Add(time.Hour - time.Millisecond), Pending, t0.Add(time.Hour)},
		{"replay restarts budget", replayed, Result{Status: 500}, t0.Add(2 * time.Hour), Pending, t0.Add(2*time.Hour + time.Second)},
	}
	for _, c := range cases {
		st, next := p.Decide(c.d, c.r, c.now, zeroRand)
		if st != c.state || !next.Equal(c.next) {
			t.Errorf("%s: %s at %v, want %s at %v", c.name, st, next, c.state, c.next)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"Thu, 01 Jan 2026 00:00:30 GMT", 30 * time.Second, true},
		{"Wed, 31 Dec 2025 23:00:00 GMT", 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "120", "Thu, 01 Jan 2026 00:00:30 GMT", "Monday, 02-Jan-06 15:04:05 MST", "Mon Jan  2 15:04:05 2006", "", "4294967295", "-0"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", s, d, ok)
		}
		if ok && strings.TrimSpace(s) == "" {
			t.Fatalf("empty value accepted")
		}
	})
}

func TestIDs(t *testing.T) {
	var g idGen
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := ""
	for i := range 1000 {
		now := t0.Add(time.Duration(i%7) * time.Millisecond) // also steps back
		if i%100 == 0 {
			now = t0.Add(-time.Second)
		}
		id := g.next(now)
		if !validID(id) || id <= prev {
			t.Fatalf("id %d = %q after %q: not valid or not increasing", i, id, prev)
		}
		prev = id
	}
	if a, b := idFloor(t0), g.next(t0.Add(time.Millisecond)); a >= b {
		t.Errorf("idFloor(t0) = %s not below a later id %s", a, b)
	}
	for _, bad := range []string{"", "x", strings.Repeat("0", 25), strings.Repeat("U", 26), "8" + strings.Repeat("0", 25)} {
		if validID(bad) {
			t.Errorf("validID(%q) = true", bad)
		}
	}
}
