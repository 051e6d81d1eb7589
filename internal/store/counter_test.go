package store

import (
	"testing"
	"time"
)

func TestCounter(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 5, d, 0, 0, 0, 0, time.UTC) }
	type call struct {
		period time.Time
		ok     bool
		used   int64
		limit  int64
	}
	tests := []struct {
		name   string
		limit  int64
		offset int64
		calls  []call
	}{
		{"limit then refuse, refusal not counted", 2, 0, []call{
			{day(1), true, 1, 2}, {day(1), true, 2, 2}, {day(1), false, 2, 2}, {day(1), false, 2, 2},
		}},
		{"new period starts at zero", 1, 0, []call{
			{day(1), true, 1, 1}, {day(1), false, 1, 1}, {day(2), true, 1, 1},
		}},
		{"offset applies only to the first period", 3, 2, []call{
			{day(1), true, 1, 1}, {day(1), false, 1, 1},
			{day(2), true, 1, 3}, {day(2), true, 2, 3}, {day(2), true, 3, 3}, {day(2), false, 3, 3},
		}},
		{"offset above limit clamps to zero in the first period", 1, 5, []call{
			{day(1), false, 0, 0}, {day(2), true, 1, 1},
		}},
		{"earlier period counts against the period held", 2, 0, []call{
			{day(2), true, 1, 2}, {day(1), true, 2, 2}, {day(1), false, 2, 2}, {day(3), true, 1, 2},
		}},
		{"zero limit allows none", 0, 0, []call{{day(1), false, 0, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Counter
			for i, cl := range tt.calls {
				q := Quota{Period: cl.period, Limit: tt.limit, Offset: tt.offset}
				peek := c.Peek(q)
				r := c.Count(q)
				if r.OK != cl.ok || r.Used != cl.used || r.Limit != cl.limit {
					t.Fatalf("call %d: got %+v, want ok=%v used=%d limit=%d", i, r, cl.ok, cl.used, cl.limit)
				}
				if peek.OK != r.OK || peek.Limit != r.Limit {
					t.Fatalf("call %d: Peek %+v disagrees with Count %+v", i, peek, r)
				}
			}
		})
	}
}

func TestRemaining(t *testing.T) {
	for _, tt := range []struct {
		r    QuotaResult
		want int64
	}{{QuotaResult{Used: 3, Limit: 5}, 2}, {QuotaResult{Used: 5, Limit: 5}, 0}, {QuotaResult{Used: 7, Limit: 5}, 0}} {
		if got := tt.r.Remaining(); got != tt.want {
			t.Errorf("%+v.Remaining() = %d, want %d", tt.r, got, tt.want)
		}
	}
}
