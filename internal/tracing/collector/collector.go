// Package collector runs a real OTLP/HTTP trace receiver on loopback for
// tests, and reads back the spans it received (docs/tracing.md#testing).
//
// The receiver is a small program (otlpfile/main.go.txt) over the
// OpenTelemetry Collector's own OTLP codec and JSON marshaler
// (go.opentelemetry.io/collector/pdata), the code the Collector's OTLP
// receiver and file exporter run on every request: the bytes drawbridge's
// exporter sends are decoded by the Collector's decoder, not by
// drawbridge's own dependencies. The full Collector (otelcol, the OTLP
// receiver component, the contrib file exporter) decodes with the same
// code but needs more than twice the CPU to build from an empty cache,
// past CI's budget (docs/tracing.md#testing has the figures).
//
// It is built from the Go module proxy at the pinned versions of
// otlpfile/go.mod.txt and go.sum.txt, once, into the user cache directory
// (outside the repository, by internal/testbin, as the Lambda RIE is).
// When the build fails the calling test is skipped, unless CI=true, where
// it fails.
package collector

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/testbin"
)

// Version names the pinned receiver build: the pdata release in
// otlpfile/go.mod.txt (the Collector's v0.161.0 release train).
const Version = "pdata-v1.67.0"

var (
	//go:embed otlpfile/main.go.txt
	mainGo []byte
	//go:embed otlpfile/go.mod.txt
	goMod []byte
	//go:embed otlpfile/go.sum.txt
	goSum []byte
)

// Binary returns the receiver's path, building it on first use into the
// user cache directory by internal/testbin.
func Binary(t testing.TB) string {
	t.Helper()
	return testbin.Build(t, testbin.Program{Owner: "collector", Dir: "otlpfile-" + Version, Exe: "otlpfile"},
		"the OTLP receiver ("+Version+")", map[string][]byte{"main.go": mainGo, "go.mod": goMod, "go.sum": goSum})
}

// Collector is a running receiver.
type Collector struct {
	// URL is the OTLP/HTTP base URL, for tracing.otlp_endpoint.
	URL  string
	file string
}

// Start runs a receiver on a loopback port until the test ends.
func Start(t testing.TB) *Collector {
	t.Helper()
	bin := Binary(t)
	file := filepath.Join(t.TempDir(), "spans.jsonl")
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-out", file)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("collector: no address: %v\n%s", err, stderr.String())
	}
	return &Collector{URL: "http://" + strings.TrimSpace(addr), file: file}
}

// Span is one received span, in the OTLP JSON the Collector's file
// exporter writes: ids in hex, attribute values as strings.
type Span struct {
	TraceID, SpanID, ParentSpanID, Name string
	Kind                                int // OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer
	Attributes                          map[string]string
	Links                               []Link
	Events                              []string
	StatusCode                          int // 2: error
	Service                             string
	Start, End                          time.Time
}

// Link is a span's link to another span.
type Link struct {
	TraceID, SpanID string
	Attributes      map[string]string
}

// Spans reads every span received so far.
func (c *Collector) Spans(t testing.TB) []Span {
	t.Helper()
	data, err := os.ReadFile(c.file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var spans []Span
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var doc otlpJSON
		if err := json.Unmarshal(line, &doc); err != nil {
			t.Fatalf("collector: bad line %q: %v", line, err)
		}
		for _, rs := range doc.ResourceSpans {
			service := attrs(rs.Resource.Attributes)["service.name"]
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					sp := Span{TraceID: s.TraceID, SpanID: s.SpanID, ParentSpanID: s.ParentSpanID, Name: s.Name, Kind: s.Kind,
						Attributes: attrs(s.Attributes), StatusCode: s.Status.Code, Service: service,
						Start: nanos(s.StartTimeUnixNano), End: nanos(s.EndTimeUnixNano)}
					for _, l := range s.Links {
						sp.Links = append(sp.Links, Link{TraceID: l.TraceID, SpanID: l.SpanID, Attributes: attrs(l.Attributes)})
					}
					for _, e := range s.Events {
						sp.Events = append(sp.Events, e.Name)
					}
					spans = append(spans, sp)
				}
			}
		}
	}
	return spans
}

// Wait reads the spans until ok accepts them, or fails the test after
// timeout.
func (c *Collector) Wait(t testing.TB, timeout time.Duration, ok func([]Span) bool) []Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		spans := c.Spans(t)
		if ok(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range spans {
				names = append(names, s.Name)
			}
			t.Fatalf("collector: after %v, the spans received do not hold what the test waits for: %q", timeout, names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type otlpJSON struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []kv `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Spans []struct {
				TraceID           string `json:"traceId"`
				SpanID            string `json:"spanId"`
				ParentSpanID      string `json:"parentSpanId"`
				Name              string `json:"name"`
				Kind              int    `json:"kind"`
				StartTimeUnixNano string `json:"startTimeUnixNano"`
				EndTimeUnixNano   string `json:"endTimeUnixNano"`
				Attributes        []kv   `json:"attributes"`
				Events            []struct {
					Name string `json:"name"`
				} `json:"events"`
				Links []struct {
					TraceID    string `json:"traceId"`
					SpanID     string `json:"spanId"`
					Attributes []kv   `json:"attributes"`
				} `json:"links"`
				Status struct {
					Code int `json:"code"`
				} `json:"status"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type kv struct {
	Key   string `json:"key"`
	Value struct {
		String *string          `json:"stringValue"`
		Int    *json.RawMessage `json:"intValue"` // OTLP JSON writes int64 as a string
		Bool   *bool            `json:"boolValue"`
		Double *float64         `json:"doubleValue"`
	} `json:"value"`
}

func attrs(kvs []kv) map[string]string {
	m := map[string]string{}
	for _, a := range kvs {
		v := a.Value
		switch {
		case v.String != nil:
			m[a.Key] = *v.String
		case v.Int != nil:
			m[a.Key] = strings.Trim(string(*v.Int), `"`)
		case v.Bool != nil:
			m[a.Key] = fmt.Sprint(*v.Bool)
		case v.Double != nil:
			m[a.Key] = fmt.Sprint(*v.Double)
		}
	}
	return m
}

func nanos(s string) time.Time {
	var n int64
	fmt.Sscan(s, &n)
	return time.Unix(0, n)
}
