package cli

import (
	"bufio"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShedMetric: a connection over limits.max_conns_per_ip is refused
// with a 503 and counted in drawbridge_connections_shed_total, whose name,
// help and label are a user contract (docs/hardening.md): the scrape must
// show them byte for byte.
func TestShedMetric(t *testing.T) {
	b, _, _ := slowBackend(t)
	cfg := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, cfg, configText(b.URL, "")+"limits: {max_conns_per_ip: 1}\n")
	p := startServe(t, cfg)

	held, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// The held connection must be accepted before the second one is
	// dialled; a request answered on it proves that.
	if _, err := held.Write([]byte("GET /old HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	held.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: %v %v", resp, err)
	}

	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /old HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("second connection from the same address: %v %v, want 503", resp, err)
	}

	want := "# HELP drawbridge_connections_shed_total Client connections refused at accept (503 and close), by the limit that was reached.\n" +
		"# TYPE drawbridge_connections_shed_total counter\n" +
		`drawbridge_connections_shed_total{reason="max_conns_per_ip"} 1` + "\n"
	var page string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		// The counter is bumped as the 503 is sent: poll, bounded, until
		// the scrape has caught up.
		if _, page = get(t, "http://"+p.admin+"/metrics"); strings.Contains(page, want) {
			return
		}
	}
	t.Errorf("/metrics lacks\n%s\ngot the family as:\n%s", want, family(page, "drawbridge_connections_shed_total"))
}

// family is the lines of one metric family in an exposition page.
func family(page, name string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.Contains(l, name) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
