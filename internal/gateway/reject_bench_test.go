package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/drawbridge/drawbridge/internal/accesslog"
)

// BenchmarkReject: a rejected request end to end as net/http hands it
// over, the access line included: ServeHTTP with finish, the metrics and
// the JSON access line written by the logger serve uses (into
// io.Discard), on a writer whose header map is fresh per request as
// net/http's is. log.rejections is lifted so that every request writes
// its line; BenchmarkRejectFlood has the defaults.
func BenchmarkReject(b *testing.B) {
	benchReject(b, "log: {rejections: {rate: 1000000000000, burst: 1000000000}}\n")
}

// BenchmarkRejectFlood: BenchmarkReject under the default log.rejections,
// one client refused over and over: past the burst, its lines are
// counted, not written (rejectlog.go).
func BenchmarkRejectFlood(b *testing.B) {
	benchReject(b, "")
}

func benchReject(b *testing.B, logYAML string) {
	log := slog.New(accesslog.New(io.Discard)) // as serve builds it
	g, _ := buildFor(b, logYAML+benchYAML, "", Deps{Log: log}, map[string]string{"GH": "It's a Secret to Everybody"})
	cases := []struct {
		name, path, ip string
		code           int
	}{
		{"no_route", "/nope", "140.82.112.5", 403},
		{"policy_denied", "/forward", "8.8.8.8", 403},
		{"key_rejected", "/forward", "140.82.112.5", 403},
		{"throttled", "/slow", "140.82.112.5", 429},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r, err := http.NewRequest("GET", "http://gw"+c.path, nil)
			if err != nil {
				b.Fatal(err)
			}
			r.RequestURI, r.RemoteAddr = c.path, c.ip+":40000"
			r.Header.Set("User-Agent", "wrk")
			w := &discard{h: http.Header{}}
			if g.ServeHTTP(w, r); w.code != c.code {
				b.Fatalf("answered %d, want %d", w.code, c.code)
			}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				g.ServeHTTP(w, r)
			}
		})
	}
}
