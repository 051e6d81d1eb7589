//go:build linux

package lambda

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/lambda/rie"
)

// TestUnderRIE runs the echo bootstrap (lambda.Start around a trivial
// handler) under the real Runtime Interface Emulator: sample events of each
// kind come back in their own shape, bad events get clean errors, and one
// execution environment serves them all without re-initialising.
func TestUnderRIE(t *testing.T) {
	bootstrap := rie.BuildBootstrap(t, "./testdata/echo")
	emu := rie.Start(t, bootstrap)

	type doc struct {
		StatusCode        int                 `json:"statusCode"`
		StatusDescription string              `json:"statusDescription"`
		Headers           map[string]string   `json:"headers"`
		MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
		Cookies           []string            `json:"cookies"`
		Body              string              `json:"body"`
		ErrorMessage      string              `json:"errorMessage"`
		OK                bool                `json:"ok"`
	}
	type echo struct {
		Method, Path, Query, RemoteAddr, Kind, Body string
	}
	v1 := readEvent(t, "apigw-request.json")
	v2 := readEvent(t, "apigw-v2-request-no-authorizer.json")
	withPath := func(name, path string) []byte {
		return mutate(t, name, func(m map[string]any) { m["path"] = path })
	}
	tests := []struct {
		name  string
		event []byte
		check func(d doc, e echo) string
	}{
		{"REST v1", v1, func(d doc, e echo) string {
			if d.StatusCode != 201 || len(d.MultiValueHeaders["Set-Cookie"]) != 2 {
				return "want 201 with two Set-Cookie in multiValueHeaders"
			}
			return expect(e, echo{"POST", "/hello/world", "name=me", "192.168.196.186:0", "v1", "{\r\n\t\"a\": 1\r\n}"})
		}},
		{"HTTP API v2", v2, func(d doc, e echo) string {
			if d.StatusCode != 201 || len(d.Cookies) != 2 {
				return "want 201 with cookies"
			}
			return expect(e, echo{"GET", "/", "", "1.2.3.4:0", "v2", ""})
		}},
		{"Function URL", readEvent(t, "lambda-urls-request.json"), func(d doc, e echo) string {
			return expect(e, echo{"POST", "/my/path", "parameter1=value1&parameter1=value2&parameter2=value", "123.123.123.123:0", "url", "Hello from client!"})
		}},
		{"ALB multi-value", readEvent(t, "alb-lambda-target-request-multivalue-headers.json"), func(d doc, e echo) string {
			if d.StatusDescription != "201 Created" || d.Headers != nil {
				return "want statusDescription and multiValueHeaders only"
			}
			return expect(e, echo{"GET", "/", "key=hello", "", "alb", ""})
		}},
		{"unknown shape is a function error", []byte(`{"foo":1}`), func(d doc, _ echo) string {
			return expect(strings.Contains(d.ErrorMessage, "unknown event shape"), true)
		}},
		{"7 MB event is refused", withPath("apigw-request.json", "/"+strings.Repeat("p", 7<<20)), func(d doc, _ echo) string {
			// The RIE truncates payloads over 6 MiB (real Lambda answers 413
			// itself): what arrives is not JSON, so it is a function error.
			return expect(d.ErrorMessage != "" || d.StatusCode == 413, true)
		}},
		{"panic is a 502", withPath("apigw-request.json", "/panic"), func(d doc, _ echo) string {
			return expect(d.StatusCode, 502)
		}},
		{"response over 6 MB is a 502", withPath("apigw-request.json", "/big"), func(d doc, _ echo) string {
			return expect(d.StatusCode, 502)
		}},
		{"scheduled event", []byte(`{"version":"0","detail-type":"Scheduled Event","source":"aws.events","detail":{}}`), func(d doc, _ echo) string {
			return expect(d.OK, true)
		}},
		{"still warm after all that", v2, func(d doc, e echo) string {
			return expect(e.RemoteAddr, "1.2.3.4:0")
		}},
	}
	var warm []time.Duration
	for i, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := emu.Invoke(ctx, tt.event)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if res.Status != 200 {
			t.Fatalf("%s: RIE HTTP %d %.300s", tt.name, res.Status, res.Body)
		}
		var d doc
		if err := json.Unmarshal(res.Body, &d); err != nil {
			t.Fatalf("%s: %v: %.300s", tt.name, err, res.Body)
		}
		var e echo
		if d.Body != "" && d.StatusCode == 201 {
			if err := json.Unmarshal([]byte(d.Body), &e); err != nil {
				t.Fatalf("%s: echo body: %v", tt.name, err)
			}
		}
		if msg := tt.check(d, e); msg != "" {
			t.Errorf("%s: %s\n%.300s", tt.name, msg, res.Body)
		}
		switch {
		case i == 0:
			if res.Report.Init <= 0 {
				t.Errorf("first invoke: no init duration in %+v", res.Report)
			}
			t.Logf("cold: init %v (INIT REPORT), REPORT Duration %v, client %v", res.Report.Init, res.Report.Duration, res.Elapsed)
		case res.Report.Init != 0:
			t.Errorf("%s: the runtime re-initialised (init %v)", tt.name, res.Report.Init)
		case tt.name == "HTTP API v2" || tt.name == "still warm after all that":
			warm = append(warm, res.Report.Duration)
			t.Logf("warm %s: REPORT Duration %v, client %v", tt.name, res.Report.Duration, res.Elapsed)
		}
	}
	if n := len(emu.Lines("INIT START")); n != 1 {
		t.Errorf("%d INIT START lines, want 1 (one execution environment for every invoke)", n)
	}
	if len(warm) != 2 {
		t.Errorf("warm durations %v", warm)
	}
}
