package console

import (
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Failed sign-ins are limited per client network (docs/console.md,
// "Safety"), as fail2ban or a login throttle would: a token is 256 bits
// nobody guesses, but a guessing loop still costs a hash per try and a
// log line per failure, and an operator expects it stopped. Each network
// (an IPv4 address, an IPv6 /64, since one host has a /64 to rotate
// through) may fail lockoutBurst times, then once per lockoutEvery; while
// locked out, a request that presents a token (a bearer header or the
// login form) is answered 429 with Retry-After, whether the token is right
// or not, and is not logged. A signed-in session cookie still works.
const (
	lockoutBurst   = 10
	lockoutEvery   = 30 * time.Second
	lockoutClients = 4096 // networks remembered; beyond, fully recovered ones are forgotten first
)

type lockout struct {
	now func() time.Time
	log *slog.Logger

	mu   sync.Mutex
	nets map[netip.Prefix]*failures
}

// failures is a token bucket of allowed failures, refilled one per
// lockoutEvery: at is when it held left.
type failures struct {
	left float64
	at   time.Time
}

func newLockout(now func() time.Time, log *slog.Logger) *lockout {
	return &lockout{now: now, log: log, nets: map[netip.Prefix]*failures{}}
}

// network is the client network of remoteAddr (an invalid prefix when it
// has no address: such requests share one bucket).
func network(remoteAddr string) netip.Prefix {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// wait is how long remoteAddr's network must wait before it may present a
// token again (0: now).
func (l *lockout) wait(remoteAddr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.nets[network(remoteAddr)]
	if f == nil {
		return 0
	}
	l.refill(f)
	if f.left >= 1 {
		return 0
	}
	return time.Duration((1 - f.left) * float64(lockoutEvery))
}

// fail records a wrong token from remoteAddr. It logs the failure, or,
// once, that the network is now locked out.
func (l *lockout) fail(remoteAddr string) {
	p := network(remoteAddr)
	l.mu.Lock()
	f := l.nets[p]
	if f == nil {
		if len(l.nets) >= lockoutClients {
			l.forget()
		}
		f = &failures{left: lockoutBurst, at: l.now()}
		l.nets[p] = f
	}
	l.refill(f)
	f.left = max(f.left-1, 0)
	locked := f.left < 1
	l.mu.Unlock()
	if locked {
		l.log.Warn("console: sign-in locked out", "client", remoteAddr, "network", p.String(),
			"retry_after", strconv.Itoa(int(lockoutEvery/time.Second))+"s")
		return
	}
	l.log.Warn("console: sign-in refused", "client", remoteAddr)
}

func (l *lockout) refill(f *failures) {
	now := l.now()
	if d := now.Sub(f.at); d > 0 {
		f.left = min(f.left+float64(d)/float64(lockoutEvery), lockoutBurst)
	}
	f.at = now
}

// forget makes room: networks that have recovered fully go first, else
// any one.
func (l *lockout) forget() {
	for p, f := range l.nets {
		if l.refill(f); f.left >= lockoutBurst {
			delete(l.nets, p)
		}
	}
	if len(l.nets) < lockoutClients {
		return
	}
	for p := range l.nets {
		delete(l.nets, p)
		return
	}
}
