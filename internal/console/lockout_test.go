package console

import (
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSignInLockout: a client network that presents ten wrong tokens
// (bearer or login form) is answered 429 with Retry-After, right token or
// not, and is not logged again; another network, an IPv6 address outside
// the /64, and a signed-in session are unaffected; after lockoutEvery one
// more try is allowed. The log has one line per refused try and one per
// lock-out, and never the token.
func TestSignInLockout(t *testing.T) {
	f := newFixture(t, authConfig())
	api := func(addr, token string) *http.Response {
		return f.do(t, "GET", "/deliveries", nil, "Authorization", "Bearer "+token, "RemoteAddr", addr)
	}
	// A session signed in before the lock-out.
	resp := f.do(t, "POST", loginPath, url.Values{"token": {operatorToken}}, "RemoteAddr", "192.0.2.1:1000")
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	cookie := resp.Cookies()[0]

	for i := range lockoutBurst {
		addr := "192.0.2.1:1000"
		if i%2 == 1 {
			addr = "192.0.2.1:2000" // another port: the same network
		}
		if i == 4 {
			if resp := f.do(t, "POST", loginPath, url.Values{"token": {"guess-4"}}, "RemoteAddr", addr); resp.StatusCode != 401 {
				t.Fatalf("wrong token %d at the form: %d", i, resp.StatusCode)
			}
			continue
		}
		if resp := api(addr, "guess-"+string(rune('a'+i))); resp.StatusCode != 401 {
			t.Fatalf("wrong token %d: %d", i, resp.StatusCode)
		}
	}
	resp = api("192.0.2.1:3000", operatorToken)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("the right token from a locked-out network: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp = f.do(t, "POST", loginPath, url.Values{"token": {operatorToken}}, "RemoteAddr", "192.0.2.1:3000")
	if body := text(t, resp); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "try again in 30 s") {
		t.Fatalf("the login form from a locked-out network: %d\n%s", resp.StatusCode, body)
	}
	if r := f.do(t, "GET", "/console/deliveries", nil, "Cookie", cookie.Name+"="+cookie.Value, "RemoteAddr", "192.0.2.1:4000"); r.StatusCode != 200 {
		t.Fatalf("a signed-in session from the locked-out network: %d", r.StatusCode)
	}
	if resp := api("198.51.100.7:1000", operatorToken); resp.StatusCode != 200 {
		t.Fatalf("another network: %d", resp.StatusCode)
	}

	// IPv6: the /64 is one network.
	for range lockoutBurst {
		api("[2001:db8::1]:1000", "guess")
	}
	if resp := api("[2001:db8::2]:1000", operatorToken); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the same /64: %d", resp.StatusCode)
	}
	if resp := api("[2001:db8:0:1::1]:1000", operatorToken); resp.StatusCode != 200 {
		t.Fatalf("another /64: %d", resp.StatusCode)
	}

	// Half the wait: still locked, with the rest as Retry-After.
	f.now = f.now.Add(lockoutEvery / 2)
	if resp := api("192.0.2.1:1000", operatorToken); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "15" {
		t.Fatalf("half-way: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The rest: one try, which counts again when wrong.
	f.now = f.now.Add(lockoutEvery / 2)
	if resp := api("192.0.2.1:1000", "guess-again"); resp.StatusCode != 401 {
		t.Fatalf("the try after the wait: %d", resp.StatusCode)
	}
	if resp := api("192.0.2.1:1000", operatorToken); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after that wrong try: %d", resp.StatusCode)
	}
	f.now = f.now.Add(lockoutEvery)
	if resp := api("192.0.2.1:1000", operatorToken); resp.StatusCode != 200 {
		t.Fatalf("the right token once the wait is over: %d", resp.StatusCode)
	}

	logs := f.logs.String()
	// 192.0.2.1: 9 refused + 1 locked, then 1 locked again; 2001:db8::/64:
	// 9 refused + 1 locked.
	if n, m := strings.Count(logs, "sign-in refused"), strings.Count(logs, "sign-in locked out"); n != 18 || m != 3 {
		t.Errorf("log lines: %d refused, %d locked out; want 18 and 3\n%s", n, m, logs)
	}
	if strings.Contains(logs, operatorToken) || strings.Contains(logs, "guess") {
		t.Errorf("a token in the log:\n%s", logs)
	}
}

// TestLockoutMemoryBounded: at most lockoutClients networks are
// remembered; making room forgets those that have recovered, not one
// still being watched.
func TestLockoutMemoryBounded(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := newLockout(func() time.Time { return now }, slog.New(slog.DiscardHandler))
	for range lockoutBurst {
		l.fail("203.0.113.9:1")
	}
	for i := range lockoutClients - 1 {
		l.fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String() + ":1")
	}
	if len(l.nets) != lockoutClients || l.wait("203.0.113.9:1") == 0 {
		t.Fatalf("%d networks, locked %v", len(l.nets), l.wait("203.0.113.9:1"))
	}
	now = now.Add(lockoutEvery) // the others have recovered; 203.0.113.9 may try once
	l.fail("198.51.100.1:1")
	if len(l.nets) != 2 || l.nets[network("203.0.113.9:1")] == nil {
		t.Fatalf("after making room: %d networks, watched one kept: %v", len(l.nets), l.nets[network("203.0.113.9:1")] != nil)
	}
}
