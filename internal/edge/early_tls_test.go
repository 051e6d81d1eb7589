package edge

import (
	"bufio"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// TestEarlyOverTLS: on HTTP/1.x over TLS, Early is asked as on plain
// HTTP, sees the request's TLS state as net/http would give it, and its
// answer goes out encrypted on the same connection, in turn with served
// ones. After a served request the connection skips early: the last
// request is served though Early would have answered it.
func TestEarlyOverTLS(t *testing.T) {
	var asked atomic.Int32
	early := func(w http.ResponseWriter, r *http.Request) bool {
		asked.Add(1)
		if r.URL.Path != "/early" {
			return false
		}
		if r.TLS == nil || !r.TLS.HandshakeComplete {
			t.Error("early request without its TLS state")
		}
		w.Header()["Content-Type"] = []string{"application/json"}
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"message":"Forbidden"}`)
		return true
	}
	seen := make(chan seenRequest, 10)
	e := startTLSEdge(t, 0, recordingHandler(seen), early)

	c := e.dial(t, "http/1.1")
	br := bufio.NewReader(c)
	for i, path := range []string{"/early", "/early", "/served", "/early"} {
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case path == "/early" && i < 2:
			if resp.StatusCode != 403 || string(body) != `{"message":"Forbidden"}` {
				t.Errorf("request %d: %d %q, want the early 403", i, resp.StatusCode, body)
			}
		default:
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Errorf("request %d: %d %q, want served", i, resp.StatusCode, body)
			}
			if s := <-seen; !s.tls {
				t.Error("served request lost its TLS state")
			}
		}
	}
	if n := asked.Load(); n != 3 {
		t.Errorf("Early asked %d times, want 3", n)
	}
}
