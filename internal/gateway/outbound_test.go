package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	bbolt "go.etcd.io/bbolt"
)

// outboundYAML has a sync and an async twin of an exact and a prefix
// route: {S} is the sync backend, {A} the async one, with the same paths.
const outboundYAML = `
server: {forwarder: FWD}
routes:
  - path: /s/*
    target: {S}/t/
  - path: /a/*
    target: {A}/t/
    delivery: {mode: async}
  - path: /se
    target: {S}/exact/x
  - path: /ae
    target: {A}/exact/x
    delivery: {mode: async}
`

// asyncOnlyHeaders are the headers an async delivery adds to what a sync
// route's target receives: its delivery id.
var asyncOnlyHeaders = []string{"X-Drawbridge-Delivery"}

// outboundRow is one client request, as raw header lines so that every
// spelling reaches the gateway as written.
type outboundRow struct {
	name   string
	method string
	route  string // "*" (prefix: /s or /a plus rest) or "e" (exact)
	rest   string // request-target after the route, query included
	header string // raw header lines, each ending in \r\n
	body   string
}

var outboundRows = []outboundRow{
	{name: "plain GET, no User-Agent", method: "GET", route: "*", rest: "/x"},
	{name: "client User-Agent", method: "GET", route: "*", rest: "/x", header: "User-Agent: curl/8.5\r\n"},
	{name: "hop-by-hop and Connection-named", method: "GET", route: "*", rest: "/x", header: "Connection: X-Foo, keep-alive, X-Request-Id\r\n" +
		"X-Foo: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nTrailer: X-T\r\nX-Keep: yes\r\n"},
	{name: "h2c upgrade", method: "GET", route: "*", rest: "/x", header: "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"},
	{name: "Expect 100-continue", method: "POST", route: "*", rest: "/x", header: "Expect: 100-continue\r\nContent-Type: text/plain\r\n", body: "hello"},
	{name: "Te: trailers", method: "GET", route: "*", rest: "/x", header: "TE: gzip;q=0.5, trailers\r\n"},
	{name: "Te without trailers", method: "GET", route: "*", rest: "/x", header: "Te: gzip\r\n"},
	{name: "protected names and spellings", method: "POST", route: "*", rest: "/x", body: "{}", header: "X-Api-Key: k\r\nX_Api_Key: k2\r\nx-api-key2: kept\r\n" +
		"X-Forwarded-For: 6.6.6.6\r\nX_Forwarded_Proto: https\r\nX-Forwarded-Port: 1\r\nForwarded: for=1.2.3.4\r\nX-Real-IP: 1.1.1.1\r\n" +
		"X-Request-Id: mine\r\nx_request_id: mine\r\n"},
	{name: "framing underscore spellings", method: "POST", route: "*", rest: "/x", body: "abc",
		header: "Transfer_Encoding: chunked\r\nContent_Length: 0\r\ntransfer_encoding: gzip\r\nCONTENT_LENGTH: 9\r\n"},
	{name: "client X-Drawbridge-*", method: "POST", route: "*", rest: "/x", body: "{}",
		header: "X-Drawbridge-Delivery: forged\r\nX_Drawbridge_Delivery: forged\r\nx-drawbridge-route: forged\r\nX-Drawbridge: not ours\r\n"},
	{name: "encoded rest", method: "GET", route: "*", rest: "/a%20b/%C3%A9+%41/c"},
	{name: "raw query, reordered and odd escapes", method: "GET", route: "*", rest: "/q?b=2;a=1&a=3&%zz&q=a+b%20c&&e="},
	{name: "empty query", method: "GET", route: "*", rest: "/q?"},
	{name: "exact route with query", method: "DELETE", route: "e", rest: "?id=7", header: "Idempotency-Key: k-7\r\n"},
	{name: "PUT empty body", method: "PUT", route: "e", rest: ""},
	{name: "PATCH binary body", method: "PATCH", route: "*", rest: "/bin", body: "\x00\x01\xfe\xff\r\n", header: "Content-Type: application/octet-stream\r\n"},
	{name: "multi-valued and repeated", method: "GET", route: "*", rest: "/m", header: "X-Multi: 1\r\nX-Multi: 2\r\nAccept: a/b, c/d\r\n"},
}

// sendRaw writes a request on its own connection and returns the final
// answer (after any 100 Continue) and its body.
func sendRaw(t *testing.T, addr, request string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, request)
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading response: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusContinue {
			return resp, body
		}
	}
}

// TestSyncAsyncReceiveTheSame is the differential test of what a target
// receives: every row goes through a sync route and its async twin (the
// async one delivered by the worker), to recording backends, on both
// sync forwarders; the two backends must see the same method,
// request-target, header and body, except the headers the async path
// adds (asyncOnlyHeaders) and X-Request-Id, each request's own id. No row
// may bring a client's protected header to either backend.
func TestSyncAsyncReceiveTheSame(t *testing.T) {
	for _, fwd := range []string{"lean", "reverseproxy"} {
		t.Run(fwd, func(t *testing.T) { testSyncAsyncReceiveTheSame(t, fwd) })
	}
}

func testSyncAsyncReceiveTheSame(t *testing.T, fwd string) {
	syncB, asyncB := newBackend(t, nil), newBackend(t, nil)
	yaml := strings.NewReplacer("FWD", fwd, "{S}", syncB.URL, "{A}", asyncB.URL).Replace(outboundYAML)
	cfg, err := config.Parse("outbound.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "state.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q, err := delivery.Open(db, delivery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := delivery.NewWorker(q, delivery.WorkerOptions{})
	t.Cleanup(w.Close)
	st := memory.New()
	t.Cleanup(func() { st.Close() })
	g, err := Build(cfg, Deps{Metrics: metrics.New(), Queue: q, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	addr := srv.Listener.Addr().String()

	for _, row := range outboundRows {
		t.Run(row.name, func(t *testing.T) {
			send := func(prefix string) *http.Response {
				target := "/" + prefix + row.rest
				if row.route == "e" {
					target = "/" + prefix + "e" + row.rest
				}
				req := row.method + " " + target + " HTTP/1.1\r\nHost: public.example\r\n" + row.header
				if row.body != "" || row.method == "POST" || row.method == "PUT" || row.method == "PATCH" {
					req += "Content-Length: " + strconv.Itoa(len(row.body)) + "\r\n"
				}
				resp, body := sendRaw(t, addr, req+"\r\n"+row.body)
				if want := map[string]int{"s": 200, "a": 202}[prefix]; resp.StatusCode != want {
					t.Fatalf("%s: answer %d %s, want %d", target, resp.StatusCode, body, want)
				}
				if prefix == "a" {
					var v struct{ ID string }
					json.Unmarshal(body, &v)
					resp.Header.Set("X-Test-Delivery", v.ID)
				}
				return resp
			}
			syncResp, asyncResp := send("s"), send("a")
			if n, err := w.RunOnce(context.Background()); n != 1 || err != nil {
				t.Fatalf("worker attempts = %d (%v), want 1", n, err)
			}
			s, a := syncB.last(t), asyncB.last(t)

			// What differs by design: each request's id, and the async
			// path's own headers.
			if got := s.Header.Get("X-Request-Id"); got != syncResp.Header.Get("x-amzn-RequestId") {
				t.Errorf("sync X-Request-Id %q, want the request's id", got)
			}
			if got := a.Header.Get("X-Request-Id"); got != asyncResp.Header.Get("x-amzn-RequestId") {
				t.Errorf("async X-Request-Id %q, want the request's id", got)
			}
			if got := a.Header["X-Drawbridge-Delivery"]; len(got) != 1 || got[0] != asyncResp.Header.Get("X-Test-Delivery") {
				t.Errorf("async X-Drawbridge-Delivery %q, want the 202's id", got)
			}
			sh, ah := s.Header.Clone(), a.Header.Clone()
			delete(sh, "X-Request-Id")
			delete(ah, "X-Request-Id")
			for _, k := range asyncOnlyHeaders {
				delete(ah, k)
			}
			if s.Method != a.Method || s.RequestURI != a.RequestURI || !bytes.Equal(s.Body, a.Body) {
				t.Errorf("sync got %s %s %q; async got %s %s %q", s.Method, s.RequestURI, s.Body, a.Method, a.RequestURI, a.Body)
			}
			if sl, al := headerLines(sh), headerLines(ah); !slices.Equal(sl, al) {
				t.Errorf("headers differ:\n  sync  %q\n  async %q", sl, al)
			}
			if !strings.HasPrefix(s.RequestURI, "/t/") && !strings.HasPrefix(s.RequestURI, "/exact/x") {
				t.Errorf("request-target %s", s.RequestURI)
			}

			// No client header drawbridge owns reaches either backend
			// under its name; drawbridge's own carry its values.
			for name, h := range map[string]http.Header{"sync": s.Header, "async": a.Header} {
				for k, vs := range h {
					switch k {
					case "X-Forwarded-For":
						wantEq(t, name+" "+k, vs, []string{"127.0.0.1"})
					case "X-Forwarded-Host":
						wantEq(t, name+" "+k, vs, []string{"public.example"})
					case "X-Forwarded-Proto":
						wantEq(t, name+" "+k, vs, []string{"http"})
					case "X-Request-Id", "X-Drawbridge-Delivery", "Content-Length":
						// checked above; Content-Length is the body's (below)
					default:
						if forward.Protected(k) {
							t.Errorf("%s backend got the client's %s: %q", name, k, vs)
						}
					}
				}
				// Header hygiene, spelled out rather than read from
				// forward.Protected: the framing headers' '_' spellings
				// and every X-Drawbridge-* but the worker's own.
				for k, vs := range h {
					folded := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
					switch {
					case folded == "transfer-encoding" || folded == "content-length" && k != "Content-Length":
						t.Errorf("%s backend got %s: %q", name, k, vs)
					case strings.HasPrefix(folded, "x-drawbridge-") && !(name == "async" && k == "X-Drawbridge-Delivery"):
						t.Errorf("%s backend got %s: %q", name, k, vs)
					}
				}
				if slices.Contains(h["Content-Length"], "9") || slices.Contains(h["Content-Length"], "0") && len(row.body) > 0 {
					t.Errorf("%s backend got Content-Length %q for a %d-byte body", name, h["Content-Length"], len(row.body))
				}
				for _, k := range []string{"Expect", "User-Agent", "Keep-Alive", "Upgrade", "X-Foo", "Proxy-Authorization"} {
					if _, ok := h[k]; ok && !strings.Contains(row.header, "User-Agent:") {
						t.Errorf("%s backend got %s: %q", name, k, h[k])
					}
				}
			}
		})
	}
}

// headerLines is h as sorted "Name: v1 | v2" lines, for comparing and
// printing.
func headerLines(h http.Header) []string {
	var l []string
	for k, vs := range h {
		l = append(l, k+": "+strings.Join(vs, " | "))
	}
	slices.Sort(l)
	return l
}

// TestAsyncFramingWatch: an async route's target that answers with both
// Content-Length and Transfer-Encoding fails the delivery attempt as an
// upstream error (retried later), as the same answer is a 502 on a sync
// route; it is never recorded as delivered.
func TestAsyncFramingWatch(t *testing.T) {
	f := asyncGateway(t, asyncYAML)
	l, err := net.Listen("tcp", f.target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
				br.ReadByte() // until the worker hangs up
			}()
		}
	}()
	resp, body := do(t, mustReq("POST", f.url+"/hooks/x", strings.NewReader("{}")))
	id := acceptedID(t, resp, body)
	if n, _ := f.w.RunOnce(context.Background()); n != 1 {
		t.Fatalf("attempts = %d, want 1", n)
	}
	d, err := f.q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != delivery.Pending || len(d.Attempts) != 1 || d.Attempts[0].Status != 0 ||
		!strings.Contains(d.Attempts[0].Error, forward.ErrFraming.Error()) {
		t.Fatalf("state %s, attempts %+v: want pending after a framing error", d.State, d.Attempts)
	}
}
