package gateway

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/tracing"
)

// BenchmarkGuardsTraced is BenchmarkGuards' allowed request with tracing
// on at sample_ratio 1: the request span and one span per deciding guard
// step, queued for export (to the SDK's no-op exporter behind the real
// queue: the export's own cost is the exporting goroutine's, off the
// request path). Compare with BenchmarkGuards/allowed, tracing off.
func BenchmarkGuardsTraced(b *testing.B) {
	tr, err := tracing.New(&config.Tracing{OTLPEndpoint: "http://127.0.0.1:1", ServiceName: "drawbridge"}, nil, tracing.Options{Exporter: tracetest.NewNoopExporter()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Shutdown(context.Background()) })
	g, _ := buildFor(b, benchYAML, "", Deps{Tracer: tr}, map[string]string{"GH": "It's a Secret to Everybody"})
	w := &discard{h: http.Header{}}
	r, _ := http.NewRequest("GET", "http://gw/forward", nil)
	r.RequestURI = "/forward"
	r.RemoteAddr = "140.82.112.5:40000"
	r.Header.Set("X-Api-Key", keyA)
	r.Header.Set("User-Agent", "GitHub-Hookshot/abc")
	if g.serve(w, r, noDispatch); w.code != 0 {
		b.Fatalf("allowed request answered %d", w.code)
	}
	b.ReportAllocs()
	for b.Loop() {
		g.serve(w, r, noDispatch)
	}
}
