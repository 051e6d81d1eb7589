package config

import "time"

// Log configures the request log (log:).
type Log struct {
	Rejections RejectionLog `yaml:"rejections"`
}

// RejectionLog bounds the access lines of rejected requests
// (log.rejections): a rejection gets its full line while both its client
// network (/24 IPv4, /48 IPv6) and its (route, outcome) have a token;
// the rest are counted, and one summary line per SummaryInterval gives
// their number by outcome and the networks that sent most
// (docs/performance.md#rejection-log-sampling). Forwarded and accepted
// requests, and failures that are not rejections, always get their line.
type RejectionLog struct {
	// Rate and Burst are a client network's full lines per second and at
	// once; a (route, outcome) has accesslog.KeyShare times both.
	Rate            Number   `yaml:"rate"`
	Burst           Int      `yaml:"burst"`
	SummaryInterval Duration `yaml:"summary_interval"`
}

// Rejection log defaults: high enough that a quiet server's log is the
// same line for line as with no sampling (no client network of a quiet
// server is refused 100 times in a row, nor 10 times a second for long),
// low enough that a flood of a million refusals writes a few hundred
// lines.
const (
	DefaultRejectionRate    = 10
	DefaultRejectionBurst   = 100
	DefaultRejectionSummary = 10 * time.Second
)

// log fills log.rejections' defaults and checks its values.
func (v *validator) log() {
	r := &v.cfg.Log.Rejections
	// A zero written out is refused, not taken for "unset": "rate: 0"
	// reads as "log no refusal", which this setting does not offer (the
	// burst's lines always come).
	for _, k := range []struct {
		key  string
		zero bool
	}{{"rate", r.Rate == 0}, {"burst", r.Burst == 0}} {
		if _, set := v.cfg.Lines["$.log.rejections."+k.key]; set && k.zero {
			v.errorf("$.log.rejections."+k.key, "log.rejections.%s must be positive", k.key)
		}
	}
	if r.Rate == 0 {
		r.Rate = DefaultRejectionRate
	}
	if r.Burst == 0 {
		r.Burst = DefaultRejectionBurst
	}
	setDuration(&r.SummaryInterval, DefaultRejectionSummary)
	if r.Rate < 0 {
		v.errorf("$.log.rejections.rate", "log.rejections.rate must be positive")
	}
	if r.Burst < 0 {
		v.errorf("$.log.rejections.burst", "log.rejections.burst must be positive")
	}
}
