package egress

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Target host names are resolved when a connection is dialed, not when the
// config is loaded: an AWS load balancer's addresses change over time, and a
// name that does not resolve from where `check` runs (a CI runner) may well
// resolve where drawbridge serves. Names caches the answers so that a burst
// of new connections costs one lookup, not one each.
//
// Go's resolver does not report a record's TTL, so an answer is kept for a
// short fixed time instead, shorter than the TTL of nearly every record
// worth following (AWS load balancers publish 60 s): NameTTL. A failed
// lookup is kept for NameFailTTL, so that a name that does not resolve
// costs at most one lookup a second however many requests are refused.
const (
	NameTTL     = 5 * time.Second
	NameFailTTL = time.Second
	// lookupTimeout bounds one lookup, whatever the dial's own deadline.
	lookupTimeout = 5 * time.Second
)

// Names resolves target host names at dial time and caches the answers
// (NameTTL, NameFailTTL). It is safe for concurrent use; one Names serves
// every route, every reload and the delivery worker of a process.
// Concurrent lookups of one name share a single query.
type Names struct {
	resolver *net.Resolver
	now      func() time.Time

	mu sync.Mutex
	m  map[string]*nameEntry
}

type nameEntry struct {
	done    chan struct{} // closed when addrs/err are set
	addrs   []netip.Addr  // unmapped, no zone
	err     error
	expires time.Time
}

// NewNames makes a cache over resolver (nil: net.DefaultResolver, which
// reads /etc/hosts as the system does) with now as its clock (nil:
// time.Now; tests inject one to expire answers without sleeping).
func NewNames(resolver *net.Resolver, now func() time.Time) *Names {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	if now == nil {
		now = time.Now
	}
	return &Names{resolver: resolver, now: now, m: map[string]*nameEntry{}}
}

// Lookup returns host's addresses, from the cache while the answer is
// fresh. The error of a failed lookup is a *net.DNSError as the resolver
// gave it (no such host, timeout, ...) or ctx's.
func (n *Names) Lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	key := canonicalName(host)
	n.mu.Lock()
	e := n.m[key]
	if e != nil {
		select {
		case <-e.done:
			if n.now().Before(e.expires) {
				n.mu.Unlock()
				return e.addrs, e.err
			}
			e = nil // stale: look up again
		default: // a lookup in flight: share it
		}
	}
	if e == nil {
		e = &nameEntry{done: make(chan struct{})}
		n.m[key] = e
		go n.resolve(key, e)
	}
	n.mu.Unlock()
	select {
	case <-e.done:
		return e.addrs, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// resolve runs one lookup for e. It does not use the dial's context: the
// answer is shared by every dial waiting for it, and one dial giving up
// must not fail the others.
func (n *Names) resolve(host string, e *nameEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	addrs, err := n.resolver.LookupNetIP(ctx, "ip", host)
	ttl := NameTTL
	if err == nil && len(addrs) == 0 {
		err = &net.DNSError{Err: "no addresses", Name: host}
	}
	if err != nil {
		addrs, ttl = nil, NameFailTTL
	}
	for i, a := range addrs {
		addrs[i] = a.WithZone("").Unmap()
	}
	n.mu.Lock()
	e.addrs, e.err, e.expires = addrs, err, n.now().Add(ttl)
	close(e.done)
	n.mu.Unlock()
}

// canonicalName is the form a host name is cached and followed under:
// DNS names are case-insensitive and "name." is "name".
func canonicalName(host string) string {
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// followKey is the context key under which Follow marks a dial.
type followKey struct{}

// Follow marks ctx as a dial to an address that the configured target
// name host resolved to at dial time (the forwarder calls it after
// Lookup). The guard allows such a dial without a rule when it follows
// that name (see Guard.ControlContext); otherwise the mark changes nothing.
func Follow(ctx context.Context, host string) context.Context {
	return context.WithValue(ctx, followKey{}, canonicalName(host))
}
