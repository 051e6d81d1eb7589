package forward

import (
	"bytes"
	"errors"
	"net"
	"sync"

	"github.com/drawbridge/drawbridge/internal/contentlength"
)

// ErrFraming is the read error an upstream connection returns when the
// target's response carries both Content-Length and Transfer-Encoding.
// net/http would drop the Content-Length and carry on; RFC 9112 §6.3 calls
// such a message a probable smuggling or splitting attempt, so the
// forward fails (502) and the connection is closed instead.
var ErrFraming = errors.New("target response has both Content-Length and Transfer-Encoding")

// upstreamConn watches the responses on one plain-HTTP connection to a
// target. It never changes a byte: it follows response framing (status
// codes without a body, HEAD, Content-Length, chunked) to find each
// response's header block, and fails the read that completes a block with
// both body headers, so the Transport never parses it. What it cannot
// follow (a body delimited by close, an upgrade, a framing error the
// Transport will report itself) ends the watching for that connection.
type upstreamConn struct {
	net.Conn

	mu       sync.Mutex // Write (the Transport's writeLoop) and Read (its readLoop)
	awaiting bool       // the next Write starts a request
	head     bool       // the response being read answers a HEAD

	st   scanState
	hdr  []byte // header block (or chunk or trailer line) so far
	left int64  // body bytes, or chunk bytes, still to skip
	off  bool   // stopped watching
}

type scanState uint8

const (
	stHeader    scanState = iota // reading a response header block
	stBody                       // skipping left Content-Length bytes
	stChunkLine                  // reading a chunk-size line
	stChunkData                  // skipping left chunk bytes
	stChunkEnd                   // the CRLF after chunk data
	stTrailer                    // trailer lines up to the empty one
)

func newUpstreamConn(c net.Conn) *upstreamConn { return &upstreamConn{Conn: c, awaiting: true} }

func (c *upstreamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.awaiting && len(p) > 0 {
		c.head = bytes.HasPrefix(p, []byte("HEAD "))
		c.awaiting = false
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		bad := !c.off && c.scan(p[:n])
		c.mu.Unlock()
		if bad {
			c.Conn.Close()
			return 0, ErrFraming
		}
	}
	return n, err
}

// scan follows b through the framing; true means a header block with both
// body headers ended in b.
func (c *upstreamConn) scan(b []byte) bool {
	for len(b) > 0 && !c.off {
		switch c.st {
		case stBody, stChunkData:
			n := min(int64(len(b)), c.left)
			c.left -= n
			b = b[n:]
			if c.left == 0 {
				if c.st == stBody {
					c.done()
				} else {
					c.st = stChunkEnd
				}
			}
		case stChunkEnd:
			switch b[0] {
			case '\r':
			case '\n':
				c.st = stChunkLine
			default:
				c.off = true // malformed: the Transport fails the body itself
			}
			b = b[1:]
		default: // stHeader, stChunkLine, stTrailer: line-based
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.hdr = append(c.hdr, b...)
				if len(c.hdr) > 1<<20 {
					c.off = true
				}
				return false
			}
			c.hdr = append(c.hdr, b[:i+1]...)
			b = b[i+1:]
			if bad := c.line(); bad {
				return true
			}
		}
	}
	return false
}

// line handles the complete line that ends c.hdr (for a header block: the
// block so far).
func (c *upstreamConn) line() bool {
	switch c.st {
	case stChunkLine:
		size, ok := chunkSize(c.hdr)
		c.hdr = c.hdr[:0]
		switch {
		case !ok:
			c.off = true
		case size == 0:
			c.st = stTrailer
		default:
			c.st, c.left = stChunkData, size
		}
		return false
	case stTrailer:
		empty := len(bytes.TrimRight(c.hdr, "\r\n")) == 0
		c.hdr = c.hdr[:0]
		if empty {
			c.done()
		}
		return false
	}
	// stHeader: a block ends with an empty line.
	if !blockDone(c.hdr) {
		return false
	}
	f := responseFraming(c.hdr)
	c.hdr = c.hdr[:0]
	switch {
	case f.cl && f.te:
		c.off = true
		return true
	case f.status == 101 || f.bad:
		c.off = true
	case f.status >= 100 && f.status < 200:
		// An interim answer: the final one follows.
	case f.status == 204 || f.status == 304 || c.head:
		c.done()
	case f.chunked:
		c.st = stChunkLine
	case f.te:
		c.off = true // another coding: delimited by close
	case f.cl && f.length > 0:
		c.st, c.left = stBody, f.length
	case f.cl:
		c.done()
	default:
		c.off = true // delimited by close
	}
	return false
}

// done: a whole response was read; the next request may follow.
func (c *upstreamConn) done() {
	c.st = stHeader
	c.awaiting = true
}

func blockDone(h []byte) bool {
	return bytes.HasSuffix(h, []byte("\n\n")) || bytes.HasSuffix(h, []byte("\n\r\n")) || bytes.Equal(h, []byte("\r\n")) || bytes.Equal(h, []byte("\n"))
}

type respFraming struct {
	status               int
	cl, te, chunked, bad bool
	length               int64
}

func responseFraming(h []byte) respFraming {
	var f respFraming
	nl := bytes.IndexByte(h, '\n')
	status := h[:nl]
	if len(status) < 12 || !bytes.HasPrefix(status, []byte("HTTP/1.")) {
		f.bad = true
		return f
	}
	for _, d := range status[9:12] {
		if d < '0' || d > '9' {
			f.bad = true
			return f
		}
		f.status = f.status*10 + int(d-'0')
	}
	for rest := h[nl+1:]; len(rest) > 0; {
		var line []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			line, rest = rest, nil
		}
		line = bytes.TrimRight(line, "\r")
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := contentlength.Parse(value)
			if !ok || (f.cl && n != f.length) {
				f.bad = true
			}
			f.cl, f.length = true, n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			f.te = true
			f.chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	return f
}

// chunkSize reads "hex[;ext]\r\n".
func chunkSize(line []byte) (int64, bool) {
	line = bytes.TrimRight(line, "\r\n")
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c|0x20 && c|0x20 <= 'f':
			n = n<<4 | int64(c|0x20-'a'+10)
		default:
			return 0, false
		}
	}
	return n, true
}
