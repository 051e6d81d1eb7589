package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/accesslog"
)

// BenchmarkServeForward: an allowed request through ServeHTTP on each
// upstream path to a loopback backend answering 100 bytes, the guard-free
// route and the blog's guard chain, the access line included (into
// io.Discard through serve's logger). The backend's own cost is in the
// figures: compare the paths, not the absolute numbers.
func BenchmarkServeForward(b *testing.B) {
	body := make([]byte, 100)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer backend.Close()
	for _, fwd := range []string{"reverseproxy", "lean"} {
		server := "server: {forwarder: " + fwd + "}\n"
		log := slog.New(accesslog.New(io.Discard))
		gp, _ := buildFor(b, server+"account_throttle: {rate: 1000000000000, burst: 1000000000000}\n"+`routes: [{path: /plain, target: "{T}/small"}]`, backend.URL, Deps{Log: log}, nil)
		guards := strings.ReplaceAll(benchYAML, `"http://127.0.0.1:1/"`, `"{T}/small"`)
		g, _ := buildFor(b, server+guards, backend.URL, Deps{Log: log}, map[string]string{"GH": "s"})
		for _, c := range []struct {
			name string
			g    *Gateway
			path string
			key  string
		}{{"plain", gp, "/plain", ""}, {"guards", g, "/forward", keyA}} {
			b.Run(fwd+"/"+c.name, func(b *testing.B) {
				// net/http's request contexts can be cancelled (the client
				// going away); so is this one, so that the cost of watching
				// it is counted.
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				r, _ := http.NewRequestWithContext(ctx, "GET", "http://gw"+c.path, nil)
				r.RequestURI, r.RemoteAddr = c.path, "140.82.112.5:40000"
				r.Header.Set("User-Agent", "wrk")
				if c.key != "" {
					r.Header.Set("X-Api-Key", c.key)
				}
				w := &discard{h: http.Header{}}
				if c.g.ServeHTTP(w, r); w.code != 200 {
					b.Fatalf("answered %d", w.code)
				}
				b.ReportAllocs()
				for b.Loop() {
					clear(w.h)
					w.code = 0
					c.g.ServeHTTP(w, r)
				}
				if w.code != 200 {
					b.Fatalf("answered %d", w.code)
				}
			})
		}
	}
}

// BenchmarkServeVia: the same request on a via route (docs/agent.md),
// whose tunnel is a RoundTripper answering 100 bytes from memory: the
// edge's own cost of a tunnelled request, without the tunnel.
func BenchmarkServeVia(b *testing.B) {
	body := make([]byte, 100)
	log := slog.New(accesslog.New(io.Discard))
	g, _ := buildFor(b, viaYAML+"account_throttle: {rate: 1000000000000, burst: 1000000000000}\n", "", Deps{Log: log, Agents: cannedAgent{body}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, _ := http.NewRequestWithContext(ctx, "GET", "http://gw/via", nil)
	r.RequestURI, r.RemoteAddr = "/via", "140.82.112.5:40000"
	r.Header.Set("User-Agent", "wrk")
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.code = 0
		g.ServeHTTP(w, r)
	}
	if w.code != 200 {
		b.Fatalf("answered %d", w.code)
	}
}

// cannedAgent is a Deps.Agents whose tunnel answers body.
type cannedAgent struct{ body []byte }

func (a cannedAgent) Transport(string) http.RoundTripper { return a }
func (a cannedAgent) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Length": {"100"}}, ContentLength: 100,
		Body: io.NopCloser(bytes.NewReader(a.body)), Request: req}, nil
}
