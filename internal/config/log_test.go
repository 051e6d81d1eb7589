package config

import (
	"strings"
	"testing"
	"time"
)

// TestRejectionLog: log.rejections' defaults, values as written, and the
// values refused with the line that wrote them.
func TestRejectionLog(t *testing.T) {
	const routes = "routes: [{path: /a, target: http://127.0.0.1:1/}]\n"
	c, err := Parse("c.yaml", []byte(routes), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := RejectionLog{Rate: DefaultRejectionRate, Burst: DefaultRejectionBurst, SummaryInterval: Duration(DefaultRejectionSummary)}
	if got := c.Log.Rejections; got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	c, err = Parse("c.yaml", []byte("log: {rejections: {rate: 0.5, burst: 3, summary_interval: 1m}}\n"+routes), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want = RejectionLog{Rate: 0.5, Burst: 3, SummaryInterval: Duration(time.Minute)}
	if got := c.Log.Rejections; got != want {
		t.Errorf("set = %+v, want %+v", got, want)
	}
	for _, tc := range []struct{ yaml, msg string }{
		{"log:\n  rejections:\n    rate: 0\n", "c.yaml:3: log.rejections.rate must be positive"},
		{"log:\n  rejections:\n    rate: -1\n", "c.yaml:3: log.rejections.rate must be positive"},
		{"log:\n  rejections:\n    burst: 0\n", "c.yaml:3: log.rejections.burst must be positive"},
		{"log:\n  rejections:\n    summary_interval: 0s\n", "c.yaml:3"},
		{"log:\n  rejections:\n    summary_interval: 10\n", "c.yaml:3"},
		{"log:\n  rejections:\n    sample: 1\n", "c.yaml:3"},
	} {
		_, err := Parse("c.yaml", []byte(tc.yaml+routes), env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.msg)
		}
	}
}
