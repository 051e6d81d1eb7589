package delivery

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/forward"
)

// rawTarget answers every request on a loopback socket with reply's bytes
// and reports on closed when the worker dropped the connection.
func rawTarget(t *testing.T, reply string) (url string, closed chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	closed = make(chan struct{}, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				c.Write([]byte(reply))
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				var ne net.Error
				if _, err := br.ReadByte(); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
					closed <- struct{}{}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), closed
}

// TestWorkerFramingWatch: the worker's upstream connections carry the sync
// path's framing watch. A target answering with both Content-Length and
// Transfer-Encoding is an upstream error (no status, retried), not a 200,
// and its connection is dropped.
func TestWorkerFramingWatch(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	w := NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand})
	defer w.Close()
	url, closed := rawTarget(t, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
	id, _, err := q.Enqueue(ctx, sample("/hooks/*", url+"/h", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := w.RunOnce(ctx); n != 1 {
		t.Fatalf("attempts = %d, want 1", n)
	}
	d, _ := q.Get(id)
	if d.State != Pending || len(d.Attempts) != 1 || d.Attempts[0].Status != 0 || !strings.Contains(d.Attempts[0].Error, forward.ErrFraming.Error()) {
		t.Fatalf("after a CL+TE answer: state %s, attempts %+v; want pending with a framing error", d.State, d.Attempts)
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Error("upstream connection kept after invalid framing")
	}
}

// TestWorkerEgressDenied: the worker's dials pass the egress check as the
// sync path's do; a denied target sees nothing.
func TestWorkerEgressDenied(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	tg := newTarget(t)
	deny := egress.New(nil, egress.Options{}) // no rule: every dial denied
	w := NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand, Egress: deny})
	defer w.Close()
	id, _, _ := q.Enqueue(ctx, sample("/hooks/*", tg.URL+"/h", "k1"))
	w.RunOnce(ctx)
	if d, _ := q.Get(id); d.State != Pending || len(d.Attempts) != 1 || !strings.Contains(d.Attempts[0].Error, egress.ErrDenied.Error()) {
		t.Fatalf("denied delivery: %+v", d)
	}
	if n := len(tg.requests()); n != 0 {
		t.Errorf("target saw %d requests", n)
	}
}

// TestWorkerSendsThePlan: the worker sends the stored header as it is,
// with no Go User-Agent added when none was stored, and its own
// X-Drawbridge-Delivery in place of any X-Drawbridge-* stored before the
// gateway dropped clients' ones.
func TestWorkerSendsThePlan(t *testing.T) {
	clock := newClock()
	q := openQueue(t, clock)
	tg := newTarget(t)
	w := NewWorker(q, WorkerOptions{Clock: clock, Rand: zeroRand})
	defer w.Close()
	d := sample("/hooks/*", tg.URL+"/h", "k1")
	d.Header["X-Drawbridge-Delivery"] = []string{"forged"}
	d.Header["X_drawbridge_delivery"] = []string{"forged"}
	d.Header["X-Drawbridge-Other"] = []string{"forged"}
	d.Header["Te"] = []string{"trailers"}
	id, _, _ := q.Enqueue(ctx, d)
	w.RunOnce(context.Background())
	reqs := tg.requests()
	if len(reqs) != 1 {
		t.Fatalf("target saw %d requests", len(reqs))
	}
	h := reqs[0].Header
	if got := h["X-Drawbridge-Delivery"]; len(got) != 1 || got[0] != id {
		t.Errorf("X-Drawbridge-Delivery = %q, want [%s]", got, id)
	}
	for _, k := range []string{"X_drawbridge_delivery", "X-Drawbridge-Other", "User-Agent"} {
		if v, ok := h[k]; ok {
			t.Errorf("target got %s: %q", k, v)
		}
	}
	if h.Get("Te") != "trailers" || h.Get("Content-Type") != "application/json" {
		t.Errorf("target header %v", h)
	}
}
