package forward

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPlanHeader: what a target receives for one client header set, row
// by row. Each row names a client header (as the server stored it) and
// what the plan must hold for it.
func TestPlanHeader(t *testing.T) {
	rows := []struct {
		name string
		in   http.Header
		want http.Header // nil value: absent
	}{
		{"end-to-end kept", http.Header{"Content-Type": {"a/b"}, "X-Multi": {"1", "2"}}, http.Header{"Content-Type": {"a/b"}, "X-Multi": {"1", "2"}}},
		{"hop-by-hop dropped", http.Header{"Keep-Alive": {"5"}, "Proxy-Authorization": {"p"}, "Trailer": {"X"}, "Upgrade": {"h2c"}, "Proxy-Connection": {"k"}},
			http.Header{"Keep-Alive": nil, "Proxy-Authorization": nil, "Trailer": nil, "Upgrade": nil, "Proxy-Connection": nil}},
		{"Connection-named dropped", http.Header{"Connection": {"x-a , X-B"}, "X-A": {"1"}, "X-B": {"2"}, "X-C": {"3"}},
			http.Header{"Connection": nil, "X-A": nil, "X-B": nil, "X-C": {"3"}}},
		{"Connection cannot remove what drawbridge sets", http.Header{"Connection": {"X-Request-Id, X-Forwarded-For, X-Forwarded-Proto"}},
			http.Header{"X-Request-Id": {"id-1"}, "X-Forwarded-For": {"192.0.2.1"}, "X-Forwarded-Proto": {"http"}}},
		{"Expect dropped", http.Header{"Expect": {"100-continue"}}, http.Header{"Expect": nil}},
		{"Te: trailers kept alone", http.Header{"Te": {"gzip;q=1, Trailers"}}, http.Header{"Te": {"trailers"}}},
		{"other Te dropped", http.Header{"Te": {"gzip, xtrailers"}}, http.Header{"Te": nil}},
		{"no User-Agent stays none in the plan", http.Header{}, http.Header{"User-Agent": nil}},
		{"client User-Agent kept", http.Header{"User-Agent": {"curl/8"}}, http.Header{"User-Agent": {"curl/8"}}},
		{"framing names and their '_' spellings dropped", http.Header{
			"Content-Length": {"5"}, "Transfer-Encoding": {"chunked"}, "Transfer_Encoding": {"chunked"}, "Content_Length": {"0"},
			"transfer_encoding": {"chunked"}, "CONTENT_LENGTH": {"9"}},
			http.Header{"Content-Length": nil, "Transfer-Encoding": nil, "Transfer_Encoding": nil, "Content_Length": nil,
				"transfer_encoding": nil, "CONTENT_LENGTH": nil}},
		{"client's X-Drawbridge-* dropped, any spelling", http.Header{
			"X-Drawbridge-Delivery": {"forged"}, "X_Drawbridge_Delivery": {"forged"}, "x-drawbridge-anything": {"f"}, "X-Drawbridge": {"kept: no dash after"}},
			http.Header{"X-Drawbridge-Delivery": nil, "X_Drawbridge_Delivery": nil, "x-drawbridge-anything": nil, "X-Drawbridge": {"kept: no dash after"}}},
		{"protected names replaced or dropped", http.Header{
			"X-Api-Key": {"k"}, "X_Api_Key": {"k"}, "X-Forwarded-For": {"6.6.6.6"}, "X_Forwarded_Host": {"evil"}, "X-Forwarded-Port": {"1"},
			"Forwarded": {"for=1.2.3.4"}, "X-Real-Ip": {"1.1.1.1"}, "X-Request-Id": {"mine"}, "Http2-Settings": {"AAA"}},
			http.Header{"X-Api-Key": nil, "X_Api_Key": nil, "X-Forwarded-For": {"192.0.2.1"}, "X_Forwarded_Host": nil, "X-Forwarded-Port": nil,
				"Forwarded": nil, "X-Real-Ip": nil, "X-Request-Id": {"id-1"}, "Http2-Settings": nil, "X-Forwarded-Host": {"public.example"}}},
	}
	f, err := New("http://target.internal:8080/base/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "http://public.example/p/a%2Fb?z=1;y=%zz", nil)
			r.Header = row.in
			p := f.Plan(r, &Request{Rest: "/a%2Fb", ForwardedFor: "192.0.2.1", RequestID: "id-1"})
			for k, want := range row.want {
				if got := p.Header[k]; !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if p.Method != "POST" || p.URL.String() != "http://target.internal:8080/base/a%2Fb?z=1;y=%zz" {
				t.Errorf("plan %s %s", p.Method, p.URL)
			}
		})
	}
}

// TestTargetURL: the prefix rest is appended with its escapes kept, the
// query goes byte for byte, and explain's string is the plan's URL.
func TestTargetURL(t *testing.T) {
	for _, c := range []struct{ target, rest, query, want string }{
		{"http://t", "", "", "http://t/"},
		{"http://t/x", "", "a=1&a=2", "http://t/x?a=1&a=2"},
		{"http://t/base/", "/a%20b/c%2F", "q=%zz;x", "http://t/base/a%20b/c%2F?q=%zz;x"},
		{"https://t:8443/base", "/r", "", "https://t:8443/base/r"},
	} {
		f, err := New(c.target, Options{})
		if err != nil {
			t.Fatal(err)
		}
		in := &url.URL{RawQuery: c.query}
		if got := f.TargetURL(c.rest, in); got != c.want {
			t.Errorf("%s + %q ? %q = %s, want %s", c.target, c.rest, c.query, got, c.want)
		}
		r := &http.Request{Method: "GET", URL: in, Header: http.Header{}}
		if got := f.Plan(r, &Request{Rest: c.rest}).URL.String(); got != c.want {
			t.Errorf("plan URL %s, want %s", got, c.want)
		}
	}
	if _, err := New("ftp://t/", Options{}); err == nil {
		t.Error("New accepted an ftp target")
	}
}

// TestClientSend: Client sends a plan as planned (no Go User-Agent, no
// redirect followed) and its plain connections carry the framing watch.
func TestClientSend(t *testing.T) {
	rec := &recorder{}
	backend := httptest.NewServer(rec)
	defer backend.Close()
	c := NewClient(Options{})
	defer c.Close()
	h := http.Header{"X-A": {"1"}}
	res, err := c.Send(context.Background(), "POST", backend.URL+"/redirect?q=%zz", h, []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		t.Errorf("status %d, want the 302 itself", res.StatusCode)
	}
	got := rec.take()
	if len(got) != 1 {
		t.Fatalf("backend saw %d requests", len(got))
	}
	if s := got[0]; s.RequestURI != "/redirect?q=%zz" || string(s.Body) != "body" || s.Header.Get("X-A") != "1" ||
		s.Header["User-Agent"] != nil {
		t.Errorf("backend saw %+v", s)
	}

	addr, closed := rawBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
	_, err = c.Send(context.Background(), "GET", "http://"+addr+"/", nil, nil)
	if !errors.Is(err, ErrFraming) {
		t.Errorf("Content-Length with Transfer-Encoding: err = %v, want ErrFraming", err)
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Error("upstream connection kept after invalid framing")
	}
}

// TestClientTLS: https targets are dialed by dialUpstream too (HTTP/1.1,
// the target's name verified).
func TestClientTLS(t *testing.T) {
	backend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	defer backend.Close()
	c := NewClient(Options{})
	defer c.Close()
	if _, err := c.Send(context.Background(), "GET", backend.URL, nil, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: err = %v", err)
	}
	// Trust the test server's certificate through the dialer's config.
	pool := x509.NewCertPool()
	pool.AddCert(backend.Certificate())
	c.tr.(*http.Transport).DialTLSContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		conf := tlsConfig("example.com")
		conf.RootCAs = pool
		return dialUpstream(ctx, newDialer(Options{}), addr, conf)
	}
	res, err := c.Send(context.Background(), "GET", backend.URL, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "HTTP/1.1" {
		t.Errorf("target saw %q, want HTTP/1.1", b)
	}
}
