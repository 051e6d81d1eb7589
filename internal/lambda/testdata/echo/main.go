// Command echo is a tiny Lambda bootstrap for the RIE tests: lambda.Start
// around a handler that reports what request it received, so a test can
// check the adapter end to end under the real Runtime API.
package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/drawbridge/drawbridge/internal/lambda"
)

type echo struct {
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	Query      string      `json:"query"`
	Host       string      `json:"host"`
	RemoteAddr string      `json:"remoteAddr"`
	Kind       lambda.Kind `json:"kind"`
	Header     http.Header `json:"header"`
	Body       string      `json:"body"`
}

func main() {
	lambda.Start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("echo: asked to panic")
		case "/big": // over Lambda's 6 MB response limit
			w.Write([]byte(strings.Repeat("x", 7<<20)))
			return
		}
		b, _ := io.ReadAll(r.Body)
		src, _ := lambda.SourceFromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(echo{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.RemoteAddr, src.Kind, r.Header, string(b)})
	}), lambda.Options{OnSchedule: func(context.Context) error { return nil }})
}
