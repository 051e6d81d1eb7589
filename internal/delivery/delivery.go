// Package delivery is drawbridge's durable store-and-forward for async
// webhook routes (docs/delivery.md): the gateway verifies a webhook and Enqueues
// it (committed and fsync'd before Enqueue returns, so a 202 is only sent
// for an event that survives kill -9), and a Worker delivers it to the
// route's target in the background with retries, dead letters and replay.
//
// # Guarantees
//
// Delivery is at-least-once. An accepted delivery is on disk before the
// gateway answers 202. Nothing is written before a send, only after it, so
// a delivery in flight when the process dies is still pending after restart
// and is sent again: the target may see it twice, with the same
// X-Drawbridge-Delivery id and the provider's own id header. Targets must be
// idempotent, as Svix, Stripe and GitHub ask of theirs. At most one
// duplicate per delivery in flight at the crash (the route's concurrency)
// can arise this way. An interrupted send is not counted as an attempt.
//
// # Idempotency
//
// Enqueue deduplicates on Delivery.Key (the provider's event id) within a
// route: a delivery whose key matches one still in the queue (pending,
// delivered or dead) is not stored again, and Enqueue returns the first
// delivery's id with duplicate = true, so the gateway answers the same 202.
// Purge forgets the keys of what it deletes.
//
// # Order and concurrency
//
// Each route has a delivery window, Policy.Concurrency (default 1): only the
// route's Concurrency oldest pending deliveries (in order of acceptance) are
// eligible, and at most Concurrency are in flight at once. With the default
// of 1 the target sees one request at a time in the order drawbridge
// accepted them, which is what a restarting backend wants (no stampede).
// The price is head-of-line blocking: while the oldest delivery is being
// retried, later ones wait behind it until it is delivered or
// dead-lettered. Routes never block each other.
//
// Ids are ULIDs: 26 characters of Crockford base32, 48 bits of milliseconds
// then 80 bits, random for the first id of a millisecond and incremented for
// the next, so string order is acceptance order.
//
// # Storage
//
// Queue keeps its own buckets in the gateway's bbolt state file (one file,
// one lock; see store/bolt's DB accessor).
package delivery

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// State is where a delivery is in its life.
type State string

// The three states. A delivery starts pending; a 2xx makes it delivered; a
// permanent failure or an exhausted retry policy makes it dead. Replay moves
// a delivered or dead delivery back to pending.
const (
	Pending   State = "pending"
	Delivered State = "delivered"
	Dead      State = "dead"
	// Coalesced: dropped, never attempted, because a newer delivery with
	// the same order key was accepted on a lane with coalesce: latest
	// (docs/delivery.md#order-and-coalescing). Replay sends it all the same.
	Coalesced State = "coalesced"
)

// ParseState accepts "pending", "delivered", "dead" or "coalesced".
func ParseState(s string) (State, error) {
	switch st := State(s); st {
	case Pending, Delivered, Dead, Coalesced:
		return st, nil
	}
	return "", fmt.Errorf("%w: state must be pending, delivered, dead or coalesced, not %q", ErrInvalid, s)
}

// Attempt is one try to hand a delivery to its target.
type Attempt struct {
	At       time.Time     `json:"at"`
	Status   int           `json:"status,omitempty"` // 0: no response
	Error    string        `json:"error,omitempty"`  // transport error or reason; never a secret
	Duration time.Duration `json:"duration_ns"`
}

// Delivery is one accepted webhook request and its delivery history.
type Delivery struct {
	ID     string `json:"id"`     // set by Enqueue
	Route  string `json:"route"`  // the configured route path; selects the policy
	Method string `json:"method"` // as received
	// URL is where the request goes: the route's target as configured
	// when the request was accepted, with the prefix route's rest and the
	// raw query byte-for-byte (docs/hardening.md#one-path-form).
	URL string `json:"url"`
	// Header is what the target receives (the gateway removed hop-by-hop
	// and protected headers and set X-Forwarded-*, as on a sync route).
	Header http.Header `json:"header"`
	// Body is the raw body as received and verified. Get fills it; List
	// leaves it nil (BodyBytes says how long it is).
	Body      []byte `json:"body,omitempty"`
	BodyBytes int    `json:"body_bytes"`
	// Key is the idempotency key (the provider's event id); "" is none.
	Key string `json:"key,omitempty"`
	// Via is the agent the route sent through when the request was
	// accepted (docs/agent.md); "": the worker dials URL itself.
	Via string `json:"via,omitempty"`
	// Trace is the W3C traceparent of the span that accepted the request
	// (tracing on, docs/tracing.md): each attempt is a trace of its own,
	// linked to it. "" when tracing was off; records written before the
	// field existed read as "".
	Trace string `json:"trace,omitempty"`
	// OrderKey is the lane's order_by value for this request: deliveries
	// of one key go one at a time, in acceptance order. Coalesce drops
	// the never-attempted ones a newer delivery of the key supersedes.
	OrderKey string `json:"order_key,omitempty"`
	Ordered  bool   `json:"ordered,omitempty"`
	Coalesce bool   `json:"coalesce,omitempty"`
	// Request is the id the sender got in its 202 when the request fanned
	// out to several targets (the first target's delivery id); "" for a
	// request with one delivery.
	Request string `json:"request,omitempty"`
	// Targets lists every delivery of the same request, this one included
	// (Get fills it for a fanned-out request; never stored).
	Targets []TargetState `json:"targets,omitempty"`

	State      State     `json:"state"`
	AcceptedAt time.Time `json:"accepted_at"`
	ReplayedAt time.Time `json:"replayed_at,omitzero"` // last Replay; restarts the retry budget
	NextAt     time.Time `json:"next_at,omitzero"`     // pending: not before
	DoneAt     time.Time `json:"done_at,omitzero"`     // when it became delivered or dead
	Attempts   []Attempt `json:"attempts,omitempty"`   // oldest first
}

// budgetStart is when the current retry budget began: acceptance, or the
// last replay.
func (d *Delivery) budgetStart() time.Time {
	if d.ReplayedAt.After(d.AcceptedAt) {
		return d.ReplayedAt
	}
	return d.AcceptedAt
}

// tries counts the attempts made since the budget started.
func (d *Delivery) tries() int {
	start := d.budgetStart()
	n := 0
	for _, a := range d.Attempts {
		if !a.At.Before(start) {
			n++
		}
	}
	return n
}

// TargetState is one target's delivery of a fanned-out request.
type TargetState struct {
	ID         string `json:"id"`
	Route      string `json:"route"` // the lane: path#target
	State      State  `json:"state"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"last_status,omitempty"`
}

// Filter selects deliveries for List. Zero fields select everything.
type Filter struct {
	State State     // "" = any
	Route string    // "" = any
	Since time.Time // accepted at or after
	// Before is a paging cursor: only ids strictly below it. List returns
	// newest first; pass the last id of a page to get the next.
	Before string
	Limit  int // 0 = DefaultListLimit; capped at MaxListLimit
}

// List limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

func (f Filter) limit() int {
	switch {
	case f.Limit <= 0:
		return DefaultListLimit
	case f.Limit > MaxListLimit:
		return MaxListLimit
	}
	return f.Limit
}

func (f Filter) match(d *Delivery) bool {
	return (f.State == "" || d.State == f.State) &&
		(f.Route == "" || d.Route == f.Route || strings.HasPrefix(d.Route, f.Route+"#")) &&
		(f.Since.IsZero() || !d.AcceptedAt.Before(f.Since))
}

// Counts are how many deliveries are in each state (the
// drawbridge_deliveries gauge).
type Counts struct {
	Pending   int `json:"pending"`
	Delivered int `json:"delivered"`
	Dead      int `json:"dead"`
	Coalesced int `json:"coalesced"`
}

// Sentinel errors.
var (
	// ErrNotFound: no delivery with that id (never accepted, or purged).
	ErrNotFound = errors.New("delivery not found")
	// ErrNotPending: an attempt finished for a delivery that is no longer
	// pending (purged or replayed meanwhile); its outcome is dropped.
	ErrNotPending = errors.New("delivery is not pending")
	// ErrInvalid: a malformed delivery, id, state or filter.
	ErrInvalid = errors.New("invalid delivery request")
)

// Ops are the operator's actions (`drawbridge deliveries`, README.md#commands),
// served by a Queue directly and, while serve runs, over the admin
// listener.
type Ops interface {
	// List returns deliveries matching f, newest first, without bodies.
	List(f Filter) ([]*Delivery, error)
	// Get returns one delivery, with its body.
	Get(id string) (*Delivery, error)
	// Replay moves a delivered or dead delivery back to pending, due now,
	// with a fresh retry budget (attempt history kept). Replaying a
	// pending delivery changes nothing.
	Replay(id string) error
	// ReplayDead replays every dead delivery that died at or after since,
	// and returns how many.
	ReplayDead(since time.Time) (int, error)
	// Purge deletes the deliveries in state (Delivered or Dead, never
	// Pending) that got there before olderThan, and returns how many.
	Purge(state State, olderThan time.Time) (int, error)
	// Counts returns how many deliveries are in each state.
	Counts() (Counts, error)
}

// Clock tells the time. Tests inject a fake one and move it by hand.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

// secretHeaders are shown as Redacted: credentials, and GitLab's
// X-Gitlab-Token, which is the shared secret itself rather than a
// signature. Signatures (HMACs) are not secrets and stay visible.
var secretHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true,
	"x-gitlab-token": true, "x-api-key": true,
}

// Redacted replaces a secret header value in Redact's output.
const Redacted = "[redacted]"

// Redact returns a copy of h fit to show an operator (`deliveries show`,
// the admin API): credential headers' values replaced by Redacted.
func Redact(h http.Header) http.Header {
	out := maps.Clone(h)
	for k, vs := range out {
		if secretHeaders[strings.ToLower(strings.ReplaceAll(k, "_", "-"))] {
			out[k] = slices.Repeat([]string{Redacted}, len(vs))
		}
	}
	return out
}

// MaxKeyBytes bounds an idempotency key, so a client cannot make the
// dedupe index key on a megabyte of header. A longer key is cut to its
// SHA-256 by the gateway.
const MaxKeyBytes = 256

func validate(d *Delivery) error {
	switch {
	case d.Route == "" || strings.IndexByte(d.Route, 0) >= 0:
		return errors.Join(ErrInvalid, errors.New("route missing or holds NUL"))
	case d.Method == "":
		return errors.Join(ErrInvalid, errors.New("method missing"))
	case !strings.HasPrefix(d.URL, "http://") && !strings.HasPrefix(d.URL, "https://"):
		return errors.Join(ErrInvalid, errors.New("url must be absolute http or https"))
	case len(d.Key) > MaxKeyBytes:
		return errors.Join(ErrInvalid, errors.New("key too long"))
	}
	return nil
}
