package lambda

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkInvoke is one event through the adapter, decode to encode,
// with a handler that answers at once: the Lambda mode's own cost per
// invocation, per event kind.
func BenchmarkInvoke(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Set-Cookie", "a=1")
		w.Write([]byte(`{"ok":true}`))
	})
	a := New(h, Options{})
	for _, name := range []string{
		"apigw-request.json",
		"apigw-v2-request-no-authorizer.json",
		"lambda-urls-request.json",
		"alb-lambda-target-request-multivalue-headers.json",
	} {
		payload, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name[:len(name)-len(".json")], func(b *testing.B) {
			if _, err := a.Invoke(context.Background(), payload); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := a.Invoke(context.Background(), payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
