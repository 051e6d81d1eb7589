package delivery

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// fakeClock is moved by hand; no test sleeps for a backoff.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openDB opens a fresh bbolt file; it is closed when the test ends.
func openDB(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "state.db")
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openQueue(t testing.TB, clock Clock) *Queue {
	t.Helper()
	q, err := Open(openDB(t, ""), Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// got is one request a recording backend received.
type got struct {
	Method, RequestURI string
	Header             http.Header
	Body               []byte
}

// target is a real loopback backend that records requests and answers
// with the handler of the moment (default 200).
type target struct {
	*httptest.Server
	mu     sync.Mutex
	seen   []got
	handle http.HandlerFunc
}

func newTarget(t *testing.T) *target {
	tg := &target{}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		tg.seen = append(tg.seen, got{r.Method, r.RequestURI, r.Header.Clone(), body})
		h := tg.handle
		tg.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) set(h http.HandlerFunc) {
	tg.mu.Lock()
	tg.handle = h
	tg.mu.Unlock()
}

func (tg *target) requests() []got {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]got(nil), tg.seen...)
}

func status(code int, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

func zeroRand(int64) int64 { return 0 }

func sample(route, url, key string) *Delivery {
	return &Delivery{
		Route:  route,
		Method: http.MethodPost,
		URL:    url,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Github-Delivery": {key}},
		Body:   []byte(`{"n":1}`),
		Key:    key,
	}
}
