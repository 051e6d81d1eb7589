package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/drawbridge/drawbridge/internal/delivery"
)

// The deliveries API: what `drawbridge deliveries` does while serve holds
// the state file. Times travel as RFC 3339; the CLI turns "7d" or "1h"
// into an instant itself, so the server parses no durations. Headers are
// always redacted (delivery.Redact): secrets never leave the process.
//
//	GET  /deliveries?state=&route=&since=&before=&limit=  {"deliveries":[...]} (no bodies)
//	GET  /deliveries/counts                                {"pending":N,"delivered":N,"dead":N}
//	GET  /deliveries/{id}                                  one delivery, body base64
//	POST /deliveries/{id}/replay                           {"replayed":1}
//	POST /deliveries/replay?since=                         {"replayed":N} (dead ones)
//	POST /deliveries/purge?state=&older_than=              {"purged":N}
func deliveryRoutes(mux *http.ServeMux, ops delivery.Ops) {
	mux.HandleFunc("GET /deliveries", func(w http.ResponseWriter, r *http.Request) {
		f, err := filterOf(r.URL.Query())
		if err != nil {
			fail(w, err)
			return
		}
		ds, err := ops.List(f)
		if err != nil {
			fail(w, err)
			return
		}
		for _, d := range ds {
			d.Header = delivery.Redact(d.Header)
		}
		writeJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
	})
	mux.HandleFunc("GET /deliveries/counts", func(w http.ResponseWriter, r *http.Request) {
		c, err := ops.Counts()
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	})
	mux.HandleFunc("GET /deliveries/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, err := ops.Get(r.PathValue("id"))
		if err != nil {
			fail(w, err)
			return
		}
		d.Header = delivery.Redact(d.Header)
		writeJSON(w, http.StatusOK, d)
	})
	mux.HandleFunc("POST /deliveries/{id}/replay", func(w http.ResponseWriter, r *http.Request) {
		if err := ops.Replay(r.PathValue("id")); err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"replayed": 1})
	})
	mux.HandleFunc("POST /deliveries/replay", func(w http.ResponseWriter, r *http.Request) {
		since, err := timeParam(r.URL.Query(), "since")
		if err != nil {
			fail(w, err)
			return
		}
		n, err := ops.ReplayDead(since)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
	})
	mux.HandleFunc("POST /deliveries/purge", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		st, err := delivery.ParseState(q.Get("state"))
		if err != nil {
			fail(w, err)
			return
		}
		older, err := timeParam(q, "older_than")
		if err == nil && older.IsZero() {
			err = fmt.Errorf("%w: older_than is required", delivery.ErrInvalid)
		}
		if err != nil {
			fail(w, err)
			return
		}
		n, err := ops.Purge(st, older)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"purged": n})
	})
}

func filterOf(q url.Values) (delivery.Filter, error) {
	f := delivery.Filter{Route: q.Get("route"), Before: q.Get("before")}
	if s := q.Get("state"); s != "" {
		st, err := delivery.ParseState(s)
		if err != nil {
			return f, err
		}
		f.State = st
	}
	var err error
	if f.Since, err = timeParam(q, "since"); err != nil {
		return f, err
	}
	if s := q.Get("limit"); s != "" {
		if f.Limit, err = strconv.Atoi(s); err != nil {
			return f, fmt.Errorf("%w: limit must be an integer", delivery.ErrInvalid)
		}
	}
	return f, nil
}

func timeParam(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s must be an RFC 3339 time", delivery.ErrInvalid, name)
	}
	return t, nil
}

// fail maps the queue's errors to statuses; the message is the queue's
// own (ids, states: nothing secret).
func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, delivery.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, delivery.ErrInvalid):
		code = http.StatusBadRequest
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// Client is delivery.Ops over the admin API of a running serve.
type Client struct {
	Base string       // "http://127.0.0.1:9090"
	HTTP *http.Client // nil: a client with a 30s timeout
	// Token is sent as a bearer token when set: one of admin_auth's
	// (docs/console.md).
	Token string
}

var _ delivery.Ops = (*Client)(nil)

// ErrRemote is the error of a request the admin API refused; its text is
// the server's message.
type ErrRemote struct {
	Status int
	Msg    string
}

func (e *ErrRemote) Error() string { return e.Msg }

// Is lets errors.Is(err, delivery.ErrNotFound) work across the wire.
func (e *ErrRemote) Is(target error) bool {
	return target == delivery.ErrNotFound && e.Status == http.StatusNotFound ||
		target == delivery.ErrInvalid && e.Status == http.StatusBadRequest
}

func (c *Client) do(method, path string, q url.Values, out any) error {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	u := c.Base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("admin API: %s: %s", resp.Status, bytes.TrimSpace(body))
		}
		return &ErrRemote{Status: resp.StatusCode, Msg: e.Error}
	}
	return json.Unmarshal(body, out)
}

func timeValue(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// List implements delivery.Ops.
func (c *Client) List(f delivery.Filter) ([]*delivery.Delivery, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("state", string(f.State))
	set("route", f.Route)
	set("before", f.Before)
	if !f.Since.IsZero() {
		q.Set("since", timeValue(f.Since))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out struct{ Deliveries []*delivery.Delivery }
	err := c.do("GET", "/deliveries", q, &out)
	return out.Deliveries, err
}

// Get implements delivery.Ops.
func (c *Client) Get(id string) (*delivery.Delivery, error) {
	d := new(delivery.Delivery)
	if err := c.do("GET", "/deliveries/"+url.PathEscape(id), nil, d); err != nil {
		return nil, err
	}
	return d, nil
}

// Replay implements delivery.Ops.
func (c *Client) Replay(id string) error {
	var out map[string]int
	return c.do("POST", "/deliveries/"+url.PathEscape(id)+"/replay", nil, &out)
}

// ReplayDead implements delivery.Ops.
func (c *Client) ReplayDead(since time.Time) (int, error) {
	var out struct{ Replayed int }
	err := c.do("POST", "/deliveries/replay", url.Values{"since": {timeValue(since)}}, &out)
	return out.Replayed, err
}

// Purge implements delivery.Ops.
func (c *Client) Purge(state delivery.State, olderThan time.Time) (int, error) {
	var out struct{ Purged int }
	err := c.do("POST", "/deliveries/purge", url.Values{"state": {string(state)}, "older_than": {timeValue(olderThan)}}, &out)
	return out.Purged, err
}

// Counts implements delivery.Ops.
func (c *Client) Counts() (delivery.Counts, error) {
	var out delivery.Counts
	err := c.do("GET", "/deliveries/counts", nil, &out)
	return out, err
}
