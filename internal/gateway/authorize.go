package gateway

import (
	"errors"
	"time"

	"github.com/drawbridge/drawbridge/internal/authorizer"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/policy"
)

// routeAuthz is a route's authorizer, compiled: the shared authorizer and
// what the route adds (scopes, authorizer_headers).
type routeAuthz struct {
	name    string
	az      authorizer.Authorizer
	route   *authorizer.Route
	arn     bool   // the authorizer reads the request's ARN (request authorizers)
	onError reason // answer of an authorizer that cannot decide
}

// compileAuthorizers builds the config's authorizers, once per Build:
// each keeps its keys or results for the life of this config.
func (g *Gateway) compileAuthorizers(cfg *config.Config, guard *egress.Guard) error {
	if len(cfg.Authorizers) == 0 {
		return nil
	}
	azs, err := authorizer.Compile(cfg, authorizer.Deps{Egress: guard, API: cfg.API, Stage: cfg.Stage,
		Region: cfg.AWS.Region, Account: cfg.AWS.AccountID, APIID: cfg.AWS.APIID})
	if err != nil {
		return err
	}
	g.authorizers = azs
	return nil
}

// routeAuthorizer is rc's authorizer, or nil.
func (g *Gateway) routeAuthorizer(rc *config.Route) *routeAuthz {
	az := g.authorizers[rc.Authorizer]
	if rc.Authorizer == "" || az == nil {
		return nil
	}
	ra := &routeAuthz{name: rc.Authorizer, az: az, route: authorizer.NewRoute(rc), onError: authorizerFailed}
	if r, ok := az.(*authorizer.RequestAuthorizer); ok {
		ra.arn = true
		if r.OnError() == 503 {
			ra.onError = unavailable
		}
	}
	return ra
}

// authorize is the authorizer step: after the resource policy and before
// the API key, as API Gateway orders them (docs/authorizers.md). On allow
// the route's authorizer_headers replace whatever the client sent under
// those names.
func (g *Gateway) authorize(c *call, now time.Time) verdict {
	ra := c.route.guards.authz
	if ra == nil {
		if c.dry {
			c.notef("route has no authorizer")
		}
		return skipped
	}
	if c.probe {
		c.undecided = true // an authorizer may call out or cache: serving decides
		return allowed
	}
	q := authorizer.Request{R: c.r, Client: c.client, Route: ra.route, Now: now, ID: c.id, Explain: c.dry}
	if ra.arn {
		q.MethodARN = policy.ARN(g.id.Region, g.id.Account, g.id.APIID, g.stage, c.r.Method, c.r.URL.Path)
	}
	d := ra.az.Authorize(q)
	if c.dry {
		c.notef("%s authorizer %q: %s", ra.az.Kind(), ra.name, d.Reason)
		if d.Cached {
			c.notef("cached result")
		}
	}
	if d.Outcome == authorizer.Allow {
		if !c.dry {
			for _, h := range ra.route.Headers {
				delete(c.r.Header, h.Header)
			}
			for _, h := range d.Headers {
				c.r.Header[h.Name] = []string{h.Value}
			}
		}
		return allowed
	}
	c.rule = "authorizer " + ra.name
	c.cause = errors.New(d.Reason)
	if d.Challenge != "" && !c.dry {
		c.w.Header()["Www-Authenticate"] = []string{d.Challenge}
	}
	switch d.Outcome {
	case authorizer.Unauthorized:
		return deny(unauthorized)
	case authorizer.Forbidden:
		return deny(forbidden)
	}
	return deny(ra.onError)
}

// authorizerReason reports the reasons only a route with an authorizer
// answers with.
func authorizerReason(rs reason) bool {
	return rs == unauthorized || rs == forbidden || rs == authorizerFailed
}
