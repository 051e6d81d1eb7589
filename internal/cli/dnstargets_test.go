package cli

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
)

// testDNS is a DNS server on a loopback UDP port: it answers A queries
// from a map the test changes, NXDOMAIN for names not in it, and no
// records (NODATA) for other types of a known name. drawbridge reaches it
// through Go's own resolver (targetResolver), so what is tested is the
// real lookup, not a stub.
type testDNS struct {
	pc net.PacketConn

	mu      sync.Mutex
	a       map[string]netip.Addr // name without the final dot
	queries map[string]int        // A queries per name
}

func startDNS(t *testing.T, a map[string]netip.Addr) *testDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{pc: pc, a: a, queries: map[string]int{}}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := d.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return d
}

func (d *testDNS) set(name string, a netip.Addr) {
	d.mu.Lock()
	d.a[name] = a
	d.mu.Unlock()
}

func (d *testDNS) asked(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[name]
}

// answer builds the response to one query (RFC 1035 §4.1), or nil when
// the packet is not one.
func (d *testDNS) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	var labels []string
	end := 12
	for end < len(q) && q[end] != 0 {
		l := int(q[end])
		if l > 63 || end+1+l > len(q) {
			return nil
		}
		labels = append(labels, strings.ToLower(string(q[end+1:end+1+l])))
		end += 1 + l
	}
	end += 5 // root label, type, class
	if end > len(q) {
		return nil
	}
	name := strings.Join(labels, ".")
	qtype := binary.BigEndian.Uint16(q[end-4:])
	d.mu.Lock()
	a, ok := d.a[name]
	if qtype == 1 {
		d.queries[name]++
	}
	d.mu.Unlock()
	resp := append([]byte{}, q[:end]...)
	resp[2], resp[3] = 0x81, 0x80 // response, recursion desired and available, NOERROR
	binary.BigEndian.PutUint16(resp[4:], 1)
	binary.BigEndian.PutUint16(resp[6:], 0)
	binary.BigEndian.PutUint16(resp[8:], 0)
	binary.BigEndian.PutUint16(resp[10:], 0)
	switch {
	case !ok:
		resp[3] = 0x83 // NXDOMAIN
	case qtype == 1:
		binary.BigEndian.PutUint16(resp[6:], 1)
		four := a.As4()
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4) // name at 12, A, IN, TTL 60, 4 bytes
		resp = append(resp, four[:]...)
	}
	return resp
}

// resolver is a Go resolver that asks only d.
func (d *testDNS) resolver() *net.Resolver {
	addr := d.pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", addr)
	}}
}

// useDNS points drawbridge's target name lookups at d for this test.
func useDNS(t *testing.T, d *testDNS) {
	t.Helper()
	targetResolver = d.resolver()
	t.Cleanup(func() { targetResolver = nil })
}

// namedBackend serves body on addr, closing each connection after its
// answer so that every forward dials (and so resolves) again.
func namedBackend(t *testing.T, addr, body string) *http.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv
}

// twoLoopbackBackends listens on 127.0.0.1:P and 127.0.0.2:P, one port for
// both, as a load balancer's addresses share the target's port.
func twoLoopbackBackends(t *testing.T) (port int, first, second *http.Server) {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln2, err := net.Listen("tcp", "127.0.0.2:"+strconv.Itoa(port))
		ln.Close()
		if err != nil {
			continue // taken on 127.0.0.2: another port
		}
		ln2.Close()
		p := strconv.Itoa(port)
		return port, namedBackend(t, "127.0.0.1:"+p, "first"), namedBackend(t, "127.0.0.2:"+p, "second")
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return
}

// TestHostNameTargetsFollowDNS: a target named by host name is resolved
// when dialed, through the name cache, without a reload: the name moving
// to another address (a load balancer rotating) is followed once the
// cached answer expires; a name that does not resolve is a check warning
// (exit 0) and a 502 upstream_error from serve; a name resolving to a
// metadata address is denied even under a rule that covers it. The
// backends are on loopback, which passes only a rule naming a loopback
// prefix: egress.allow names 127.0.0.0/8 on the backends' port.
func TestHostNameTargetsFollowDNS(t *testing.T) {
	port, first, _ := twoLoopbackBackends(t)
	p := strconv.Itoa(port)
	dns := startDNS(t, map[string]netip.Addr{
		"backend.test": netip.MustParseAddr("127.0.0.1"),
		"imds.test":    netip.MustParseAddr("169.254.169.254"),
	})
	useDNS(t, dns)
	text := "listen: 127.0.0.1:0\nadmin: 'off'\nstate: {driver: memory}\n" +
		"egress:\n  allow: [\"127.0.0.0/8:" + p + "\", \"169.254.0.0/16:" + p + "\"]\nroutes:\n" +
		"  - path: /app\n    target: http://backend.test:" + p + "/\n" +
		"  - path: /gone\n    target: http://missing.test:" + p + "/\n" +
		"  - path: /imds\n    target: http://imds.test:" + p + "/latest/meta-data/\n"
	path := filepath.Join(t.TempDir(), "drawbridge.yaml")
	writeConfig(t, path, text)

	code, out, errs := runMain(t, "check", "-c", path)
	if code != 0 || !strings.Contains(errs, path+`:9: WARNING: route /gone: target host "missing.test" does not resolve from here`) ||
		!strings.Contains(errs, "serve answers 502 on this route until it does") {
		t.Fatalf("check = %d, want 0 with a warning for missing.test:\n%s%s", code, out, errs)
	}
	if strings.Contains(errs, "backend.test") || strings.Contains(errs, "imds.test") {
		t.Errorf("check warned about a name that resolves:\n%s", errs)
	}

	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{}
	clock.Set("2026-12-01T12:00:00Z")
	advance := func(d time.Duration) { clock.Set(clock.Now().Add(d).Format(time.RFC3339)) }
	logs := &syncBuffer{}
	s, err := start(cfg, slog.New(slog.NewJSONHandler(logs, nil)), clock.Now)
	if err != nil {
		t.Fatalf("serve refused to start: %v", err)
	}
	t.Cleanup(func() { s.Shutdown() })
	base := "http://" + s.Addr()

	before := dns.asked("backend.test") // check's own lookup
	for i := range 3 {
		if code, _, body := mustGet(t, base+"/app"); code != 200 || body != "first" {
			t.Fatalf("request %d to backend.test = %d %q", i, code, body)
		}
	}
	// Each forward dialed anew (the backend closes), one lookup served all.
	if n := dns.asked("backend.test") - before; n != 1 {
		t.Errorf("backend.test looked up %d times for 3 dials within the cache time, want 1", n)
	}

	// The load balancer rotates: the name now answers 127.0.0.2 and the
	// old address stops serving. No reload.
	dns.set("backend.test", netip.MustParseAddr("127.0.0.2"))
	first.Close()
	advance(egress.NameTTL)
	for i := range 3 {
		if code, _, body := mustGet(t, base+"/app"); code != 200 || body != "second" {
			t.Fatalf("request %d after the rotation = %d %q, want the new address's answer", i, code, body)
		}
	}

	if code, _, body := mustGet(t, base+"/gone"); code != 502 || body != `{"message":"Bad Gateway"}` {
		t.Errorf("/gone (name does not resolve) = %d %q, want 502", code, body)
	}
	if code, _, body := mustGet(t, base+"/imds"); code != 502 || body != `{"message":"Bad Gateway"}` {
		t.Errorf("/imds (name resolves to 169.254.169.254) = %d %q, want 502", code, body)
	}
	log := logs.String()
	for _, want := range []string{
		`"outcome":"upstream_error"`, `lookup missing.test`,
		`"outcome":"egress_denied"`, `egress denied: 169.254.169.254:` + p + `: cloud metadata or credential endpoint`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	// The name resolving later is picked up without a reload either, once
	// the failed answer expires.
	dns.set("missing.test", netip.MustParseAddr("127.0.0.2"))
	advance(egress.NameFailTTL)
	if code, _, body := mustGet(t, base+"/gone"); code != 200 || body != "second" {
		t.Errorf("/gone once the name resolves = %d %q", code, body)
	}
}

// TestBlogTargetNameUnresolvedChecks: the blog's own serverless.yml
// (target http://myurl:80, a name that resolves nowhere here) passes
// check with a warning, where it used to fail.
func TestBlogTargetNameUnresolvedChecks(t *testing.T) {
	useDNS(t, startDNS(t, map[string]netip.Addr{}))
	t.Setenv("DRAWBRIDGE_KEY_SECRET", blogKey)
	code, out, errs := runMain(t, "check", "-c", blogFile)
	if code != 0 || !strings.Contains(errs, `WARNING: route`) || !strings.Contains(errs, `target host "myurl" does not resolve from here`) {
		t.Fatalf("check blog = %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "myurl (name)") {
		t.Errorf("table does not show the followed name:\n%s", out)
	}
}
