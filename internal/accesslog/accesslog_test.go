package accesslog

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// field is one access-line field, written both ways.
type field struct {
	key  string
	str  string
	str2 [2]string
	num  int
	flt  float64
	addr netip.Addr
	kind byte // s, S (Safe), 2, i, f, a
}

// safe reports whether s is in Line.Safe's domain: printable ASCII
// without '"' or '\\'.
func safe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\' {
			return false
		}
	}
	return true
}

func (f field) attr() slog.Attr {
	switch f.kind {
	case 's', 'S':
		return slog.String(f.key, f.str)
	case '2':
		return slog.String(f.key, f.str2[0]+f.str2[1])
	case 'i':
		return slog.Int(f.key, f.num)
	case 'f':
		return slog.Float64(f.key, f.flt)
	}
	if !f.addr.IsValid() {
		return slog.String(f.key, "unknown")
	}
	return slog.String(f.key, f.addr.String())
}

func (f field) add(l *Line) {
	switch f.kind {
	case 's':
		l.Str(f.key, f.str)
	case 'S':
		l.Safe(f.key, f.str)
	case '2':
		l.Str2(f.key, f.str2[0], f.str2[1])
	case 'i':
		l.Int(f.key, f.num)
	case 'f':
		l.Float(f.key, f.flt)
	default:
		l.Addr(f.key, f.addr)
	}
}

// both writes one line through Line and through slog's JSON handler.
func both(t testing.TB, when time.Time, msg string, fields []field) (fast, slow string) {
	t.Helper()
	var a, b bytes.Buffer
	l := New(&a).Line(when, msg)
	attrs := make([]slog.Attr, len(fields))
	for i, f := range fields {
		f.add(l)
		attrs[i] = f.attr()
	}
	l.Write()
	r := slog.NewRecord(when, slog.LevelInfo, msg, 0)
	r.AddAttrs(attrs...)
	if err := slog.NewJSONHandler(&b, nil).Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return a.String(), b.String()
}

func TestLineMatchesSlog(t *testing.T) {
	when := time.Date(2026, 12, 1, 20, 1, 4, 123456789, time.UTC)
	hostile := []string{"", "plain", `"quoted"`, `back\slash`, "new\nline\r\t", "\x00\x01\x1f\x7f", "<script>&amp;",
		"bad \xff utf8 \xc3", "\u2028\u2029", "é ü 日本 🚀", "/a%20b/../c?x=1", strings.Repeat("x", 2000)}
	var cases [][]field
	for _, s := range hostile {
		cases = append(cases, []field{{key: "path", str: s, kind: 's'}, {key: "rule", str2: [2]string{"resource_policy: ", s}, kind: '2'}})
	}
	for _, n := range []int{0, 200, 403, -1, math.MaxInt64, math.MinInt64} {
		cases = append(cases, []field{{key: "status", num: n, kind: 'i'}})
	}
	for _, f := range []float64{0, 0.001, 0.012, 1.5, 12.345, 123456.789, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 1.5e300, -0.25, -1e-9} {
		cases = append(cases, []field{{key: "duration_ms", flt: f, kind: 'f'}})
	}
	for _, a := range []string{"192.0.2.1", "::1", "2001:db8::1", "::ffff:10.0.0.1", `fe80::1%eth0`, `fe80::1%a"b\c`, ""} {
		var ad netip.Addr
		if a != "" {
			ad = netip.MustParseAddr(a)
		}
		cases = append(cases, []field{{key: "client_ip", addr: ad, kind: 'a'}})
	}
	for _, tz := range []*time.Location{time.UTC, time.FixedZone("x", -5*3600-30*60)} {
		cases = append(cases, []field{{key: "time_zone", str: tz.String(), kind: 's'}})
		when := when.In(tz)
		fast, slow := both(t, when, "request", nil)
		if fast != slow {
			t.Errorf("zone %s:\nfast %s\nslog %s", tz, fast, slow)
		}
	}
	for _, fs := range cases {
		if fast, slow := both(t, when, "request", fs); fast != slow {
			t.Errorf("fast %s\nslog %s", fast, slow)
		}
	}
	if fast, slow := both(t, when.Add(-123456789), "odd \"msg\"", nil); fast != slow {
		t.Errorf("whole second / msg:\nfast %s\nslog %s", fast, slow)
	}
}

// FuzzLineMatchesSlog: any string, number and address spell the same as
// slog spells them.
func FuzzLineMatchesSlog(f *testing.F) {
	f.Add("/pets/1", int64(403), 0.012, "192.0.2.1")
	f.Add("6a1f3c2e-8d4b-4f0a-9c3e-2b7d5e1a0f9c !#$%&'()*+,-./:;<=>?@[]^_`{|}~", int64(200), 1.5, "::1")
	f.Add("\xff\u2028\"\\\n", int64(-1), 1e-7, "fe80::1%x")
	f.Fuzz(func(t *testing.T, s string, n int64, fl float64, ip string) {
		if math.IsInf(fl, 0) || math.IsNaN(fl) {
			return
		}
		a, _ := netip.ParseAddr(ip)
		fs := []field{{key: "path", str: s, kind: 's'}, {key: "status", num: int(n), kind: 'i'},
			{key: "duration_ms", flt: fl, kind: 'f'}, {key: "client_ip", addr: a, kind: 'a'}}
		if safe(s) { // Safe writes what Str would, for the strings it takes
			fs = append(fs, field{key: "request_id", str: s, kind: 'S'})
		}
		if fast, slow := both(t, time.Unix(1764619264, int64(n)%1e9).UTC(), s, fs); fast != slow {
			t.Errorf("fast %s\nslog %s", fast, slow)
		}
	})
}

// TestSharedLock: access lines and slog lines from many goroutines never
// interleave.
func TestSharedLock(t *testing.T) {
	var buf bytes.Buffer
	h := New(&buf)
	log := slog.New(h)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if g%2 == 0 {
					l := h.Line(time.Now(), "request")
					l.Str("path", strings.Repeat("p", 300))
					l.Int("i", i)
					l.Write()
				} else {
					log.Info("other", "path", strings.Repeat("q", 300), "i", i)
				}
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"time":"`) || !strings.HasSuffix(l, "}") || strings.Count(l, `"time"`) != 1 {
			t.Fatalf("torn line %q", l)
		}
	}
}

func BenchmarkLine(b *testing.B) {
	h := New(discard{})
	a := netip.MustParseAddr("140.82.112.5")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l := h.Line(now, "request")
		l.Safe("request_id", "6a1f3c2e-8d4b-4f0a-9c3e-2b7d5e1a0f9c")
		l.Str("method", "GET")
		l.Safe("path", "/forward")
		l.Str("route", "/forward")
		l.Int("status", 403)
		l.Safe("outcome", "key_rejected")
		l.Addr("client_ip", a)
		l.Float("duration_ms", 0.012)
		l.Safe("guard", "api_key")
		l.Write()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestTimeCache: one handler across seconds, zones and fractions spells
// every time as AppendFormat(RFC3339Nano) does.
func TestTimeCache(t *testing.T) {
	h := New(discard{})
	base := time.Date(2026, 12, 1, 23, 59, 59, 0, time.UTC)
	east := time.FixedZone("east", 5*3600+45*60)
	var times []time.Time
	for _, ns := range []int{0, 1, 10, 120000000, 123456789, 999999999, 500000000} {
		times = append(times, base.Add(time.Duration(ns)), base.Add(time.Second+time.Duration(ns)), base.Add(time.Duration(ns)).In(east), base.Add(time.Duration(ns)).Local())
	}
	times = append(times, time.Now(), time.Now(), base.AddDate(-2000, 0, 0))
	for _, tm := range times {
		got := string(h.appendTime(nil, tm))
		if want := tm.Format(time.RFC3339Nano); got != want {
			t.Errorf("%v: got %s, want %s", tm, got, want)
		}
	}
}

// syncBuf is a bytes.Buffer safe for the flush timer's goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func access(h *Handler, t time.Time, path string) {
	l := h.Line(t, "request")
	l.Str("path", path)
	l.Write()
}

// TestBuffered: spaced-out lines are written at once; lines within the
// delay of the last write wait for Flush or the timer, in order; any other
// log line writes the waiting ones first.
func TestBuffered(t *testing.T) {
	var out syncBuf
	h := NewBuffered(&out, time.Hour) // the timer never fires in this test
	t0 := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	access(h, t0, "/1")
	access(h, t0.Add(2*time.Hour), "/2")
	if got := strings.Count(out.String(), "\n"); got != 2 {
		t.Fatalf("spaced lines: %d written, want 2", got)
	}
	access(h, t0.Add(2*time.Hour+time.Second), "/3")
	access(h, t0.Add(2*time.Hour+2*time.Second), "/4")
	if strings.Contains(out.String(), "/3") {
		t.Fatalf("a line within the delay was written at once")
	}
	slog.New(h).Warn("other")
	access(h, t0.Add(2*time.Hour+3*time.Second), "/5")
	access(h, t0.Add(2*time.Hour+4*time.Second), "/6")
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		i := strings.Index(l, `"path":"`)
		if i < 0 {
			order = append(order, "other")
			continue
		}
		order = append(order, l[i+8:i+10])
	}
	if got := strings.Join(order, " "); got != "/1 /2 /3 /4 other /5 /6" {
		t.Errorf("order %s", got)
	}
}

// TestBufferedTimer: waiting lines are written by the timer without a
// Flush; the test polls, bounded, for the timer's goroutine.
func TestBufferedTimer(t *testing.T) {
	var out syncBuf
	h := NewBuffered(&out, time.Millisecond)
	now := time.Now()
	access(h, now, "/1")
	access(h, now, "/2")
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "/2"); {
		if time.Now().After(deadline) {
			t.Fatalf("the waiting line was never written: %q", out.String())
		}
		runtime.Gosched()
	}
}

// TestBufferedFull: waiting lines are written once they fill flushAt.
func TestBufferedFull(t *testing.T) {
	var out syncBuf
	h := NewBuffered(&out, time.Hour)
	now := time.Now()
	access(h, now, "/first")
	for range flushAt / 100 {
		access(h, now, strings.Repeat("x", 100))
	}
	if n := len(out.String()); n < flushAt {
		t.Errorf("%d bytes written after %d waiting, want ≥ %d", n, flushAt, flushAt)
	}
}

// TestMsMatchesFloat: Ms spells every duration as the float it stands
// for would be spelled (slog's float spelling), exhaustively for the first
// two seconds and at random beyond.
func TestMsMatchesFloat(t *testing.T) {
	h := New(discard{})
	check := func(us int64) {
		l := h.Line(time.Time{}, "")
		start := len(l.b)
		l.Ms("d", time.Duration(us)*time.Microsecond)
		got := string(l.b[start:])
		want := `,"d":` + string(appendFloat(nil, float64(us)/1000))
		if got != want {
			t.Fatalf("%d µs: got %s, want %s", us, got, want)
		}
	}
	for us := int64(0); us < 2_000_000; us++ {
		check(us)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		check(r.Int64N(1 << 41))
	}
	check(-1500)
	check(1<<40 + 1)
}

// TestPlain8: the 8-byte test agrees with the byte table for every byte
// at every position, and for pairs of bytes that could borrow.
func TestPlain8(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			b := []byte("abcdefgh")
			b[pos] = byte(c)
			if got, want := plain8(string(b)), !escape[c]; got != want {
				t.Fatalf("byte %#x at %d: plain8 %v, want %v", c, pos, got, want)
			}
		}
	}
	for c := range 256 {
		for d := range 256 {
			b := []byte{'x', byte(c), byte(d), 'y', 'z', 0x7f, ' ', '~'}
			if got, want := plain8(string(b)), !escape[c] && !escape[d]; got != want {
				t.Fatalf("bytes %#x %#x: plain8 %v, want %v", c, d, got, want)
			}
		}
	}
}
