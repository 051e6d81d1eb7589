package gateway

import (
	"net/http/httptest"
	"testing"
)

// TestTrustedProxies: Build resolves the client from the prefixes the
// config parsed: behind a trusted peer (written in the file as an
// IPv4-mapped IPv6 address, which the parse unmaps) the client is the
// X-Forwarded-For address; behind any other peer it is the peer itself.
func TestTrustedProxies(t *testing.T) {
	b := newBackend(t, nil)
	g, _ := buildFor(t, `
client_ip: {trusted_proxies: ["::ffff:192.0.2.0/120"]}
routes:
  - {path: /a, target: "{T}/a", allow_ips: [203.0.113.7]}
`, b.URL, Deps{}, nil)
	for _, c := range []struct {
		peer string
		want int
	}{
		{"192.0.2.1:1234", 200},    // trusted: the client is 203.0.113.7
		{"198.51.100.1:1234", 403}, // not trusted: the client is the peer
	} {
		r := httptest.NewRequest("GET", "/a", nil)
		r.RemoteAddr = c.peer
		r.Header.Set("X-Forwarded-For", "203.0.113.7")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("peer %s: %d, want %d", c.peer, w.Code, c.want)
		}
	}
}
