package edge

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestInflightCap: beyond MaxInflight requests get 503 Service Unavailable
// with Connection: close, and the slot frees when a request ends.
func TestInflightCap(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var outcomes []string
	h := NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}), HandlerOptions{MaxInflight: 1, OnReject: func(_ *http.Request, _ int, o string) { outcomes = append(outcomes, o) }})
	srv := httptest.NewServer(h)
	defer srv.Close()
	go http.Get(srv.URL)
	<-entered
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || string(body) != `{"message":"Service Unavailable"}` || !resp.Close ||
		resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("x-amzn-ErrorType") != "ServiceUnavailableException" {
		t.Errorf("over the cap: %d %q close=%v %v", resp.StatusCode, body, resp.Close, resp.Header)
	}
	close(release)
	for h.Inflight() != 0 {
		time.Sleep(time.Millisecond)
	}
	if len(outcomes) != 1 || outcomes[0] != "unavailable" {
		t.Errorf("outcomes %q", outcomes)
	}
}

func TestBounds(t *testing.T) {
	h := NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		HandlerOptions{MaxHeaders: 5, MaxForwardedFor: 3})
	tests := []struct {
		name   string
		header http.Header
		status int
	}{
		{"five headers", http.Header{"A": {"1", "2"}, "B": {"1"}, "C": {"1"}, "D": {"1"}}, 200},
		{"six header lines", http.Header{"A": {"1", "2", "3"}, "B": {"1"}, "C": {"1"}, "D": {"1"}}, 431},
		{"three xff entries over two lines", http.Header{"X-Forwarded-For": {"1.1.1.1, 2.2.2.2", "3.3.3.3"}}, 200},
		{"four xff entries", http.Header{"X-Forwarded-For": {"1.1.1.1, 2.2.2.2", "3.3.3.3,4.4.4.4"}}, 431},
		{"marker", http.Header{FramingHeader: {"x"}}, 400},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header = tt.header
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.status {
			t.Errorf("%s: %d, want %d", tt.name, w.Code, tt.status)
		}
		if tt.status == 400 && (w.Header().Get("Connection") != "close" || w.Body.String() != `{"message":"Bad Request"}`) {
			t.Errorf("%s: %v %q", tt.name, w.Header(), w.Body.String())
		}
	}
	// X-Forwarded-For bounded alone: the header count's walk, which picks
	// the header up otherwise, does not run.
	xffOnly := NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		HandlerOptions{MaxForwardedFor: 3})
	for _, tt := range tests[:4] {
		want := tt.status
		if tt.name == "six header lines" {
			want = 200
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header = tt.header
		w := httptest.NewRecorder()
		if xffOnly.ServeHTTP(w, r); w.Code != want {
			t.Errorf("X-Forwarded-For bound alone, %s: %d, want %d", tt.name, w.Code, want)
		}
	}
}

// TestListenerCaps: per-address and total caps shed with a raw 503; the
// per-address table forgets an address when its last connection closes;
// exempt peers are held only to the total.
func TestListenerCaps(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	shed := make(chan string, 10)
	ln := NewListener(inner, ListenerOptions{MaxConns: 3, MaxPerIP: 2, OnShed: func(r string) { shed <- r },
		Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}})
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	expectShed := func(c net.Conn, reason string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(b), "HTTP/1.1 503 Service Unavailable\r\n") || !strings.HasSuffix(string(b), `{"message":"Service Unavailable"}`) {
			t.Errorf("shed answer %q", b)
		}
		if got := <-shed; got != reason {
			t.Errorf("shed reason %q, want %q", got, reason)
		}
	}
	a1, a2 := dial("127.0.0.1"), dial("127.0.0.1")
	s1, s2 := <-accepted, <-accepted
	expectShed(dial("127.0.0.1"), "max_conns_per_ip")
	dial("127.0.0.2")
	<-accepted
	expectShed(dial("127.0.0.3"), "max_connections")
	if ln.Open() != 3 || ln.Peers() != 2 {
		t.Errorf("open %d peers %d, want 3 and 2", ln.Open(), ln.Peers())
	}
	a1.Close()
	a2.Close()
	s1.Close()
	s2.Close()
	if ln.Open() != 1 || ln.Peers() != 1 {
		t.Errorf("after closing: open %d peers %d, want 1 and 1", ln.Open(), ln.Peers())
	}
	dial("127.0.0.3")
	dial("127.0.0.3")
	<-accepted
	<-accepted
	if ln.Peers() != 1 {
		t.Errorf("exempt peer entered the table: %d", ln.Peers())
	}
}

// BenchmarkHandler: what the edge checks add to an admitted request.
func BenchmarkHandler(b *testing.B) {
	h := NewHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		HandlerOptions{MaxInflight: 100, MaxHeaders: 100, MaxForwardedFor: 30})
	r := httptest.NewRequest("GET", "/forward", nil)
	r.Header = http.Header{"User-Agent": {"bench"}, "Accept": {"*/*"}, "X-Forwarded-For": {"1.2.3.4, 5.6.7.8"}, "X-Hub-Signature-256": {"sha256=00"}}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
