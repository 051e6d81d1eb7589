package store

// Counter is the state of one quota counter as the embedded drivers keep it
// (a Redis driver keeps the same three fields in a hash). The zero value is
// a counter that has never counted.
type Counter struct {
	Period int64 // Unix seconds of the period held; meaningful when Seen
	First  int64 // Unix seconds of the first period ever counted
	Used   int64 // requests counted in Period
	Seen   bool  // false: never counted, the next period counted is the first
}

// Count applies Store.Count's rules to c: move to q.Period if it is later
// than the period held (an earlier one counts against the period held), then
// count one request if it fits the effective limit.
func (c *Counter) Count(q Quota) QuotaResult {
	c.advance(q.Period.Unix())
	lim := q.EffectiveLimit(c.Period == c.First)
	if c.Used >= lim {
		return QuotaResult{Used: c.Used, Limit: lim, OK: false}
	}
	c.Used++
	return QuotaResult{Used: c.Used, Limit: lim, OK: true}
}

// Peek is what Count would see, without changing c: OK reports whether one
// more request would be counted.
func (c Counter) Peek(q Quota) QuotaResult {
	c.advance(q.Period.Unix())
	lim := q.EffectiveLimit(c.Period == c.First)
	return QuotaResult{Used: c.Used, Limit: lim, OK: c.Used < lim}
}

func (c *Counter) advance(p int64) {
	switch {
	case !c.Seen:
		*c = Counter{Period: p, First: p, Seen: true}
	case p > c.Period:
		c.Period, c.Used = p, 0
	}
}
