package apikey

import (
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
)

// Unit is a quota period: DAY, WEEK or MONTH, as API Gateway's
// QuotaSettings.period. The zero Unit is invalid; ParseUnit at config load.
type Unit string

// The quota periods. All are calendar periods in UTC, reset at 00:00 UTC
// (API Gateway's DAY quota covers 00:00–23:59:59 UTC, not a rolling 24 h).
const (
	Day   Unit = "DAY"
	Week  Unit = "WEEK"
	Month Unit = "MONTH"
)

// WeekStart is the day a WEEK quota resets, at 00:00 UTC. AWS's current
// documentation does not name it; the only AWS text that does (the older
// QuotaSettings.offset description, "with a time period of WEEK, an offset
// of 0 starts on Sunday, and an offset of 1 starts on Monday") makes a
// default week start on Sunday, so drawbridge resets weekly quotas on
// Sunday 00:00 UTC, not on the ISO Monday.
const WeekStart = time.Sunday

// ParseUnit reads a period name, in any letter case.
func ParseUnit(s string) (Unit, error) {
	switch u := Unit(strings.ToUpper(s)); u {
	case Day, Week, Month:
		return u, nil
	}
	return "", fmt.Errorf("quota period %q: want DAY, WEEK or MONTH", s)
}

// Period returns the UTC calendar period of unit u containing now: start
// inclusive, end exclusive (the next period's start). now may be in any
// location. An invalid u returns zero times.
func Period(now time.Time, u Unit) (start, end time.Time) {
	now = now.UTC()
	y, m, d := now.Date()
	switch u {
	case Day:
		start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	case Week:
		back := (int(now.Weekday()) - int(WeekStart) + 7) % 7
		start = time.Date(y, m, d-back, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 7)
	case Month:
		start = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
	return time.Time{}, time.Time{}
}

// Quota is a usage plan's quota, compiled from config. The zero Quota has
// no valid unit; Validate rejects it.
type Quota struct {
	// Limit is the requests allowed per period (≥ 0; 0 allows none).
	Limit int64
	// Offset is API Gateway's QuotaSettings.offset in its current meaning:
	// requests subtracted from Limit in the first period only (for a plan
	// that starts mid-period). The first period is the one in which a key
	// first used the plan; the store records it with the first count.
	// The older AWS meaning ("the day the period starts") is not
	// implemented: WEEK always starts on WeekStart, MONTH on the 1st.
	Offset int64
	// Unit is the calendar period.
	Unit Unit
}

// Validate reports a quota API Gateway would refuse: negative limit or
// offset, or an unknown unit. An offset above the limit is allowed (the
// first period then allows nothing), as the effective limit is clamped.
func (q Quota) Validate() error {
	if q.Limit < 0 {
		return fmt.Errorf("quota limit %d: must not be negative", q.Limit)
	}
	if q.Offset < 0 {
		return fmt.Errorf("quota offset %d: must not be negative", q.Offset)
	}
	if _, err := ParseUnit(string(q.Unit)); err != nil {
		return err
	}
	return nil
}

// At is the store quota for the period containing now, to pass to
// store.Store.Count or Usage.
func (q Quota) At(now time.Time) store.Quota {
	start, _ := Period(now, q.Unit)
	return store.Quota{Period: start, Limit: q.Limit, Offset: q.Offset}
}

// ResetAt is when the period containing now ends and the count resets.
func (q Quota) ResetAt(now time.Time) time.Time {
	_, end := Period(now, q.Unit)
	return end
}
