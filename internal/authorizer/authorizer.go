// Package authorizer decides whether a request may reach its route, as an
// API Gateway authorizer does (docs/authorizers.md): a JWT authorizer
// verifies a bearer token against its issuer's published keys (HTTP API's
// JWT authorizer), a request authorizer asks an HTTP service with an API
// Gateway authorizer event (a Lambda authorizer's contract, forward-auth).
//
// It returns verdicts and never writes a response: the gateway owns the
// answers. Every fetch (discovery, JWKS, the authorizer call) dials through
// the egress guard, with a short timeout, so an authorizer cannot be used
// to reach what the gateway may not.
package authorizer

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
)

// Outcome is an authorizer's decision.
type Outcome uint8

const (
	// Allow lets the request go on.
	Allow Outcome = iota
	// Unauthorized is a missing or invalid credential: 401.
	Unauthorized
	// Forbidden is a valid credential without the right (a scope, the
	// authorizer's deny): 403.
	Forbidden
	// Failed is an authorizer that could not decide (down, timed out,
	// answered nonsense): the authorizer's on_error status.
	Failed
)

// Decision is an authorizer's verdict on one request.
type Decision struct {
	Outcome Outcome
	// Reason says why, for the log and explain; never sent to the client.
	Reason string
	// Challenge is the WWW-Authenticate value of a JWT authorizer's 401 or
	// 403 (RFC 6750 section 3); empty for request authorizers.
	Challenge string
	// Cached reports a request authorizer's result taken from its cache.
	Cached bool
	// Headers are the route's authorizer_headers with their values, to
	// set on the request before it is forwarded (Allow only). A header
	// whose claim or context key is absent is not in the list: the
	// gateway removes every configured name first, so a client cannot
	// supply it.
	Headers []Header
}

// Header is one header for the target.
type Header struct{ Name, Value string }

// Route is what a route adds to its authorizer: the scopes it requires
// and the headers it wants filled.
type Route struct {
	Path   string   // the configured route path, for routeKey and ARNs
	Scopes []string // jwt: the token needs one of these (none: any token)
	// Headers maps a canonical header name to a claim (jwt) or a context
	// key (request), sorted by header name.
	Headers []HeaderFrom
}

// HeaderFrom is one authorizer_headers entry.
type HeaderFrom struct{ Header, From string }

// NewRoute compiles a route's authorizer settings.
func NewRoute(rc *config.Route) *Route {
	r := &Route{Path: rc.Path, Scopes: rc.Scopes}
	for h, from := range rc.AuthorizerHeaders {
		r.Headers = append(r.Headers, HeaderFrom{Header: textproto.CanonicalMIMEHeaderKey(h), From: from})
	}
	slices.SortFunc(r.Headers, func(a, b HeaderFrom) int {
		if a.Header < b.Header {
			return -1
		}
		if a.Header > b.Header {
			return 1
		}
		return 0
	})
	return r
}

// Request is one request as an authorizer sees it.
type Request struct {
	R         *http.Request
	Client    netip.Addr // the client address the gateway resolved
	Route     *Route
	Now       time.Time // the guards' clock
	ID        string    // the request id
	MethodARN string    // execute-api ARN of this request, for the event and IAM policies
	// Explain asks for an allowing Decision's Reason too (a refusal
	// always has one): explain prints it, serving does not pay for it.
	Explain bool
}

// Authorizer is a compiled authorizer.
type Authorizer interface {
	// Authorize decides; q is passed by value so that the call through
	// the interface does not move it to the heap.
	Authorize(q Request) Decision
	// Kind is "jwt" or "request", for explain and the log.
	Kind() string
	// Close releases idle connections; call it on the authorizers of a
	// config a reload replaced.
	Close()
}

// Deps are what authorizers need from outside the config.
type Deps struct {
	// Egress checks every dial (nil: none, for tests only).
	Egress *egress.Guard
	// API is the flavour whose event shape a request authorizer receives.
	API config.API
	// Stage, Account, APIID and Region name the event's ARNs and context.
	Stage, Region, Account, APIID string
}

// Compile builds every authorizer of cfg, by name. Errors are FILE:LINE.
func Compile(cfg *config.Config, deps Deps) (map[string]Authorizer, error) {
	out := make(map[string]Authorizer, len(cfg.Authorizers))
	for name, a := range cfg.Authorizers {
		var (
			az  Authorizer
			err error
		)
		switch a.Type {
		case config.AuthorizerJWT:
			az, err = NewJWT(a, newClient(deps.Egress, jwksTimeout))
		case config.AuthorizerRequest:
			az, err = NewRequest(a, newClient(deps.Egress, time.Duration(a.Timeout)), deps)
		default:
			err = fmt.Errorf("type %q", a.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: authorizers.%s: %w", cfg.File, a.Line, name, err)
		}
		out[name] = az
	}
	return out, nil
}
