package metrics

import (
	"net/netip"
	"time"
)

// Event is one finished request as the console's in-process view keeps it
// (docs/console.md): the labels of drawbridge_requests_total plus what
// the access line says about a rejection. Every string is a configured
// name or a fixed one (route label, outcome, guard, key name), never
// request data, so a ring of Events holds no secret and no unbounded text.
type Event struct {
	At       time.Time
	Route    string // route label; NoRouteLabel when none matched
	Method   string
	Outcome  Outcome
	Guard    string     // the step that rejected ("" when none did)
	Client   netip.Addr // invalid when unknown
	Key      string     // the API key's name, never its value ("" when none)
	Upstream time.Duration
}

// Recorder receives every finished request, on the request path: it must
// be cheap and must not block (the console's is a fixed-size ring under a
// mutex).
type Recorder interface {
	Record(Event)
}
