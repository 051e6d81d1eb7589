package throttle

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 plus d, the fixed instants tests walk through.
func at(d time.Duration) time.Time { return t0.Add(d) }

type step struct {
	t     time.Duration // offset from t0
	n     int64
	ok    bool
	retry time.Duration // expected retryAfter when !ok
}

func run(t *testing.T, l Limit, steps []step) {
	t.Helper()
	var b Bucket
	for i, s := range steps {
		ok, retry := b.TakeAt(at(s.t), l, s.n)
		if ok != s.ok || retry != s.retry {
			t.Fatalf("step %d (t0+%v, n=%d): got ok=%v retry=%v, want ok=%v retry=%v (tokens now %.3f)",
				i, s.t, s.n, ok, retry, s.ok, s.retry, b.TokensAt(at(s.t), l))
		}
	}
}

func TestTakeAt(t *testing.T) {
	tests := []struct {
		name  string
		limit Limit
		steps []step
	}{
		{
			name:  "new bucket starts full and admits exactly burst at one instant",
			limit: Limit{Rate: 1, Burst: 3},
			steps: []step{
				{0, 1, true, 0}, {0, 1, true, 0}, {0, 1, true, 0},
				{0, 1, false, time.Second},
			},
		},
		{
			name:  "steady rate: one token per 100ms at rate 10",
			limit: Limit{Rate: 10, Burst: 1},
			steps: []step{
				{0, 1, true, 0},
				{50 * time.Millisecond, 1, false, 50 * time.Millisecond},
				{100 * time.Millisecond, 1, true, 0},
				{200 * time.Millisecond, 1, true, 0},
				{300 * time.Millisecond, 1, true, 0},
				{350 * time.Millisecond, 1, false, 50 * time.Millisecond},
				{400 * time.Millisecond, 1, true, 0},
			},
		},
		{
			name:  "refill is capped at burst after a long pause",
			limit: Limit{Rate: 100, Burst: 2},
			steps: []step{
				{0, 2, true, 0},
				{time.Hour, 1, true, 0}, {time.Hour, 1, true, 0},
				{time.Hour, 1, false, 10 * time.Millisecond},
			},
		},
		{
			name:  "fractional rate: 0.5/s gives one token every two seconds",
			limit: Limit{Rate: 0.5, Burst: 1},
			steps: []step{
				{0, 1, true, 0},
				{time.Second, 1, false, time.Second},
				{1999 * time.Millisecond, 1, false, time.Millisecond},
				{2 * time.Second, 1, true, 0},
				{3 * time.Second, 1, false, time.Second},
				{4 * time.Second, 1, true, 0},
			},
		},
		{
			name:  "fractional rate 2.5/s",
			limit: Limit{Rate: 2.5, Burst: 5},
			steps: []step{
				{0, 5, true, 0},
				{time.Second, 3, false, 200 * time.Millisecond}, // 2.5 there, 0.5 missing
				{1200 * time.Millisecond, 3, true, 0},
			},
		},
		{
			name:  "take n: refused n leaves the tokens in place",
			limit: Limit{Rate: 1, Burst: 4},
			steps: []step{
				{0, 3, true, 0},
				{0, 2, false, time.Second},
				{0, 1, true, 0},
			},
		},
		{
			name:  "n over burst can never succeed",
			limit: Limit{Rate: 1000, Burst: 2},
			steps: []step{{0, 3, false, Never}},
		},
		{
			name:  "zero limit admits nothing",
			limit: Limit{},
			steps: []step{{0, 1, false, Never}, {time.Hour, 1, false, Never}},
		},
		{
			name:  "rate zero: burst once, then never",
			limit: Limit{Rate: 0, Burst: 1},
			steps: []step{{0, 1, true, 0}, {time.Hour, 1, false, Never}},
		},
		{
			name:  "clock stepping back refills nothing and never goes negative",
			limit: Limit{Rate: 1, Burst: 1},
			steps: []step{
				{10 * time.Second, 1, true, 0},
				{5 * time.Second, 1, false, time.Second}, // stepped back 5s: no refill
				{5500 * time.Millisecond, 1, false, 500 * time.Millisecond},
				{6 * time.Second, 1, true, 0}, // one real second after the step
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, tt.limit, tt.steps) })
	}
}

func TestSteadyRateOverTime(t *testing.T) {
	// Hammering a 100/s, burst 50 bucket every millisecond for 10 s admits
	// the burst plus rate*duration, within one token.
	l := Limit{Rate: 100, Burst: 50}
	var b Bucket
	admitted := 0
	for ms := 0; ms <= 10000; ms++ {
		if ok, _ := b.TakeAt(at(time.Duration(ms)*time.Millisecond), l, 1); ok {
			admitted++
		}
	}
	if want := 50 + 100*10; admitted < want-1 || admitted > want+1 {
		t.Fatalf("admitted %d in 10s, want %d±1", admitted, want)
	}
}

func TestCanTakeAtDoesNotTake(t *testing.T) {
	l := Limit{Rate: 1, Burst: 1}
	var b Bucket
	for i := 0; i < 3; i++ {
		if ok, _ := b.CanTakeAt(t0, l, 1); !ok {
			t.Fatalf("CanTakeAt #%d refused on a full bucket", i)
		}
	}
	if ok, _ := b.TakeAt(t0, l, 1); !ok {
		t.Fatal("TakeAt refused after CanTakeAt peeks")
	}
	if ok, retry := b.CanTakeAt(t0, l, 1); ok || retry != time.Second {
		t.Fatalf("CanTakeAt on empty bucket = %v, %v; want false, 1s", ok, retry)
	}
}

func TestLoweredBurstTrims(t *testing.T) {
	var b Bucket
	b.TakeAt(t0, Limit{Rate: 1, Burst: 100}, 1) // 99 left
	small := Limit{Rate: 1, Burst: 5}
	if got := b.TokensAt(t0, small); got != 5 {
		t.Fatalf("after lowering burst to 5, tokens = %v, want 5", got)
	}
	if !b.FullAt(t0, small) {
		t.Fatal("FullAt = false for a bucket at its (new) capacity")
	}
}

func TestFullAt(t *testing.T) {
	l := Limit{Rate: 2, Burst: 4}
	var b Bucket
	if !b.FullAt(t0, l) {
		t.Fatal("new bucket not full")
	}
	b.TakeAt(t0, l, 4)
	for _, c := range []struct {
		d    time.Duration
		full bool
	}{{0, false}, {1999 * time.Millisecond, false}, {2 * time.Second, true}} {
		if got := b.FullAt(at(c.d), l); got != c.full {
			t.Errorf("FullAt(t0+%v) = %v, want %v", c.d, got, c.full)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want int64
	}{
		{"zero rounds up to the minimum 1", 0, 1},
		{"1ns", time.Nanosecond, 1},
		{"exactly one second", time.Second, 1},
		{"just over one second", time.Second + time.Nanosecond, 2},
		{"2.5s", 2500 * time.Millisecond, 3},
		{"exactly 10s", 10 * time.Second, 10},
		{"never: no header", Never, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RetryAfterSeconds(tt.d); got != tt.want {
				t.Fatalf("RetryAfterSeconds(%v) = %d, want %d", tt.d, got, tt.want)
			}
		})
	}
}

func TestWait(t *testing.T) {
	tests := []struct {
		name   string
		tokens float64
		l      Limit
		n      int64
		want   time.Duration
	}{
		{"enough tokens", 2, Limit{1, 2}, 1, 0},
		{"one missing at 4/s", 0, Limit{4, 2}, 1, 250 * time.Millisecond},
		{"tiny rate is capped at Never", 0, Limit{1e-12, 1}, 1, Never},
		{"n over burst", 0, Limit{10, 1}, 2, Never},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Wait(tt.tokens, tt.l, tt.n); got != tt.want {
				t.Fatalf("Wait = %v, want %v", got, tt.want)
			}
		})
	}
}

func BenchmarkTakeAt(b *testing.B) {
	l := Limit{Rate: 1e9, Burst: 1 << 40}
	var bk Bucket
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		bk.TakeAt(now.Add(time.Duration(i)), l, 1)
	}
}
