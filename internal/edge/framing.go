package edge

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/drawbridge/drawbridge/internal/contentlength"
)

// FramingHeader is the header the framing scanner adds to a request whose
// header block carried both Content-Length and Transfer-Encoding, or
// Transfer-Encoding on HTTP/1.0. net/http drops the Content-Length of the
// first and the Transfer-Encoding of the second before any handler runs
// (on HTTP/1.0 it then parses the chunked body as the next request), so
// only the raw bytes show them; Handler answers the marked request 400 and
// closes the connection, as nginx and Envoy do. A client that sends the
// header itself only gets its own request refused.
const FramingHeader = "Drawbridge-Framing-Error"

var marker = []byte(FramingHeader + ": content-length with transfer-encoding\r\n")

// scanConn passes a client connection's bytes to net/http one whole
// request header block at a time, so that it can mark a block before the
// server parses it. It follows request framing the way net/http does:
// after a block with a Content-Length it passes that many body bytes
// through, after one without body headers the next block follows at once.
// After a block with Transfer-Encoding or Upgrade, or any block it cannot follow
// (a bad Content-Length, a block over the size limit), it stops scanning
// and passes everything through: the gateway closes the connection after
// a chunked request, and net/http itself closes it after a parse error, so
// no later request on the connection is missed.
type scanConn struct {
	net.Conn
	limit int // longest header block followed; longer: stop scanning

	raw  [4096]byte
	hdr  []byte // the header block read so far, held back
	out  []byte // bytes ready for the server, from off on
	off  int
	rest []byte // scratch: bytes after a block, rescanned
	body int64  // body bytes still to pass before the next block
	pass bool   // stopped scanning: plain pass-through

	// state is what net/http does with the connection, as ConnState
	// tells it: http.ConnState + 1; 0, never told, is never between
	// requests.
	state atomic.Int32
	// headerTime is net/http's header timeout, which the scanner starts
	// itself for a block held back between requests (timeHeader); timed:
	// the held block runs against it; renewed: the read deadline is the
	// idle one an early answer set.
	headerTime     time.Duration
	timed, renewed bool

	// early, when set, may answer a block itself (early.go): only
	// between requests (net/http has answered everything it read and
	// waits for the next request) and when nothing is passed but not yet
	// read, so that answers leave in the order requests came.
	early Early
	*earlyState
}

// earlyState is what answering below net/http keeps per connection; its
// buffers and header maps are made at the first block offered.
type earlyState struct {
	hdrs      http.Header
	ans       earlyAnswer
	wbuf      []byte
	remote    string
	tls       *tls.ConnectionState // the request's TLS, as net/http gives it; nil: plain HTTP
	maxHeader int                  // longest block net/http would read (MaxHeaderBytes)
	idleTime  time.Duration        // net/http's idle timeout, renewed after each answer
	writeTime time.Duration        // net/http's write timeout, set before each answer
	err       error                // a failed answer's write, or io.EOF after one that closes
	skip      int                  // blocks still to pass without asking early
	skipAfter int                  // skip after a block early could not read or answer
}

// skipAfterServed is how many requests a connection sends straight to
// net/http after one that early could not read or answer. Asking costs a
// request early cannot answer about a sixth more (it is parsed and its
// guards run twice); a connection that was just served is likely served
// again, and one that floods rejections is back on the early path within
// this many requests. A client that mixes served requests into a flood only gets
// net/http's rejection cost back, which its served requests exceed.
const skipAfterServed = 15

func (c *scanConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.earlyState != nil && c.err != nil {
			return 0, c.err
		}
		if c.pass && len(c.hdr) == 0 {
			return c.Conn.Read(p)
		}
		if len(c.hdr) > 0 && !c.timed {
			// Part of a block is held (read just now, or by net/http's
			// background read while the last request was served).
			c.timeHeader()
		}
		n, err := c.Conn.Read(c.raw[:])
		if n > 0 {
			c.feed(c.raw[:n])
		}
		if len(c.out) > 0 {
			break
		}
		if err != nil {
			// errors.Is, not errors.As with a net.Error: that target
			// escapes, one allocation per read error, and net/http ends
			// every request's background read with a deadline error.
			if len(c.hdr) > 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
				// The client is gone: let the server see (and refuse)
				// the truncated block.
				c.out, c.hdr = append(c.out, c.hdr...), nil
				break
			}
			// A deadline (net/http aborting its background read, or the
			// header timeout) keeps the block: reading may resume.
			return 0, err
		}
	}
	n := copy(p, c.out[c.off:])
	c.off += n
	if c.off == len(c.out) {
		c.out, c.off = c.out[:0], 0
	}
	return n, nil
}

// feed runs the scanner over freshly read bytes.
func (c *scanConn) feed(b []byte) {
	for len(b) > 0 {
		switch {
		case c.earlyState != nil && c.err != nil:
			return // the connection ends after an early answer
		case c.pass:
			c.out = append(c.out, b...)
			return
		case c.body > 0:
			n := int64(len(b))
			if n > c.body {
				n = c.body
			}
			c.out = append(c.out, b[:n]...)
			c.body -= n
			b = b[n:]
		default:
			start := len(c.hdr)
			c.hdr = append(c.hdr, b...)
			end := blockEnd(c.hdr, start)
			if end < 0 {
				if len(c.hdr) > c.limit {
					c.out, c.hdr, c.pass = append(c.out, c.hdr...), nil, true
				}
				return
			}
			c.rest = append(c.rest[:0], c.hdr[end:]...)
			c.block(c.hdr[:end])
			b = c.rest
			c.hdr = c.hdr[:0]
		}
	}
}

// blockEnd returns the offset just past the empty line ending a header
// block (CRLF or bare LF line ends, as net/http accepts both), or -1.
// from is where the new bytes start; the search backs up to catch an end
// split across reads.
func blockEnd(b []byte, from int) int {
	i := max(from-3, 0)
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		j += i
		// An empty line: "\n\n" or "\n\r\n" (the first line ending is
		// the previous line's), or the block is just one empty line.
		switch {
		case j == 0, j == 1 && b[0] == '\r':
			return j + 1
		case j >= 1 && b[j-1] == '\n':
			return j + 1
		case j >= 2 && b[j-1] == '\r' && b[j-2] == '\n':
			return j + 1
		}
		i = j + 1
	}
}

// in reports whether ConnState last told the connection st.
func (c *scanConn) in(st http.ConnState) bool { return c.state.Load() == int32(st)+1 }

// between reports whether net/http is between requests.
func (c *scanConn) between() bool { return c.in(http.StateNew) || c.in(http.StateIdle) }

// timeHeader bounds the rest of a partial header block, held back while
// net/http waits between requests, by the header timeout. net/http
// starts that timeout when a request's first bytes are readable; as the
// scanner holds the block until it is whole, net/http's wait would
// otherwise run against its idle timeout, letting a client trickle the
// headers of a keep-alive connection's next request for 120 s instead
// of 10 (TestHeaderTimeoutAfterAnswer, TestHeaderTimeoutAfterFirstRequest).
// Only between requests: while a request is served, a read deadline
// would cut its background read and cancel it.
func (c *scanConn) timeHeader() {
	// On a new connection net/http's own header deadline, from the
	// connection's start, runs and is the tighter one, unless an early
	// answer has put the idle deadline in its place.
	if c.headerTime <= 0 || !(c.in(http.StateIdle) || c.renewed) {
		return
	}
	c.timed = true
	c.Conn.SetReadDeadline(time.Now().Add(c.headerTime))
}

// block decides what follows a complete header block and releases it.
func (c *scanConn) block(h []byte) {
	c.timed, c.renewed = false, false
	f := framingOf(h)
	if c.early != nil && !f.cl && !f.te && !f.bad && !f.upgrade && !f.http10 &&
		len(c.out) == 0 && c.between() && c.answerEarly(h) {
		return
	}
	if f.te && (f.cl || f.http10) {
		// Both headers, or chunked on HTTP/1.0, where net/http ignores
		// Transfer-Encoding and would parse the chunks as the next request.
		// Insert the marker after the request line.
		nl := bytes.IndexByte(h, '\n') + 1
		c.out = append(c.out, h[:nl]...)
		c.out = append(c.out, marker...)
		c.out = append(c.out, h[nl:]...)
	} else {
		c.out = append(c.out, h...)
	}
	switch {
	case f.te || f.bad || f.upgrade:
		// After an Upgrade the stream may stop being HTTP (a WebSocket):
		// holding its bytes back as a "header block" would stall it.
		c.pass = true
	case f.cl:
		c.body = f.length
	}
}

type framing struct {
	cl, te, bad, http10, upgrade bool
	length                       int64
}

// framingOf reads the body headers of one request header block. Header
// names are matched case-insensitively and must be followed directly by a
// colon (net/http refuses "Name :" and so does this). Folded continuation
// lines extend the previous header's value.
func framingOf(h []byte) framing {
	var f framing
	var last string // header the previous line belonged to
	var lens []int64
	first := true
	for len(h) > 0 {
		nl := bytes.IndexByte(h, '\n')
		if nl < 0 {
			nl = len(h) - 1
		}
		line := h[:nl+1]
		h = h[nl+1:]
		// bytes.TrimRight(line, "\r\n") without building its set per line.
		for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
			line = line[:len(line)-1]
		}
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
		if c := line[0] | 0x20; c != 'c' && c != 't' && c != 'u' {
			continue // none of the three names below: most lines stop here
		}
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

func asciiFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// answerEarly offers the block to early and, when it answers, writes the
// answer straight to the connection under net/http's own deadlines: the
// write timeout for the answer, then the idle timeout for the next
// request, as net/http sets them between requests.
func (c *scanConn) answerEarly(h []byte) bool {
	e := c.earlyState
	if e.skip > 0 {
		e.skip--
		return false
	}
	if len(h) > e.maxHeader || !c.ask(h) {
		e.skip = e.skipAfter
		return false
	}
	now := time.Now()
	var closing bool
	e.wbuf, closing = e.ans.wire(e.wbuf[:0], now)
	if e.writeTime > 0 {
		c.Conn.SetWriteDeadline(now.Add(e.writeTime))
	}
	if _, err := c.Conn.Write(e.wbuf); err != nil {
		e.err = err
		return true
	}
	if closing {
		e.err = io.EOF
		return true
	}
	if e.idleTime > 0 {
		c.Conn.SetReadDeadline(now.Add(e.idleTime))
		c.renewed = true
	}
	return true
}

// ask parses the block and offers it to early, which answers into e.ans.
func (c *scanConn) ask(h []byte) bool {
	e := c.earlyState
	if e.hdrs == nil {
		e.hdrs, e.ans.h = http.Header{}, http.Header{}
		e.remote = c.Conn.RemoteAddr().String()
	} else {
		clear(e.hdrs)
	}
	r, ok := parseEarly(h, e.hdrs)
	if !ok {
		return false
	}
	r.RemoteAddr, r.TLS = e.remote, e.tls
	e.ans.reset()
	return c.early(&e.ans, r)
}
