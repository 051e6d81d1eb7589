package tunnel

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// Writes on a tunnel are handed to one writer goroutine per connection,
// which sends everything handed to it while its previous write was under
// way in one write (one TLS record, one system call). HTTP/2 flushes its
// buffer once per request on the edge (the HEADERS of each new stream)
// and once per batch of frames on the agent, each time from a new
// goroutine: written directly, every one of those flushes costs a TLS
// record, a system call and the growth of a fresh goroutine's stack
// through the TLS writer, for a few dozen bytes. Under load the hand-off
// gathers many flushes into one write; alone, a write costs one goroutine
// switch more.
//
// Write returns once its bytes are queued; a write error is returned by
// the Write after it (and closes the connection, so the HTTP/2 reader
// sees it at once). Close sends what is queued first, for at most
// closeFlush.

const (
	// maxQueued bounds the queue (besides the batch being written): a
	// Write that would queue more waits, as a write to a full socket does.
	maxQueued = 128 << 10
	// keepBuf is the largest buffer kept while the writer is idle; a
	// larger one (a burst of body data) serves the batches that follow
	// at once, and is left to the garbage collector after.
	keepBuf = 64 << 10
	// closeFlush bounds how long Close waits for queued bytes to leave.
	closeFlush = 500 * time.Millisecond
)

type batchWriter struct {
	c net.Conn

	mu      sync.Mutex
	cond    sync.Cond // signals writing or queue changes, to Write and Close
	queue   []byte    // written by Write, not yet handed to c
	spare   []byte    // the buffer of the last batch, for the next queue
	writing bool      // the writer goroutine holds a batch
	err     error     // the first write error, returned by every later Write
	closed  bool
	kick    chan struct{} // wakes the writer goroutine; closed by Close
}

func newBatchWriter(c net.Conn) *batchWriter {
	w := &batchWriter{c: c, kick: make(chan struct{}, 1)}
	w.cond.L = &w.mu
	go w.run()
	return w
}

func (w *batchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.err == nil && !w.closed && len(w.queue) > 0 && len(w.queue)+len(p) > maxQueued {
		w.cond.Wait()
	}
	switch {
	case w.err != nil:
		return 0, w.err
	case w.closed:
		return 0, net.ErrClosed
	}
	if w.queue == nil {
		w.queue = w.spare[:0]
		w.spare = nil
	}
	w.queue = append(w.queue, p...)
	if !w.writing {
		w.writing = true
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// run writes each batch the queue holds until Close.
func (w *batchWriter) run() {
	for range w.kick {
		for {
			// The goroutines ready to run now (other requests on their
			// way to this tunnel) go first and add to the batch; alone,
			// this returns at once.
			runtime.Gosched()
			w.mu.Lock()
			b := w.queue
			if len(b) == 0 || w.err != nil {
				w.writing = false
				if cap(w.spare) > keepBuf {
					w.spare = nil // idle: a burst's buffer is not kept
				}
				w.cond.Broadcast()
				w.mu.Unlock()
				break
			}
			w.queue = nil
			w.cond.Broadcast() // the queue has room again
			w.mu.Unlock()

			_, err := w.c.Write(b)

			w.mu.Lock()
			w.spare = b[:0]
			if err != nil && w.err == nil {
				w.err = err
				w.queue = nil
			}
			w.cond.Broadcast()
			w.mu.Unlock()
			if err != nil {
				w.c.Close() // the reader learns of it now, not at the next write
			}
		}
	}
}

// Close sends what is queued (for at most closeFlush), then closes the
// connection.
func (w *batchWriter) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		if w.writing || len(w.queue) > 0 {
			w.c.SetWriteDeadline(time.Now().Add(closeFlush))
			for w.writing && w.err == nil {
				w.cond.Wait()
			}
		}
		close(w.kick)
	}
	w.mu.Unlock()
	return w.c.Close()
}

// batchConn is a connection whose writes go through a batchWriter.
type batchConn struct {
	net.Conn
	w *batchWriter
}

func newBatchConn(c net.Conn) *batchConn { return &batchConn{Conn: c, w: newBatchWriter(c)} }

func (c *batchConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *batchConn) Close() error                { return c.w.Close() }
