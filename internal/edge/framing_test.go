package edge

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/contentlength"
)

// scanAll feeds input to a scanConn in chunks of size and returns what the
// server would read.
func scanAll(t testing.TB, input string, size int) string {
	t.Helper()
	return scanLimit(t, input, size, 1<<16)
}

func scanLimit(t testing.TB, input string, size, limit int) string {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		for i := 0; i < len(input); i += size {
			client.Write([]byte(input[i:min(i+size, len(input))]))
		}
		client.Close()
	}()
	sc := &scanConn{Conn: server, limit: limit}
	out, _ := io.ReadAll(sc)
	server.Close()
	return string(out)
}

func TestScan(t *testing.T) {
	m := string(marker)
	tests := []struct{ name, in, want string }{
		{"plain get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"cl and te marked", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			"POST / HTTP/1.1\r\n" + m + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"te then cl, any case", "POST / HTTP/1.1\r\ntransfer-ENCODING: chunked\r\ncontent-length: 5\r\n\r\n",
			"POST / HTTP/1.1\r\n" + m + "transfer-ENCODING: chunked\r\ncontent-length: 5\r\n\r\n"},
		{"bare lf", "POST / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n",
			"POST / HTTP/1.1\n" + m + "Content-Length: 1\nTransfer-Encoding: chunked\n\n"},
		{"second request after a body marked", "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdPOST /2 HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
			"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdPOST /2 HTTP/1.1\r\n" + m + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"body that looks like headers is not scanned", "POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\n",
			"POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\n"},
		{"chunked on http/1.0 marked", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
			"POST / HTTP/1.0\r\n" + m + "Transfer-Encoding: chunked\r\n\r\n"},
		{"after chunked, pass through", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
			"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"space before colon is not the header", "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n",
			"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n"},
		{"folded te still te", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
			"POST / HTTP/1.1\r\n" + m + "Content-Length: 3\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"},
		{"after an upgrade, pass through", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nframe", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nframe"},
		{"truncated block passed on", "GET / HTTP/1.1\r\nHost: a\r\n", "GET / HTTP/1.1\r\nHost: a\r\n"},
	}
	for _, tt := range tests {
		for _, size := range []int{1, 3, 7, 4096} {
			if got := scanAll(t, tt.in, size); got != tt.want {
				t.Errorf("%s (reads of %d): got\n%q\nwant\n%q", tt.name, size, got, tt.want)
			}
		}
	}
}

// TestScanLimit: a header block over the limit is passed on unscanned
// (net/http answers 431) instead of being held in memory.
func TestScanLimit(t *testing.T) {
	in := "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 100) + "\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	if out := scanLimit(t, in, 10, 64); out != in {
		t.Fatalf("got %q", out)
	}
}

// FuzzScan: whatever the bytes and however they are split, the scanner
// only ever inserts whole marker lines; with the markers removed the
// server reads exactly what the client sent.
func FuzzScan(f *testing.F) {
	f.Add("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 3)
	f.Add("GET / HTTP/1.1\nContent-Length: 2\n\nabGET /x HTTP/1.0\nTransfer-Encoding: chunked\n\n", 1)
	f.Add("\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 5)
	f.Fuzz(func(t *testing.T, in string, size int) {
		if size <= 0 || size > 64 {
			size = 7
		}
		got := scanAll(t, in, size)
		stripped := strings.ReplaceAll(got, string(marker), "")
		if stripped != in {
			// A client may send the marker text itself; then it is
			// doubled, never lost.
			if !strings.Contains(in, FramingHeader) {
				t.Fatalf("scanner changed the stream:\nin  %q\nout %q", in, got)
			}
		}
	})
}

// TestScanUpgradeNotHeld: after an Upgrade request the bytes that follow
// (WebSocket frames) reach the server at once, not when a "header block"
// ends.
func TestScanUpgradeNotHeld(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	sc := &scanConn{Conn: server, limit: 1 << 16}
	go client.Write([]byte("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"))
	buf := make([]byte, 100)
	n, _ := sc.Read(buf)
	if !strings.HasSuffix(string(buf[:n]), "\r\n\r\n") {
		t.Fatalf("first read %q", buf[:n])
	}
	go client.Write([]byte("frame"))
	server.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := sc.Read(buf)
	if err != nil || string(buf[:n]) != "frame" {
		t.Fatalf("frame after upgrade: %q %v", buf[:n], err)
	}
}

// BenchmarkScan: the scanner's cost per keep-alive request (a GET, then a
// POST with a small body), against reading the same bytes unwrapped.
func BenchmarkScan(b *testing.B) {
	req := []byte("GET /forward?x=1 HTTP/1.1\r\nHost: gw.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n" +
		"POST /forward HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello")
	for _, scan := range []bool{false, true} {
		name := "plain"
		if scan {
			name = "scanned"
		}
		b.Run(name, func(b *testing.B) {
			src := &repeatConn{data: req}
			var r io.Reader = src
			if scan {
				r = &scanConn{Conn: src, limit: 1 << 16}
			}
			buf := make([]byte, 4096)
			b.SetBytes(int64(len(req)))
			b.ReportAllocs()
			for b.Loop() {
				src.left = len(req)
				for n := 0; n < len(req); {
					m, err := r.Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					n += m
				}
			}
		})
	}
}

// repeatConn serves data once per reset of left.
type repeatConn struct {
	net.Conn
	data []byte
	left int
}

func (c *repeatConn) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data[len(c.data)-c.left:])
	c.left -= n
	return n, nil
}

// TestScanDeadlineKeepsBlock: a read deadline in the middle of a header
// block (net/http aborts its background read this way) loses nothing: the
// block is released whole, and marked, once the rest arrives.
func TestScanDeadlineKeepsBlock(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	sc := &scanConn{Conn: server, limit: 1 << 16}
	go client.Write([]byte("POST / HTTP/1.1\r\nContent-Length: 1\r\n"))
	server.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 4096)
	if n, err := sc.Read(buf); n != 0 || err == nil {
		t.Fatalf("partial block released: %q %v", buf[:n], err)
	}
	server.SetReadDeadline(time.Time{})
	go client.Write([]byte("Transfer-Encoding: chunked\r\n\r\n"))
	n, err := sc.Read(buf)
	want := "POST / HTTP/1.1\r\n" + string(marker) + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	if err != nil || string(buf[:n]) != want {
		t.Fatalf("got %q %v, want %q", buf[:n], err, want)
	}
}

// FuzzFramingOf: framingOf's shortcuts (lines trimmed in place, lines
// that cannot name a body header skipped by their first byte) decide as
// the plain line-by-line reading below does.
func FuzzFramingOf(f *testing.F) {
	f.Add("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
	f.Add("GET / HTTP/1.0\nTRANSFER-ENCODING: chunked\n\n")
	f.Add("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	f.Add("POST / HTTP/1.1\r\nContent-Length: 5\r\n\tContent-Length: 6\r\nContent-Length: 7\r\n\r\n")
	f.Add("GET / HTTP/1.1\r\ncontent-length : 5\r\n\r\r\n\r\n")
	f.Fuzz(func(t *testing.T, h string) {
		if got, want := framingOf([]byte(h)), framingOfReference([]byte(h)); got != want {
			t.Fatalf("framingOf(%q) = %+v, want %+v", h, got, want)
		}
	})
}

// framingOfReference is framingOf before its shortcuts.
func framingOfReference(h []byte) framing {
	var f framing
	var last string // header the previous line belonged to
	var lens []int64
	first := true
	for len(h) > 0 {
		nl := bytes.IndexByte(h, '\n')
		if nl < 0 {
			nl = len(h) - 1
		}
		line := bytes.TrimRight(h[:nl+1], "\r\n")
		h = h[nl+1:]
		if first {
			first = false
			f.http10 = bytes.HasSuffix(line, []byte(" HTTP/1.0"))
			continue // request line
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == "cl" {
				f.bad = true // a folded Content-Length: let net/http decide, and stop
			}
			continue
		}
		last = ""
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := line[:colon]
		switch {
		case asciiFold(name, "content-length"):
			last = "cl"
			f.cl = true
			n, ok := contentlength.Parse(bytes.TrimSpace(line[colon+1:]))
			if !ok {
				f.bad = true
			}
			lens = append(lens, n)
		case asciiFold(name, "transfer-encoding"):
			f.te = true
		case asciiFold(name, "upgrade"):
			f.upgrade = true
		}
	}
	for _, n := range lens {
		if n != lens[0] {
			f.bad = true // net/http answers 400 and closes
		}
	}
	if len(lens) > 0 {
		f.length = lens[0]
	}
	return f
}
