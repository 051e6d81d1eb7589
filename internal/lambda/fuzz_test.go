package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode mutates AWS's own sample events: decoding and serving any
// payload must never panic, must fail only with ErrUnknownEvent, and must
// otherwise produce a JSON response document within the size limit.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed events: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `[]`, `null`, `"x"`, `{"source":"aws.events"}`, `{"version":"2.0"}`, `{"version":"1.0"}`,
		`{"httpMethod":"GET","path":"/","headers":null,"multiValueHeaders":null,"body":null}`,
		`{"httpMethod":"GET","path":"/","isBase64Encoded":true,"body":"-_=="}`,
		`{"requestContext":{"elb":{}},"httpMethod":"GET","path":"/a%2F..","headers":{"a":"1"},"multiValueHeaders":{"a":["2"]}}`,
		`{"version":"2.0","rawPath":"/p/x","requestContext":{"stage":"p","http":{"method":"GET","sourceIp":"::ffff:1.2.3.4"}},"cookies":["a=1"]}`,
	} {
		f.Add([]byte(s))
	}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		for k, vs := range r.Header {
			w.Header()[k] = vs
		}
		w.Header().Add("Set-Cookie", "a=1")
		w.Write(b)
	})
	a := New(echo, Options{MaxBody: 1 << 16, MaxResponse: 1 << 17, Logger: slog.New(slog.DiscardHandler)})
	f.Fuzz(func(t *testing.T, payload []byte) {
		if _, err := decode(payload); err != nil && !errors.Is(err, ErrUnknownEvent) {
			t.Fatalf("decode error %v is not ErrUnknownEvent", err)
		}
		out, err := a.Invoke(context.Background(), payload)
		if err != nil {
			if !errors.Is(err, ErrUnknownEvent) {
				t.Fatalf("Invoke error %v is not ErrUnknownEvent", err)
			}
			return
		}
		if len(out) > a.opts.MaxResponse {
			t.Fatalf("response of %d bytes over the limit", len(out))
		}
		var r struct {
			StatusCode *int `json:"statusCode"`
			OK         bool `json:"ok"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("response is not JSON: %v: %.200s", err, out)
		}
		if !r.OK && (r.StatusCode == nil || *r.StatusCode < 100 || *r.StatusCode > 999) {
			t.Fatalf("response without a valid statusCode: %.200s", out)
		}
	})
}
