package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/prometheus/client_golang/prometheus"
	bbolt "go.etcd.io/bbolt"
)

// TestDeliveriesAPI: the Client over the admin API behaves as the Queue
// it fronts, with headers redacted and errors mapped back to the queue's
// sentinels.
func TestDeliveriesAPI(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "s.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := delivery.Open(db, delivery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }))
	defer target.Close()
	id, _, err := q.Enqueue(context.Background(), &delivery.Delivery{
		Route: "/hooks", Method: "POST", URL: target.URL + "/x",
		Header: http.Header{"Cookie": {"session=s3cret"}, "X-Gitlab-Token": {"tok3n"}, "X-Hub-Signature-256": {"sha256=ab"}},
		Body:   []byte("payload"),
	})
	if err != nil {
		t.Fatal(err)
	}
	delivery.NewWorker(q, delivery.WorkerOptions{}).RunOnce(context.Background()) // 404: dead
	srv := httptest.NewServer(Handler(prometheus.NewRegistry(), func(context.Context) error { return nil }, q))
	defer srv.Close()
	c := &Client{Base: srv.URL}

	ds, err := c.List(delivery.Filter{State: delivery.Dead})
	if err != nil || len(ds) != 1 || ds[0].ID != id || ds[0].Body != nil {
		t.Fatalf("List = %v, %v", ds, err)
	}
	d, err := c.Get(id)
	if err != nil || string(d.Body) != "payload" || len(d.Attempts) != 1 || d.Attempts[0].Status != 404 {
		t.Fatalf("Get = %+v, %v", d, err)
	}
	for _, h := range []string{"Cookie", "X-Gitlab-Token"} {
		if d.Header.Get(h) != delivery.Redacted || ds[0].Header.Get(h) != delivery.Redacted {
			t.Errorf("%s not redacted: %v", h, d.Header[h])
		}
	}
	if d.Header.Get("X-Hub-Signature-256") != "sha256=ab" {
		t.Errorf("signature header changed: %v", d.Header)
	}
	if cnt, err := c.Counts(); err != nil || cnt != (delivery.Counts{Dead: 1}) {
		t.Errorf("Counts = %+v, %v", cnt, err)
	}
	if n, err := c.ReplayDead(time.Now().Add(-time.Hour)); err != nil || n != 1 {
		t.Errorf("ReplayDead = %d, %v", n, err)
	}
	if err := c.Replay(id); err != nil {
		t.Errorf("Replay = %v", err)
	}
	if n, err := c.Purge(delivery.Dead, time.Now()); err != nil || n != 0 {
		t.Errorf("Purge = %d, %v (the delivery is pending again)", n, err)
	}

	if _, err := c.Get("01ARZ3NDEKTSV4RRFFQ69G5FAV"); !errors.Is(err, delivery.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := c.Get("junk"); !errors.Is(err, delivery.ErrInvalid) {
		t.Errorf("junk id: %v", err)
	}
	if _, err := c.Purge(delivery.Pending, time.Now()); !errors.Is(err, delivery.ErrInvalid) {
		t.Errorf("purge pending: %v", err)
	}
	if _, err := c.List(delivery.Filter{State: "lost"}); err == nil || !strings.Contains(err.Error(), "state must be") {
		t.Errorf("bad state: %v", err)
	}

	// Without a queue the routes are not there.
	bare := httptest.NewServer(Handler(prometheus.NewRegistry(), func(context.Context) error { return nil }, nil))
	defer bare.Close()
	if _, err := (&Client{Base: bare.URL}).Counts(); err == nil {
		t.Error("deliveries API served without a queue")
	}
}
