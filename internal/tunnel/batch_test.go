package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestBatchWriterKeepsEveryWrite: concurrent writers' bytes all arrive,
// each write whole and in its writer's order, and Close sends what is
// still queued before it closes.
func TestBatchWriterKeepsEveryWrite(t *testing.T) {
	a, b := net.Pipe()
	w := newBatchConn(a)
	got := make(chan []byte)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if _, err := fmt.Fprintf(w, "<%d:%03d>", g, i); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	all := <-got
	next := make([]int, 8)
	for len(all) > 0 {
		var g, i int
		if _, err := fmt.Sscanf(string(all[:7]), "<%d:%03d>", &g, &i); err != nil {
			t.Fatalf("torn write at %q", all[:min(len(all), 20)])
		}
		if i != next[g] {
			t.Fatalf("writer %d: write %d came after %d", g, i, next[g]-1)
		}
		next[g]++
		all = all[7:]
	}
	for g, n := range next {
		if n != 200 {
			t.Errorf("writer %d: %d of 200 writes arrived", g, n)
		}
	}
}

// TestBatchWriterBounded: a peer that reads nothing makes Write wait once
// maxQueued bytes are queued, rather than the queue growing; Close then
// gives up within closeFlush and closes the connection.
func TestBatchWriterBounded(t *testing.T) {
	a, b := net.Pipe() // unbuffered: nothing leaves until b reads
	defer b.Close()
	w := newBatchConn(a)
	chunk := bytes.Repeat([]byte("x"), 16<<10)
	wrote := make(chan int, 1)
	go func() {
		n := 0
		// One batch in the writer's hands, maxQueued in the queue, and
		// more that must wait.
		for range 3 * maxQueued / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				break
			}
			n += len(chunk)
		}
		wrote <- n
	}()
	queued := 0
	for deadline := time.Now().Add(5 * time.Second); queued+len(chunk) <= maxQueued; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d bytes queued", queued)
		}
		time.Sleep(time.Millisecond)
		w.w.mu.Lock()
		queued = len(w.w.queue)
		w.w.mu.Unlock()
	}
	if queued > maxQueued {
		t.Fatalf("%d bytes queued for a peer that reads nothing, want at most %d", queued, maxQueued)
	}
	select {
	case n := <-wrote:
		t.Fatalf("all %d bytes accepted for a peer that reads nothing", n)
	default:
	}
	t0 := time.Now()
	w.Close()
	if d := time.Since(t0); d > closeFlush+time.Second {
		t.Errorf("Close took %v with a stuck peer", d)
	}
	<-wrote // the blocked Write returned
}

// TestBatchWriterError: a failed write is returned by the next Write and
// closes the connection, so that its reader (HTTP/2's) learns of it at
// once rather than at the next write.
func TestBatchWriterError(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	w := newBatchConn(failingWrites{a})
	w.Write([]byte("lost"))
	read := make(chan error, 1)
	go func() {
		_, err := w.Read(make([]byte, 1)) // nothing comes: only a close ends it
		read <- err
	}()
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("read returned data")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a write error did not close the connection")
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, errWrite) {
		t.Fatalf("Write after a failed write: %v", err)
	}
	w.Close()
}

var errWrite = errors.New("write failed")

type failingWrites struct{ net.Conn }

func (failingWrites) Write([]byte) (int, error) { return 0, errWrite }
