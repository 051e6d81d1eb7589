package main

import (
	"io"
	"net"
	"net/http"
)

// otlpSink is a collector that takes every OTLP/HTTP export and keeps
// nothing, for the drawbridge-guards-traced target: tracing on at
// sample_ratio 1, every span exported (docs/tracing.md#cost). It serves
// until stop is called.
func otlpSink() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		// An empty ExportTraceServiceResponse: everything accepted.
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// tracedConfig is the guard chain's config with tracing on, every trace
// recorded, exported to url.
func tracedConfig(url string) string {
	return guardsConfig + "\ntracing: {otlp_endpoint: \"" + url + "\", sample_ratio: 1}\n"
}
