package config

import (
	"net/http"
	"net/url"
	"regexp"
	"sort"
)

// Tracing turns on OpenTelemetry traces (tracing:, docs/tracing.md).
// Nil (the key absent): no tracer, no exporter, nothing on the hot path.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/HTTP base URL
	// (http://collector:4318); spans are posted to its /v1/traces unless
	// the URL names a path of its own. Required.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the share of new traces recorded, 0 to 1. A trace
	// continued from a trusted proxy follows the proxy's sampled flag.
	// Default 1.
	SampleRatio *Number `yaml:"sample_ratio"`
	// ServiceName is the resource's service.name. Default "drawbridge".
	ServiceName string `yaml:"service_name"`
	// HeadersEnv names, for each header sent with every export (an
	// authorization for a hosted collector), the environment variable
	// holding its value: secrets stay out of the file.
	HeadersEnv map[string]string `yaml:"headers_env"`

	headers map[string]string // HeadersEnv resolved at load
}

// DefaultServiceName is tracing.service_name's default.
const DefaultServiceName = "drawbridge"

// Ratio is the sample ratio with its default.
func (t *Tracing) Ratio() float64 {
	if t.SampleRatio == nil {
		return 1
	}
	return float64(*t.SampleRatio)
}

// Headers are the export headers, their values read from the environment
// when the config was loaded.
func (t *Tracing) Headers() map[string]string { return t.headers }

var headerName = regexp.MustCompile(`^[!#$%&'*+.^_|~0-9A-Za-z` + "`" + `-]+$`)

// tracing checks tracing: and reads its header values from the environment.
func (v *validator) tracing() {
	t := v.cfg.Tracing
	if t == nil {
		return
	}
	setDefault(&t.ServiceName, DefaultServiceName)
	u, err := url.Parse(t.OTLPEndpoint)
	switch {
	case t.OTLPEndpoint == "":
		v.errorf("$.tracing", "tracing.otlp_endpoint is required (the collector's OTLP/HTTP URL, such as http://collector:4318)")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		v.errorf("$.tracing.otlp_endpoint", "tracing.otlp_endpoint %q: want an http or https URL without query, such as http://collector:4318", t.OTLPEndpoint)
	}
	if r := t.Ratio(); r < 0 || r > 1 {
		v.errorf("$.tracing.sample_ratio", "tracing.sample_ratio must be between 0 and 1, not %g", r)
	}
	t.headers = map[string]string{}
	names := make([]string, 0, len(t.HeadersEnv))
	for k := range t.HeadersEnv {
		names = append(names, k)
	}
	sort.Strings(names) // problems in a stable order
	for _, k := range names {
		path := "$.tracing.headers_env." + k
		if !headerName.MatchString(k) {
			v.errorf(path, "tracing.headers_env: %q is not a header name", k)
			continue
		}
		val, ok := v.env(t.HeadersEnv[k])
		if !ok || val == "" {
			v.errorf(path, "tracing.headers_env %s: environment variable %s is not set or empty", k, t.HeadersEnv[k])
			continue
		}
		t.headers[http.CanonicalHeaderKey(k)] = val
	}
}
