package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// syncBuffer is a log sink tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startInProcess runs Start on a config text and stops the server when
// the test ends.
func startInProcess(t *testing.T, text string) (*Server, *syncBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, path, text)
	logs := &syncBuffer{}
	s, err := Start(path, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { s.Shutdown() })
	return s, logs
}

// countingListener accepts on 127.0.0.1:0 and counts connections.
func countingListener(t *testing.T) (port int, n *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port, n
}

func mustGet(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestEgressAcceptance proves the egress guard (docs/hardening.md) end to
// end through serve: with only 127.0.0.1:PORT_A allowed, routes to
// 127.0.0.1:PORT_B and to every other notation of a forbidden address get
// 502 Bad Gateway, outcome egress_denied, reason and address in the log
// only, and the listener on PORT_B sees no connection.
func TestEgressAcceptance(t *testing.T) {
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "allowed") }))
	defer allowed.Close()
	a := strconv.Itoa(allowed.Listener.Addr().(*net.TCPAddr).Port)
	portB, hitsB := countingListener(t)
	b := strconv.Itoa(portB)

	denied := map[string]string{ // route path -> target
		"/b":           "http://127.0.0.1:" + b + "/",
		"/mapped-b":    "http://[::ffff:127.0.0.1]:" + b + "/",
		"/compatible":  "http://[::127.0.0.1]:" + a + "/",
		"/nat64":       "http://[64:ff9b::7f00:1]:" + a + "/",
		"/6to4":        "http://[2002:7f00:1::1]:" + a + "/",
		"/loopback2":   "http://127.0.0.2:" + a + "/",
		"/ipv6-lo":     "http://[::1]:" + a + "/",
		"/unspecified": "http://0.0.0.0:" + a + "/",
	}
	text := "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nstate: {driver: memory}\negress:\n  allow: [\"127.0.0.1:" + a + "\"]\nroutes:\n" +
		"  - path: /a\n    target: http://127.0.0.1:" + a + "/\n" +
		"  - path: /a-mapped\n    target: http://[::ffff:127.0.0.1]:" + a + "/\n"
	for path, target := range denied {
		text += "  - path: " + path + "\n    target: " + target + "\n"
	}
	s, logs := startInProcess(t, text)
	base := "http://" + s.Addr()

	for _, path := range []string{"/a", "/a-mapped"} {
		if code, _, body := mustGet(t, base+path); code != 200 || body != "allowed" {
			t.Errorf("%s (allowed) = %d %q", path, code, body)
		}
	}
	for path, target := range denied {
		code, h, body := mustGet(t, base+path)
		if code != 502 || body != `{"message":"Bad Gateway"}` || h.Get("Content-Type") != "application/json" {
			t.Errorf("%s -> %s = %d %q, want 502 Bad Gateway", path, target, code, body)
		}
		if strings.Contains(body, "egress") || strings.Contains(body, "127.") {
			t.Errorf("%s: the reason leaked to the client: %q", path, body)
		}
	}
	if n := hitsB.Load(); n != 0 {
		t.Errorf("listener on PORT_B saw %d connections", n)
	}
	log := logs.String()
	for _, want := range []string{`"outcome":"egress_denied"`, `egress denied: 127.0.0.1:` + b, `no egress rule allows this port`,
		`egress denied: [64:ff9b::7f00:1]:` + a + `: no egress rule covers the address`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	_, _, page := mustGet(t, "http://"+s.AdminAddr()+"/metrics")
	if want := `drawbridge_requests_total{method="GET",outcome="egress_denied",route="/b"} 1`; !strings.Contains(page, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// TestEgressLegacyNotations: targets written as 2130706433, 0x7f000001,
// 017700000001 or 127.1 are config errors with the route's line, with and
// without egress.allow: which address they mean depends on the resolver.
func TestEgressLegacyNotations(t *testing.T) {
	for _, host := range []string{"2130706433", "0x7f000001", "017700000001", "127.1", "0x7f.1"} {
		for _, allow := range []string{"", "egress: {allow: [\"0.0.0.0/0:80\", \"127.0.0.0/8:80\"]}\n"} {
			path := filepath.Join(t.TempDir(), "d.yaml")
			writeConfig(t, path, allow+"routes:\n  - path: /x\n    target: http://"+host+"/\n")
			var out, errs bytes.Buffer
			if code := Main(context.Background(), []string{"check", "-c", path}, &out, &errs); code != 1 {
				t.Errorf("check with target %s (%q) = %d, want 1", host, allow, code)
			}
			line := 3
			if allow == "" {
				line = 2
			}
			if want := path + ":" + strconv.Itoa(line) + ": route /x: "; !strings.Contains(errs.String(), want) || !strings.Contains(errs.String(), "legacy notation") {
				t.Errorf("check %s printed %q, want %q... legacy notation", host, errs.String(), want)
			}
		}
	}
}

// TestEgressMetadata: 169.254.169.254 is denied even under 0.0.0.0/0; a
// route may opt in by naming the exact address, and check then warns
// loudly and shows it in the table.
func TestEgressMetadata(t *testing.T) {
	text := "listen: 127.0.0.1:0\nadmin: 'off'\nstate: {driver: memory}\negress:\n  allow: [\"0.0.0.0/0:80\"]\nroutes:\n" +
		"  - path: /imds\n    target: http://169.254.169.254/latest/meta-data/\n" +
		"  - path: /imds-mapped\n    target: http://[::ffff:169.254.169.254]/latest/meta-data/\n" +
		"  - path: /ecs\n    target: http://169.254.170.2/v2/credentials\n"
	s, logs := startInProcess(t, text)
	for _, path := range []string{"/imds", "/imds-mapped", "/ecs"} {
		if code, _, body := mustGet(t, "http://"+s.Addr()+path); code != 502 || body != `{"message":"Bad Gateway"}` {
			t.Errorf("%s = %d %q, want 502", path, code, body)
		}
	}
	if !strings.Contains(logs.String(), "egress denied: 169.254.169.254:80: cloud metadata or credential endpoint") {
		t.Errorf("log lacks the metadata denial:\n%s", logs.String())
	}

	dir := t.TempDir()
	check := func(text string) (int, string, string) {
		path := filepath.Join(dir, "c.yaml")
		writeConfig(t, path, text)
		var out, errs bytes.Buffer
		code := Main(context.Background(), []string{"check", "-c", path}, &out, &errs)
		return code, out.String(), errs.String()
	}
	code, out, errs := check(text)
	if code != 0 || !strings.Contains(out, "deny    169.254.169.254") || !strings.Contains(out, "allow   0.0.0.0/0") ||
		!strings.Contains(out, "except metadata 169.254.169.254") {
		t.Errorf("check = %d, table:\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, "WARNING: egress: rule 0.0.0.0/0:80 allows every IPv4 address") {
		t.Errorf("no warning for 0.0.0.0/0: %s", errs)
	}

	optIn := "routes:\n  - path: /imds\n    target: http://169.254.169.254/latest/meta-data/\n    allow_metadata: true\n"
	code, out, errs = check(optIn)
	if code != 0 || !strings.Contains(out, "allow*  169.254.169.254") ||
		!strings.Contains(errs, "WARNING: egress: cloud metadata endpoint 169.254.169.254 (AWS IMDS") {
		t.Errorf("opt-in: check = %d\n%s%s", code, out, errs)
	}
	code, _, errs = check("routes:\n  - path: /x\n    target: http://10.0.0.1/\n    allow_metadata: true\n")
	if code != 1 || !strings.Contains(errs, ":2: route /x: allow_metadata needs a target naming a metadata endpoint by IP address") {
		t.Errorf("allow_metadata on a non-metadata target: check = %d %s", code, errs)
	}
}
