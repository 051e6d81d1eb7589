package gateway

import (
	"bytes"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/drawbridge/drawbridge/internal/accesslog"
)

// TestAccessLineSameBothWays: serve's logger (accesslog's fast path) and
// any other slog JSON handler get the same access lines, field for field
// and in the same order, for forwarded requests and every kind of
// rejection; only the per-request values (time, id, durations) differ.
func TestAccessLineSameBothWays(t *testing.T) {
	b := newBackend(t, nil)
	run := func(h func(io.Writer) slog.Handler) string {
		var buf bytes.Buffer
		var mu sync.Mutex
		log := slog.New(h(&lockedWriter{w: &buf, mu: &mu}))
		clk := newClock("2026-12-01T12:00:00Z")
		g, _ := buildFor(t, guardYAML, b.URL, Deps{Log: log, Now: clk.Now}, nil)
		for range 4 {
			send(g, "GET", "/a", "10.1.1.1", withKey(keyA), "")
		}
		send(g, "GET", "/a", "10.1.1.1", withKey(keyB), "")
		send(g, "GET", "/open", "8.8.8.8", nil, "")
		send(g, "GET", "/nope/\"<x>\"%ff", "10.1.1.1", nil, "")
		gb, _ := buildFor(t, benchYAML, "", Deps{Log: log}, map[string]string{"GH": "s"})
		send(gb, "GET", "/forward", "8.8.8.8", withKey(keyA), "")
		send(gb, "GET", "/slow", "140.82.112.5", nil, "")
		send(gb, "POST", "/hook", "140.82.112.5", nil, "{}")
		send(gb, "GET", "/forward", "140.82.112.5", withKey(keyA), "") // target refuses: 502
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
	fast := run(func(w io.Writer) slog.Handler { return accesslog.New(w) })
	slow := run(func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) })
	mask := regexp.MustCompile(`"(time|request_id)":"[^"]*"|"(duration_ms|upstream_ms)":[0-9.e-]+`)
	fast, slow = mask.ReplaceAllString(fast, `"$1$2":_`), mask.ReplaceAllString(slow, `"$1$2":_`)
	if fast != slow {
		t.Errorf("access lines differ:\nfast:\n%s\nslog:\n%s", fast, slow)
	}
	for _, want := range []string{`"outcome":"forwarded"`, `"outcome":"policy_denied"`, `"outcome":"throttled"`,
		`"outcome":"signature_rejected"`, `"outcome":"upstream_error"`, `"rule":"resource_policy: `, `"path":"/nope/%22%3Cx%3E%22%FF"`} {
		if !strings.Contains(fast, want) {
			t.Errorf("lines lack %s:\n%s", want, fast)
		}
	}
	if n := strings.Count(fast, "\n"); n != 11 {
		t.Errorf("%d lines, want 11:\n%s", n, fast)
	}
}

// TestRequestIDShape: request ids are version-4 UUIDs, as API Gateway's,
// and differ.
func TestRequestIDShape(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if !shape.MatchString(id) || seen[id] {
			t.Fatalf("id %q: not a fresh v4 UUID", id)
		}
		seen[id] = true
	}
}
