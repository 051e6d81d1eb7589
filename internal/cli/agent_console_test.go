package cli

import (
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestConsoleAgentsPage: the console's agents page reads the real tunnel
// registry: a connected agent is listed with its tunnels and the request
// sent through it, a configured one that never connected with 0, and
// after the agent stops, 0 again. No token or digest is ever shown.
func TestConsoleAgentsPage(t *testing.T) {
	b := newEchoBackend(t)
	ca := newCA(t, "edge-ca")
	dir := t.TempDir()
	c, k := ca.leaf(t, true)
	writeFile(t, dir, "cert.pem", c)
	writeFile(t, dir, "key.pem", k)
	e := &agentEdge{dir: dir, ca: writeFile(t, dir, "ca.pem", ca.pem), log: &syncBuffer{}}
	yaml := strings.Replace(edgeYAML(agentToken, "  - {path: /via/*, target: '"+b.srv.URL+"/', via: ci, timeout: 10s}\n"),
		"admin: 'off'", "admin: 127.0.0.1:0", 1)
	e.path = writeFile(t, dir, "drawbridge.yaml", []byte(yaml))
	s, err := Start(e.path, slog.New(slog.NewJSONHandler(e.log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	e.s = s

	page := func() string {
		t.Helper()
		resp, err := http.Get("http://" + s.AdminAddr() + "/console/agents")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("agents page: %d\n%s", resp.StatusCode, body)
		}
		for _, secret := range []string{agentToken, otherToken, sha(agentToken), sha(otherToken)} {
			if strings.Contains(string(body), secret) {
				t.Fatalf("the agents page shows a token or its digest %q", secret)
			}
		}
		return string(body)
	}
	// The agents table's cells for name: tunnels, in flight, requests, sent.
	row := func(p, name string) (tunnels, requests int, sent string) {
		t.Helper()
		m := regexp.MustCompile(`<th scope="row">` + name + `</th><td data-label="Tunnels" class="tunnels">(\d+)</td><td data-label="In flight">\d+</td><td data-label="Requests">(\d+)</td><td data-label="Sent to it">([^<]+)</td>`).FindStringSubmatch(p)
		if m == nil {
			t.Fatalf("no row for %s on the agents page:\n%s", name, p)
		}
		tunnels, _ = strconv.Atoi(m[1])
		requests, _ = strconv.Atoi(m[2])
		return tunnels, requests, m[3]
	}

	p := page()
	if n, _, _ := row(p, "ci"); n != 0 || strings.Contains(p, "No agents configured") {
		t.Fatalf("before any agent: ci has %d tunnels", n)
	}
	if n, _, _ := row(p, "billing"); n != 0 {
		t.Fatalf("billing has %d tunnels", n)
	}

	_, _, stop := runTestAgent(t, e, "ci", agentToken, hostPortOf(b.srv.URL))
	waitUntil(t, "the agents page to list ci's tunnels", func() bool { n, _, _ := row(page(), "ci"); return n >= 1 })
	resp, err := http.Post(e.url("/via/x"), "text/plain", strings.NewReader("hello agent"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("through the agent: %d", resp.StatusCode)
	}
	p = page()
	if n, reqs, sent := row(p, "ci"); n < 1 || reqs != 1 || sent != "11 B" {
		t.Errorf("after one request: ci has %d tunnels, %d requests, %s sent", n, reqs, sent)
	}
	if !strings.Contains(p, `<td data-label="Remote address">127.0.0.1:`) || !strings.Contains(p, "<code>/via/*</code>") {
		t.Errorf("the tunnels table lacks the agent's address or ci's route:\n%s", p)
	}
	if n, _, _ := row(p, "billing"); n != 0 {
		t.Errorf("billing has %d tunnels", n)
	}

	stop()
	waitUntil(t, "the agents page to show ci with no tunnel", func() bool { n, _, _ := row(page(), "ci"); return n == 0 })
	p = page()
	if _, reqs, _ := row(p, "ci"); reqs != 1 || !strings.Contains(p, `id="tunnels-none"`) {
		t.Errorf("after the agent stopped: %d requests kept, tunnels table:\n%s", reqs, p)
	}
}
