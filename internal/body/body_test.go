package body

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// pattern returns n bytes that differ from position to position, so a
// misplaced chunk shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

// arrival hands out data in the read sizes sizes[i%len(sizes)] (0 is a
// read that returns nothing), then EOF, or end after the data. At
// every read it calls check with the bytes handed out so far.
type arrival struct {
	data  []byte
	sizes []int
	end   error // after the data: io.EOF unless set
	check func(received int)
	i, n  int
}

func (a *arrival) Read(p []byte) (int, error) {
	if a.check != nil {
		a.check(a.i)
	}
	if a.i >= len(a.data) {
		if a.end != nil {
			return 0, a.end
		}
		return 0, io.EOF
	}
	size := len(p)
	if len(a.sizes) > 0 {
		size = min(size, a.sizes[a.n%len(a.sizes)])
		a.n++
	}
	k := copy(p[:size], a.data[a.i:])
	a.i += k
	return k, nil
}

// heapAllocs is the bytes the process has allocated on the heap so far.
// ReadMemStats stops the world and flushes every P's allocation cache
// first, so small objects are counted when they are allocated, not when
// their span is next swapped out (runtime/metrics counts them then).
// Not safe for concurrent use: the stats are reused so that measuring
// allocates nothing.
func heapAllocs() uint64 {
	runtime.ReadMemStats(&memStats)
	return memStats.TotalAlloc
}

var memStats runtime.MemStats

// measureSlack is what heapAllocs may count beyond the reader's buffers:
// the list of filled buffers and the test's own bookkeeping.
const measureSlack = 64 << 10

func TestRead(t *testing.T) {
	const max = 10 << 20
	for _, tc := range []struct {
		name     string
		n        int   // bytes sent
		declared int64 // -1: chunked
		sizes    []int
		end      error
		want     error
		wantLen  int
	}{
		{"one byte", 1, 1, nil, nil, nil, 1},
		{"first buffer exactly", FirstBuffer, FirstBuffer, nil, nil, nil, FirstBuffer},
		{"one over the first buffer", FirstBuffer + 1, FirstBuffer + 1, nil, nil, nil, FirstBuffer + 1},
		{"several chunks", 3*Chunk + 17, 3*Chunk + 17, []int{1000, 1, 0, 40000}, nil, nil, 3*Chunk + 17},
		{"max", max, max, nil, nil, nil, max},
		{"chunked small", 10, -1, []int{3}, nil, nil, 10},
		{"chunked several chunks", 2*Chunk + 5, -1, []int{4096}, nil, nil, 2*Chunk + 5},
		{"chunked max", max, -1, nil, nil, nil, max},
		{"chunked over max", max + 1, -1, nil, nil, ErrTooLarge, 0},
		{"declared over max", 0, max + 1, nil, nil, ErrTooLarge, 0},
		{"short", 100, 5000, []int{7}, nil, io.ErrUnexpectedEOF, 0},
		{"short of a large declaration", 2 * Chunk, max, nil, nil, io.ErrUnexpectedEOF, 0},
		{"source error", 50_000, 60_000, nil, errTest, errTest, 0},
		{"declared less than sent", 100, 10, nil, nil, nil, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBudget(64 << 20)
			data := pattern(tc.n)
			src := &arrival{data: data, sizes: tc.sizes, end: tc.end}
			got, held, err := b.Read(src, tc.declared, max, time.Time{})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err != nil {
				if got != nil || held != 0 || b.Used() != 0 {
					t.Fatalf("after %v: body %d bytes, held %d, budget used %d; want all released", err, len(got), held, b.Used())
				}
				return
			}
			if !bytes.Equal(got, data[:tc.wantLen]) {
				t.Fatalf("body differs from what was sent (%d bytes, want %d)", len(got), tc.wantLen)
			}
			if held != int64(cap(got)) || b.Used() != held {
				t.Fatalf("held %d, cap %d, budget used %d: want all equal", held, cap(got), b.Used())
			}
			if len(got) > FirstBuffer && cap(got) != len(got) {
				t.Fatalf("joined body has cap %d for %d bytes", cap(got), len(got))
			}
			b.Release(held)
			if b.Used() != 0 {
				t.Fatalf("budget used %d after release", b.Used())
			}
		})
	}
}

var errTest = errors.New("connection reset")

// blocking sends its data, then blocks until released, then fails: a
// client that declared more than it sends.
type blocking struct {
	data    []byte
	i       int
	waiting chan struct{} // closed when it first blocks
	release chan struct{}
	once    sync.Once
}

func (s *blocking) Read(p []byte) (int, error) {
	if s.i < len(s.data) {
		k := copy(p, s.data[s.i:])
		s.i += k
		return k, nil
	}
	s.once.Do(func() { close(s.waiting) })
	<-s.release
	return 0, errTest
}

// TestHeaderOnlyFlood is the attack the budget exists for: 1,000
// requests declare 10 MiB and send nothing (or 100 bytes). The readers
// together hold 1,000 first buffers, about 4 MiB, where sizing buffers
// from the declared length held 10 GB.
func TestHeaderOnlyFlood(t *testing.T) {
	const n, declared = 1000, 10 << 20
	b := NewBudget(128 << 20)
	release := make(chan struct{})
	var wg sync.WaitGroup
	srcs := make([]*blocking, n)
	for i := range srcs {
		srcs[i] = &blocking{waiting: make(chan struct{}), release: release}
		if i%2 == 1 {
			srcs[i].data = pattern(100)
		}
	}
	runtime.GC()
	before := heapAllocs()
	returned := make(chan struct{}, n) // a Read that ended before its source blocked
	for _, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, held, err := b.Read(s, declared, declared, time.Time{})
			select {
			case <-s.waiting:
			default:
				returned <- struct{}{}
			}
			if !errors.Is(err, errTest) || held != 0 {
				t.Errorf("Read: held %d, err %v; want the source's error", held, err)
			}
		}()
	}
	for _, s := range srcs {
		select {
		case <-s.waiting:
		case <-returned:
		}
	}
	allocated := heapAllocs() - before
	used := b.Used()
	close(release)
	wg.Wait()
	t.Logf("%d requests declaring %d bytes: budget used %d, heap allocated %d", n, declared, used, allocated)
	if used != n*FirstBuffer {
		t.Errorf("budget used %d, want %d (one first buffer each)", used, n*FirstBuffer)
	}
	// Each goroutine's g and closure are on the heap too: 1 KiB each.
	if bound := uint64(n*FirstBuffer + n*1024 + measureSlack); allocated > bound {
		t.Errorf("heap allocated %d bytes while no request had sent more than 100 bytes; bound %d", allocated, bound)
	}
	if b.Used() != 0 {
		t.Errorf("budget used %d after every request failed", b.Used())
	}
}

// TestBudgetRefuses: a body that finds no room waits for a release and
// proceeds, or fails with ErrNoMemory once its wait or deadline is over.
func TestBudgetRefuses(t *testing.T) {
	b := NewBudget(3 * Chunk)
	body, held, err := b.Read(bytes.NewReader(pattern(Chunk)), Chunk, Chunk, time.Time{})
	if err != nil || len(body) != Chunk {
		t.Fatal(err)
	}
	// Large bodies may use 7/8 of 96 KiB = 84 KiB; 32 KiB are held, and
	// a second 32 KiB body needs 64 KiB while it is joined.
	if _, h, err := b.Read(bytes.NewReader(pattern(Chunk)), Chunk, Chunk, time.Now()); !errors.Is(err, ErrNoMemory) || h != 0 {
		t.Fatalf("second large body at its deadline: held %d, err %v; want ErrNoMemory", h, err)
	}
	if b.Used() != held {
		t.Fatalf("budget used %d after a refusal, want %d", b.Used(), held)
	}

	b.wait = time.Hour // the wait ends by the release below, not by time
	done := make(chan error)
	go func() {
		got, h, err := b.Read(bytes.NewReader(pattern(Chunk)), Chunk, Chunk, time.Time{})
		if err == nil && (len(got) != Chunk || h != held) {
			err = errors.New("wrong body")
		}
		done <- err
	}()
	for b.nwait.Load() == 0 {
		runtime.Gosched()
	}
	b.Release(held)
	if err := <-done; err != nil {
		t.Fatalf("waiting body after a release: %v", err)
	}

	b.wait = time.Millisecond
	start := time.Now()
	if _, _, err := b.Read(bytes.NewReader(pattern(Chunk)), Chunk, Chunk, time.Time{}); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("want ErrNoMemory after the wait, got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refusal took %v", d)
	}
}

// TestSmallBodiesKeepRoom: large bodies arriving slowly fill seven
// eighths of the budget and no more; small bodies are still read.
func TestSmallBodiesKeepRoom(t *testing.T) {
	const each = FirstBuffer + Chunk // a large body after Chunk bytes
	b := NewBudget(8 * each)
	b.wait = 0
	release := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	large := 0
	for {
		s := &blocking{data: pattern(Chunk), waiting: make(chan struct{}), release: release}
		errc := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := b.Read(s, 10*Chunk, 10*Chunk, time.Time{})
			errc <- err
		}()
		select {
		case <-s.waiting:
			large++
			continue
		case err := <-errc:
			if !errors.Is(err, ErrNoMemory) {
				t.Fatalf("large body %d: %v", large+1, err)
			}
		}
		break
	}
	if large != 7 || b.Used() != 7*each {
		t.Fatalf("%d large bodies hold %d of %d; want 7 holding seven eighths", large, b.Used(), b.Limit())
	}
	for i := range 8 {
		got, h, err := b.Read(bytes.NewReader(pattern(FirstBuffer)), FirstBuffer, 10*Chunk, time.Time{})
		if err != nil || len(got) != FirstBuffer {
			t.Fatalf("small body %d refused: %v", i+1, err)
		}
		defer b.Release(h)
	}
}

// fuzzing reports whether this process runs under -fuzz (the coordinator
// or a worker), where the fuzzing engine allocates beside the target
// (hundreds of KiB at times) and heap figures say nothing about the
// reader. There only the budget's count is checked; `go test` runs the
// seed corpus and every stored input with both.
func fuzzing() bool {
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		return true
	}
	f := flag.Lookup("test.fuzz")
	return f != nil && f.Value.String() != ""
}

// FuzzRead: for any body, declared length, limit and arrival pattern, the
// reader never holds more than the bytes received plus Slack while the
// body arrives (checked at every read, against the budget's count and the
// heap's), returns exactly the body or an error, and leaves the budget
// holding exactly what it returned.
func FuzzRead(f *testing.F) {
	f.Add(uint32(100), uint8(1), uint32(0), uint32(10<<20), []byte{255})
	f.Add(uint32(0), uint8(2), uint32(10<<20), uint32(10<<20), []byte{0})         // header only, 10 MiB declared
	f.Add(uint32(70_000), uint8(2), uint32(10<<20), uint32(10<<20), []byte{1, 2}) // slow, then stops
	f.Add(uint32(3*Chunk+1), uint8(0), uint32(0), uint32(3*Chunk), []byte{3})     // chunked, one over max
	f.Add(uint32(FirstBuffer+1), uint8(1), uint32(0), uint32(1<<20), []byte{6, 0, 4})
	f.Add(uint32(200_000), uint8(3), uint32(5), uint32(1<<20), []byte{7, 5})
	sizes := []int{0, 1, 7, 100, 4096, 5000, Chunk, 2 * Chunk}
	f.Fuzz(func(t *testing.T, n uint32, mode uint8, extra, max uint32, arrivals []byte) {
		n %= 300_000
		max %= 16 << 20
		extra %= 16 << 20
		data := pattern(int(n))
		var declared int64
		switch mode % 4 {
		case 0:
			declared = -1
		case 1:
			declared = int64(n)
		case 2:
			declared = int64(n) + int64(extra) // more than will come
		case 3:
			declared = int64(n) - min(int64(extra), int64(n)) // less than is sent
		}
		var rs []int
		for _, a := range arrivals {
			rs = append(rs, sizes[a%8])
		}
		rs = append(rs, 1) // a pattern of zero-length reads only would never end

		b := NewBudget(1 << 30)
		b.wait = 0
		var failure string
		measure := !fuzzing()
		var start uint64
		if measure {
			start = heapAllocs()
		}
		src := &arrival{data: data, sizes: rs, check: func(received int) {
			if used := b.Used(); failure == "" && used > int64(received)+Slack {
				failure = "budget"
				t.Errorf("holding %d bytes after receiving %d (declared %d)", used, received, declared)
			}
			if !measure || failure != "" {
				return
			}
			if a := heapAllocs() - start; a > uint64(received)+Slack+measureSlack {
				failure = "heap"
				t.Errorf("heap allocated %d bytes after receiving %d (declared %d)", a, received, declared)
			}
		}}
		got, held, err := b.Read(src, declared, int64(max), time.Time{})
		received := src.i
		if measure {
			if a := heapAllocs() - start; a > 2*uint64(received)+Slack+measureSlack {
				t.Errorf("heap allocated %d bytes in all for %d received (one copy allowed)", a, received)
			}
		}

		want := data
		switch {
		case declared > int64(max):
			if !errors.Is(err, ErrTooLarge) || received != 0 {
				t.Fatalf("declared %d over max %d: err %v after %d bytes, want ErrTooLarge before any", declared, max, err, received)
			}
		case declared < 0 && int64(n) > int64(max):
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("chunked %d bytes over max %d: err %v", n, max, err)
			}
		case declared > int64(n):
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("declared %d, sent %d: err %v", declared, n, err)
			}
		default:
			if err != nil {
				t.Fatalf("declared %d, sent %d, max %d: %v", declared, n, max, err)
			}
			if declared >= 0 {
				want = data[:declared]
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("body of %d bytes differs from the %d sent", len(got), len(want))
			}
		}
		if err != nil && (held != 0 || got != nil) {
			t.Fatalf("error %v but held %d", err, held)
		}
		if b.Used() != held || held != int64(cap(got)) {
			t.Fatalf("budget used %d, held %d, cap %d", b.Used(), held, cap(got))
		}
		if held > int64(len(got))+FirstBuffer {
			t.Fatalf("holds %d bytes for a %d-byte body", held, len(got))
		}
	})
}

// BenchmarkRead: a small body through the budget against the plain
// allocation the gateway made before (make of the declared length, then
// io.ReadFull): the budget's cost on the request path.
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{30, 2000} {
		data := pattern(n)
		src := bytes.NewReader(data)
		b.Run("budget/"+strconv.Itoa(n), func(b *testing.B) {
			budget := NewBudget(128 << 20)
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(data)
				_, held, err := budget.Read(src, int64(n), 10<<20, time.Time{})
				if err != nil {
					b.Fatal(err)
				}
				budget.Release(held)
			}
		})
		b.Run("make/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(data)
				if _, err := io.ReadFull(src, make([]byte, n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
