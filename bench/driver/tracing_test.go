package main

import (
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
)

// TestTracedConfig: the traced target's config loads, with tracing on at
// ratio 1 to the sink.
func TestTracedConfig(t *testing.T) {
	url, stop, err := otlpSink()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	text := strings.NewReplacer("{LISTEN}", "127.0.0.1:0", "{BACKEND}", "http://127.0.0.1:1", "{DIR}", t.TempDir(), "{FORWARDER}", "lean").Replace(tracedConfig(url))
	cfg, err := config.Parse("guards-traced.yaml", []byte(text), func(k string) (string, bool) { return benchKey, k == "DRAWBRIDGE_BENCH_KEY" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tracing == nil || cfg.Tracing.OTLPEndpoint != url || cfg.Tracing.Ratio() != 1 {
		t.Errorf("tracing %+v", cfg.Tracing)
	}
}
