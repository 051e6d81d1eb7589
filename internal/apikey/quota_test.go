package apikey

import (
	"context"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store/memory"
)

func utc(y int, m time.Month, d, h, min, s, ns int) time.Time {
	return time.Date(y, m, d, h, min, s, ns, time.UTC)
}

func day(y int, m time.Month, d int) time.Time { return utc(y, m, d, 0, 0, 0, 0) }

func TestPeriod(t *testing.T) {
	plus14 := time.FixedZone("UTC+14", 14*3600)
	minus12 := time.FixedZone("UTC-12", -12*3600)
	tests := []struct {
		name       string
		now        time.Time
		unit       Unit
		start, end time.Time
	}{
		{"DAY midnight belongs to the new day", day(2026, 3, 10), Day, day(2026, 3, 10), day(2026, 3, 11)},
		{"DAY last nanosecond", utc(2026, 3, 10, 23, 59, 59, 999999999), Day, day(2026, 3, 10), day(2026, 3, 11)},
		{"DAY year end", utc(2025, 12, 31, 12, 0, 0, 0), Day, day(2025, 12, 31), day(2026, 1, 1)},
		{"DAY leap day", utc(2024, 2, 29, 6, 0, 0, 0), Day, day(2024, 2, 29), day(2024, 3, 1)},
		{"DAY from UTC+14 local morning is the previous UTC day", time.Date(2026, 3, 11, 9, 0, 0, 0, plus14), Day, day(2026, 3, 10), day(2026, 3, 11)},
		{"DAY from UTC-12 local evening is the next UTC day", time.Date(2026, 3, 10, 20, 0, 0, 0, minus12), Day, day(2026, 3, 11), day(2026, 3, 12)},

		{"WEEK Sunday 00:00 starts a week", day(2026, 3, 8), Week, day(2026, 3, 8), day(2026, 3, 15)},
		{"WEEK Saturday last nanosecond", utc(2026, 3, 14, 23, 59, 59, 999999999), Week, day(2026, 3, 8), day(2026, 3, 15)},
		{"WEEK Monday is mid-week", day(2026, 3, 9), Week, day(2026, 3, 8), day(2026, 3, 15)},
		{"WEEK across a year end", utc(2026, 1, 1, 10, 0, 0, 0), Week, day(2025, 12, 28), day(2026, 1, 4)},
		{"WEEK across a leap day", day(2024, 3, 1), Week, day(2024, 2, 25), day(2024, 3, 3)},
		{"WEEK across a month end", utc(2026, 5, 1, 0, 0, 0, 1), Week, day(2026, 4, 26), day(2026, 5, 3)},

		{"MONTH first instant", day(2026, 3, 1), Month, day(2026, 3, 1), day(2026, 4, 1)},
		{"MONTH 31st last nanosecond", utc(2026, 1, 31, 23, 59, 59, 999999999), Month, day(2026, 1, 1), day(2026, 2, 1)},
		{"MONTH 30-day month", utc(2026, 4, 30, 12, 0, 0, 0), Month, day(2026, 4, 1), day(2026, 5, 1)},
		{"MONTH February in a leap year", utc(2024, 2, 29, 23, 0, 0, 0), Month, day(2024, 2, 1), day(2024, 3, 1)},
		{"MONTH February in a common year", utc(2025, 2, 28, 23, 0, 0, 0), Month, day(2025, 2, 1), day(2025, 3, 1)},
		{"MONTH February 2100 is not leap", utc(2100, 2, 28, 0, 0, 0, 0), Month, day(2100, 2, 1), day(2100, 3, 1)},
		{"MONTH February 2000 is leap", utc(2000, 2, 29, 0, 0, 0, 0), Month, day(2000, 2, 1), day(2000, 3, 1)},
		{"MONTH December into next year", utc(2026, 12, 31, 23, 59, 59, 0), Month, day(2026, 12, 1), day(2027, 1, 1)},

		{"unknown unit gives zero times", day(2026, 3, 1), Unit("YEAR"), time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end := Period(tt.now, tt.unit)
			if !start.Equal(tt.start) || !end.Equal(tt.end) {
				t.Fatalf("Period(%v, %s) = [%v, %v), want [%v, %v)", tt.now, tt.unit, start, end, tt.start, tt.end)
			}
			if !start.IsZero() && (start.Location() != time.UTC || !tt.now.Before(end) || tt.now.Before(start)) {
				t.Fatalf("period [%v, %v) does not contain %v in UTC", start, end, tt.now)
			}
		})
	}
}

func TestParseUnitAndValidate(t *testing.T) {
	for _, s := range []string{"DAY", "day", "Week", "MONTH"} {
		if _, err := ParseUnit(s); err != nil {
			t.Errorf("ParseUnit(%q): %v", s, err)
		}
	}
	tests := []struct {
		name string
		q    Quota
		ok   bool
	}{
		{"plain", Quota{Limit: 5, Unit: Day}, true},
		{"zero limit", Quota{Limit: 0, Unit: Week}, true},
		{"offset above limit", Quota{Limit: 5, Offset: 9, Unit: Month}, true},
		{"negative limit", Quota{Limit: -1, Unit: Day}, false},
		{"negative offset", Quota{Limit: 5, Offset: -1, Unit: Day}, false},
		{"zero unit", Quota{Limit: 5}, false},
		{"HOUR", Quota{Limit: 5, Unit: "HOUR"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.q.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// clock is the injected clock the quota scenarios move by hand.
type clock struct{ now time.Time }

func (c *clock) set(t time.Time) { c.now = t }

type hit struct {
	at   time.Time
	ok   bool
	used int64
}

func drive(t *testing.T, q Quota, hits []hit) {
	t.Helper()
	s := memory.New()
	defer s.Close()
	var c clock
	for i, h := range hits {
		c.set(h.at)
		r, err := s.Count(context.Background(), "key:k:plan:p", q.At(c.now))
		if err != nil {
			t.Fatal(err)
		}
		if r.OK != h.ok || r.Used != h.used {
			t.Fatalf("hit %d at %v: got %+v, want ok=%v used=%d", i, h.at, r, h.ok, h.used)
		}
	}
}

func TestQuotaScenarios(t *testing.T) {
	tests := []struct {
		name string
		q    Quota
		hits []hit
	}{
		{"5/DAY: the 6th is refused, reset at 00:00 UTC", Quota{Limit: 5, Unit: Day}, []hit{
			{utc(2026, 3, 10, 9, 0, 0, 0), true, 1},
			{utc(2026, 3, 10, 10, 0, 0, 0), true, 2},
			{utc(2026, 3, 10, 11, 0, 0, 0), true, 3},
			{utc(2026, 3, 10, 12, 0, 0, 0), true, 4},
			{utc(2026, 3, 10, 13, 0, 0, 0), true, 5},
			{utc(2026, 3, 10, 14, 0, 0, 0), false, 5},
			{utc(2026, 3, 10, 23, 59, 59, 999999999), false, 5},
			{day(2026, 3, 11), true, 1},
		}},
		{"2/WEEK resets on Sunday 00:00 UTC, not Monday", Quota{Limit: 2, Unit: Week}, []hit{
			{utc(2026, 3, 9, 8, 0, 0, 0), true, 1},    // Monday
			{utc(2026, 3, 12, 8, 0, 0, 0), true, 2},   // Thursday
			{utc(2026, 3, 14, 23, 0, 0, 0), false, 2}, // Saturday
			{day(2026, 3, 15), true, 1},               // Sunday
			{day(2026, 3, 16), true, 2},               // Monday: same week
			{day(2026, 3, 16), false, 2},
		}},
		{"1/MONTH across February of a leap year", Quota{Limit: 1, Unit: Month}, []hit{
			{utc(2024, 1, 31, 23, 59, 59, 0), true, 1},
			{day(2024, 2, 1), true, 1},
			{utc(2024, 2, 29, 23, 59, 59, 0), false, 1},
			{day(2024, 3, 1), true, 1},
		}},
		{"offset: 10/DAY offset 7 allows 3 in the first day, 10 after", Quota{Limit: 10, Offset: 7, Unit: Day}, []hit{
			{utc(2026, 3, 10, 15, 0, 0, 0), true, 1},
			{utc(2026, 3, 10, 15, 0, 1, 0), true, 2},
			{utc(2026, 3, 10, 15, 0, 2, 0), true, 3},
			{utc(2026, 3, 10, 15, 0, 3, 0), false, 3},
			{day(2026, 3, 11), true, 1},
			{day(2026, 3, 11), true, 2},
			{day(2026, 3, 11), true, 3},
			{day(2026, 3, 11), true, 4},
		}},
		{"offset on WEEK: first week is the one the key first used the plan", Quota{Limit: 3, Offset: 2, Unit: Week}, []hit{
			{utc(2026, 3, 13, 0, 0, 0, 0), true, 1},
			{utc(2026, 3, 13, 0, 0, 0, 0), false, 1},
			{day(2026, 3, 15), true, 1},
			{day(2026, 3, 15), true, 2},
			{day(2026, 3, 15), true, 3},
			{day(2026, 3, 15), false, 3},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { drive(t, tt.q, tt.hits) })
	}
}

func TestResetAt(t *testing.T) {
	q := Quota{Limit: 1, Unit: Month}
	if got := q.ResetAt(utc(2026, 2, 14, 5, 0, 0, 0)); !got.Equal(day(2026, 3, 1)) {
		t.Fatalf("ResetAt = %v, want 2026-03-01", got)
	}
	if got := q.At(utc(2026, 2, 14, 5, 0, 0, 0)); !got.Period.Equal(day(2026, 2, 1)) || got.Limit != 1 {
		t.Fatalf("At = %+v", got)
	}
}
