package config

import (
	"strings"
	"testing"
)

func TestTracing(t *testing.T) {
	const route = "\nroutes: [{path: /, target: \"http://127.0.0.1:1/\"}]\n"
	env := func(k string) (string, bool) {
		if k == "OTLP_TOKEN" {
			return "Bearer x", true
		}
		return "", false
	}
	cfg, err := Parse("t.yaml", []byte(route), env)
	if err != nil || cfg.Tracing != nil {
		t.Fatalf("no tracing key: %v, %+v", err, cfg.Tracing)
	}
	cfg, err = Parse("t.yaml", []byte("tracing: {otlp_endpoint: http://collector:4318, headers_env: {authorization: OTLP_TOKEN}}"+route), env)
	if err != nil {
		t.Fatal(err)
	}
	tr := cfg.Tracing
	if tr.ServiceName != "drawbridge" || tr.Ratio() != 1 || tr.Headers()["Authorization"] != "Bearer x" {
		t.Errorf("defaults: %q %v %v", tr.ServiceName, tr.Ratio(), tr.Headers())
	}
	for _, c := range []struct{ yaml, want string }{
		{"tracing: {sample_ratio: 1}", "t.yaml:1: tracing.otlp_endpoint is required"},
		{"tracing: {otlp_endpoint: collector:4318}", "t.yaml:1: tracing.otlp_endpoint \"collector:4318\": want an http or https URL"},
		{"tracing:\n  otlp_endpoint: http://c:4318\n  sample_ratio: 1.5", "t.yaml:3: tracing.sample_ratio must be between 0 and 1"},
		{"tracing:\n  otlp_endpoint: http://c:4318\n  headers_env: {authorization: NOPE}", "t.yaml:3: tracing.headers_env authorization: environment variable NOPE is not set"},
		{"tracing: {otlp_endpoint: http://c:4318, unknown: 1}", "unknown"},
	} {
		_, err := Parse("t.yaml", []byte(c.yaml+route), env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}
