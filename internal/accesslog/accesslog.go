// Package accesslog is drawbridge's JSON log: slog's JSON handler for
// every line, plus a fast path for the one line written per request.
//
// slog's generic path costs more than a rejection itself: a caller
// lookup, a Record with the attrs copied in, and floats encoded through
// encoding/json. The access line has fixed keys, so Line appends them
// straight into a pooled buffer, in slog's exact JSON shape (same time
// format, escaping and float spelling; TestLineMatchesSlog and
// FuzzLineMatchesSlog hold it there), and writes it with one Write,
// ordered with the handler's other lines.
//
// NewBuffered also batches access lines under load: a line that comes
// within the delay of the last write waits (at most the delay) to share
// one write with the lines after it, so a busy gateway makes about one
// write(2) per delay instead of one per request. Every other log line
// first writes the waiting access lines, so order is kept.
package accesslog

import (
	"io"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Handler is slog.NewJSONHandler(w, nil) that can also write access lines.
// Derived handlers (WithAttrs, WithGroup) are plain slog handlers: the
// fast path is only for lines without pre-set attributes.
//
// Two locks: mu guards the waiting lines and is held only to append or
// take them; wmu orders the writes to w and is held during each write, so
// a slow write never stalls the requests appending their lines.
type Handler struct {
	slog.Handler
	mu, wmu *sync.Mutex
	w       io.Writer
	stamp   atomic.Pointer[stamp]

	// NewBuffered only; guarded by mu.
	delay          time.Duration
	pending, spare []byte      // access lines not yet written; the other buffer
	last           time.Time   // when the last write began
	timer          *time.Timer // writes pending after delay
}

// flushAt is the size at which waiting lines are written at once.
const flushAt = 32 << 10

// New returns a handler writing JSON lines to w at level Info and above.
func New(w io.Writer) *Handler {
	h := &Handler{mu: new(sync.Mutex), wmu: new(sync.Mutex), w: w}
	h.Handler = slog.NewJSONHandler(lockedWriter{h}, nil)
	return h
}

// NewBuffered is New whose access lines wait up to delay to share a
// write when lines come faster than one per delay. Call Flush before the
// process exits.
func NewBuffered(w io.Writer, delay time.Duration) *Handler {
	h := New(w)
	h.delay = delay
	h.timer = time.AfterFunc(time.Hour, func() { h.Flush() })
	h.timer.Stop()
	return h
}

// Flush writes the access lines still waiting.
func (h *Handler) Flush() error {
	h.mu.Lock()
	return h.writeUnlock(time.Now(), nil)
}

// writeUnlock writes the waiting lines, then p (when not nil). It is
// called with mu held and releases it once it holds wmu, so writes keep
// the order in which lines were taken.
func (h *Handler) writeUnlock(now time.Time, p []byte) error {
	h.last = now
	buf := h.pending
	h.pending, h.spare = h.spare[:0], nil
	h.wmu.Lock()
	h.mu.Unlock()
	var err error
	if len(buf) > 0 {
		_, err = h.w.Write(buf)
	}
	if p != nil {
		if _, perr := h.w.Write(p); err == nil {
			err = perr
		}
	}
	h.wmu.Unlock()
	if cap(buf) > 0 {
		h.mu.Lock()
		if h.spare == nil {
			h.spare = buf[:0]
		}
		h.mu.Unlock()
	}
	return err
}

// lockedWriter makes the slog handler's writes share the fast path's lock,
// so lines from both never interleave.
type lockedWriter struct{ h *Handler }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.h.mu.Lock()
	if err := l.h.writeUnlock(time.Time{}, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Line is one JSON line being built. Keys must be plain ASCII without
// quotes or backslashes (they are constants in the caller); values are
// escaped as slog escapes them.
type Line struct {
	b []byte
	h *Handler
	t time.Time
}

var pool = sync.Pool{New: func() any { return &Line{b: make([]byte, 0, 512)} }}

// Line starts an Info line with slog's time, level and msg fields.
func (h *Handler) Line(t time.Time, msg string) *Line {
	l := pool.Get().(*Line)
	l.h, l.t = h, t
	l.b = append(l.b[:0], `{"time":"`...)
	l.b = h.appendTime(l.b, t)
	l.b = append(l.b, `","level":"INFO","msg":`...)
	l.b = appendString(l.b, msg)
	return l
}

func (l *Line) key(k string) {
	l.b = append(l.b, ',', '"')
	l.b = append(l.b, k...)
	l.b = append(l.b, '"', ':')
}

// Str adds a string field.
func (l *Line) Str(k, v string) {
	l.key(k)
	l.b = appendString(l.b, v)
}

// Safe adds a string field whose value the caller knows needs no JSON
// escaping: printable ASCII without '"' or '\\' (ids drawbridge makes,
// escaped URL paths, names from a fixed set). It is Str without the scan.
func (l *Line) Safe(k, v string) {
	l.key(k)
	l.b = append(l.b, '"')
	l.b = append(l.b, v...)
	l.b = append(l.b, '"')
}

// Str2 adds a string field whose value is a followed by b, without
// concatenating them first. a must be valid UTF-8 (escaping then cannot
// differ from escaping a+b).
func (l *Line) Str2(k, a, b string) {
	l.key(k)
	l.b = append(l.b, '"')
	l.b = appendEscaped(l.b, a)
	l.b = appendEscaped(l.b, b)
	l.b = append(l.b, '"')
}

// Int adds an integer field.
func (l *Line) Int(k string, v int) {
	l.key(k)
	l.b = strconv.AppendInt(l.b, int64(v), 10)
}

// Float adds a number field spelled as encoding/json (and so slog) spells
// a float64.
func (l *Line) Float(k string, f float64) {
	l.key(k)
	l.b = appendFloat(l.b, f)
}

// Ms adds d as milliseconds with microsecond precision, the number
// Float(k, float64(d.Microseconds())/1000) writes, without the float
// formatting (TestMsMatchesFloat).
func (l *Line) Ms(k string, d time.Duration) {
	us := d.Microseconds()
	if us < 0 || us >= 1<<40 { // 12.7 days: beyond, floats are too coarse
		l.Float(k, float64(us)/1000)
		return
	}
	l.key(k)
	l.b = strconv.AppendInt(l.b, us/1000, 10)
	if frac := us % 1000; frac != 0 {
		digits := [4]byte{'.', byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
		n := 4
		for digits[n-1] == '0' {
			n--
		}
		l.b = append(l.b, digits[:n]...)
	}
}

// Addr adds an IP address field; an invalid address is written as
// "unknown".
func (l *Line) Addr(k string, a netip.Addr) {
	l.key(k)
	if !a.IsValid() {
		l.b = append(l.b, `"unknown"`...)
		return
	}
	if a.Zone() != "" { // a zone can hold anything: escape it
		l.b = appendString(l.b, a.String())
		return
	}
	l.b = append(l.b, '"')
	l.b = a.AppendTo(l.b)
	l.b = append(l.b, '"')
}

// Write ends the line and writes it with one Write (on a buffered
// handler under load: queues it), then recycles the Line, which must not
// be used after.
func (l *Line) Write() {
	l.b = append(l.b, '}', '\n')
	h := l.h
	h.mu.Lock()
	switch {
	case h.delay == 0 || len(h.pending) == 0 && l.t.Sub(h.last) >= h.delay:
		h.writeUnlock(l.t, l.b) // unbuffered, or the first line in a while: now
	default:
		h.pending = append(h.pending, l.b...)
		if len(h.pending) >= flushAt {
			h.writeUnlock(l.t, nil)
			break
		}
		if len(h.pending) == len(l.b) {
			h.timer.Reset(h.delay)
		}
		h.mu.Unlock()
	}
	l.h = nil
	if cap(l.b) <= 16<<10 {
		pool.Put(l)
	}
}

// stamp is one second's RFC 3339 text, split around the fraction:
// formatting a time costs more than the rest of the line, and every line
// within a second shares all of it but the nanoseconds.
type stamp struct {
	sec          int64
	loc          *time.Location
	prefix, zone []byte // "2026-12-01T20:01:04", "Z" or "+01:00"
}

// appendTime appends t as t.AppendFormat(time.RFC3339Nano) does.
func (h *Handler) appendTime(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	st := h.stamp.Load()
	if st == nil || st.sec != sec || st.loc != loc {
		whole := t.Truncate(time.Second).AppendFormat(nil, time.RFC3339)
		if y := t.Year(); y < 0 || y >= 10000 {
			return t.AppendFormat(b, time.RFC3339Nano) // odd years: no cache
		}
		st = &stamp{sec: sec, loc: loc, prefix: whole[:19], zone: whole[19:]}
		h.stamp.Store(st)
	}
	b = append(b, st.prefix...)
	if ns := t.Nanosecond(); ns != 0 {
		var f [10]byte
		f[0] = '.'
		for i := 9; i > 0; i-- {
			f[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for f[n-1] == '0' {
			n--
		}
		b = append(b, f[:n]...)
	}
	return append(b, st.zone...)
}

// appendFloat is encoding/json's float64 encoding.
func appendFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		// slog writes json.Marshal's error in place of the value; never
		// produced by drawbridge's fields.
		return append(b, `"!ERROR:unsupported value"`...)
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmt = 'e'
	}
	b = strconv.AppendFloat(b, f, fmt, -1, 64)
	if fmt == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hex = "0123456789abcdef"

// plain8 reports whether none of the 8 bytes of s needs escaping, all at
// once: no byte has the high bit, is below 0x20, or is '"' or '\\'. (The
// borrow tricks are exact for "any byte": a borrow only starts at a byte
// that matches.)
func plain8(s string) bool {
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ ('"' * ones)  // zero where x has '"'
	b := x ^ ('\\' * ones) // zero where x has '\\'
	return (x|(x-0x20*ones)&^x|(q-ones)&^q|(b-ones)&^b)&highs == 0
}

// escape marks the bytes appendEscaped cannot copy as they are: ASCII
// controls, quote, backslash and every non-ASCII byte (checked as UTF-8).
var escape = func() (t [256]bool) {
	for b := range 256 {
		t[b] = b < 0x20 || b == '"' || b == '\\' || b >= utf8.RuneSelf
	}
	return t
}()

// appendString appends s as a quoted JSON string.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	buf = appendEscaped(buf, s)
	return append(buf, '"')
}

// appendEscaped is slog's appendEscapedJSONString: control bytes, quote
// and backslash escaped, invalid UTF-8 as \ufffd, U+2028 and U+2029
// escaped, everything else (including <, > and &) as is.
func appendEscaped(buf []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		for i+8 <= len(s) && plain8(s[i:i+8]) { // the common run: plain ASCII
			i += 8
		}
		for i < len(s) && !escape[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		if b := s[i]; b < utf8.RuneSelf {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\')
			switch b {
			case '\\', '"':
				buf = append(buf, b)
			case '\n':
				buf = append(buf, 'n')
			case '\r':
				buf = append(buf, 'r')
			case '\t':
				buf = append(buf, 't')
			default:
				buf = append(buf, 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\u202`...)
			buf = append(buf, hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(buf, s[start:]...)
}
