package tunnel

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"

	"github.com/drawbridge/drawbridge/internal/config"
)

// Options tune an Edge. The zero value is usable.
type Options struct {
	Log *slog.Logger // nil: discard
	// Registerer gets the drawbridge_agent* collectors. Nil: none.
	Registerer prometheus.Registerer
	// HelloTimeout bounds the TLS handshake and the hello together.
	// Zero: 10s.
	HelloTimeout time.Duration
	// PingEvery is how often each tunnel is pinged (its RTT, and a dead
	// peer found); a ping unanswered within PingTimeout closes the
	// tunnel. Zero: 10s and 5s.
	PingEvery, PingTimeout time.Duration
	// MaxHeaderBytes bounds the response headers an agent may send (the
	// public listener's limits.max_header_bytes). Zero: 64 KiB.
	MaxHeaderBytes int
}

// Edge accepts agents and sends requests through them.
type Edge struct {
	opts  Options
	log   *slog.Logger
	creds atomic.Pointer[credentials]
	h2    *http2.Transport
	m     *edgeMetrics

	mu      sync.Mutex
	byName  map[string][]*tunnel  // connected, by agent name
	stats   map[string]*nameStats // totals since start, by agent name (snapshot.go)
	lns     []net.Listener
	closed  bool
	nextID  atomic.Uint64
	rotate  atomic.Uint32 // spreads ties between equally loaded tunnels
	handles sync.WaitGroup
}

// tunnel is one connected agent connection.
type tunnel struct {
	id       uint64
	name     string
	cred     string // which credential admitted it (credentials.keys)
	remote   string
	cc       *http2.ClientConn
	conn     net.Conn
	inflight atomic.Int64
	gone     chan struct{} // closed when the connection is
	since    time.Time     // when it was registered
	requests atomic.Uint64 // streams opened on it
	rtt      atomic.Int64  // last PING round trip, ns; 0: none yet
}

// credentials are the agents: block's tokens, compiled.
type credentials struct {
	tokens map[string][][32]byte      // name -> SHA-256 of each accepted token
	cas    map[string][]caCred        // name -> CAs of accepted client certificates
	keys   map[string]map[string]bool // name -> credential keys, for a reload's revocation
}

type caCred struct {
	pool *x509.CertPool
	key  string
}

// New makes an Edge with no credentials; call SetCredentials before Serve.
func New(opts Options) *Edge {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.HelloTimeout <= 0 {
		opts.HelloTimeout = 10 * time.Second
	}
	if opts.PingEvery <= 0 {
		opts.PingEvery = 10 * time.Second
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 5 * time.Second
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = 64 << 10
	}
	e := &Edge{opts: opts, log: opts.Log, byName: map[string][]*tunnel{}, stats: map[string]*nameStats{}, m: newEdgeMetrics(opts.Registerer)}
	e.h2 = &http2.Transport{
		// What the client sent (Accept-Encoding included) goes to the
		// target as it is, and its answer comes back encoded as it was.
		DisableCompression: true,
		// Wait for a stream slot rather than open one the agent refuses.
		StrictMaxConcurrentStreams: true,
		MaxHeaderListSize:          uint32(opts.MaxHeaderBytes),
	}
	e.creds.Store(&credentials{})
	return e
}

// SetCredentials installs the agents: block's credentials (at start and
// on every reload). A connected tunnel whose credential is no longer
// listed for its name is closed: that is how a token is revoked.
func (e *Edge) SetCredentials(a *config.Agents) error {
	c := &credentials{tokens: map[string][][32]byte{}, cas: map[string][]caCred{}, keys: map[string]map[string]bool{}}
	if a != nil {
		for _, t := range a.Tokens {
			if c.keys[t.Name] == nil {
				c.keys[t.Name] = map[string]bool{}
			}
			if t.ClientCA == "" {
				c.tokens[t.Name] = append(c.tokens[t.Name], t.Digest)
				c.keys[t.Name][fmt.Sprintf("sha256:%x", t.Digest)] = true
				continue
			}
			pem, err := os.ReadFile(t.ClientCA)
			if err != nil {
				return fmt.Errorf("line %d: agents.tokens %q: client_ca: %w", t.Line, t.Name, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("line %d: agents.tokens %q: client_ca %s holds no PEM certificate", t.Line, t.Name, t.ClientCA)
			}
			key := fmt.Sprintf("ca:%x", sha256.Sum256(pem))
			c.cas[t.Name] = append(c.cas[t.Name], caCred{pool, key})
			c.keys[t.Name][key] = true
		}
	}
	e.creds.Store(c)
	e.mu.Lock()
	var revoked []*tunnel
	for _, ts := range e.byName {
		for _, t := range ts {
			if !c.keys[t.name][t.cred] {
				revoked = append(revoked, t)
			}
		}
	}
	e.mu.Unlock()
	for _, t := range revoked {
		e.log.Warn("agent credential revoked: closing its tunnel", "agent", t.name, "tunnel", t.id, "remote", t.remote)
		t.conn.Close()
	}
	return nil
}

// Serve accepts agents on ln, TLS with conf, until ln is closed (Close).
// conf must not ask for HTTP/2 by ALPN: the hello is HTTP/1.1.
func (e *Edge) Serve(ln net.Listener, conf *tls.Config) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	e.lns = append(e.lns, ln)
	e.mu.Unlock()
	conf = conf.Clone()
	conf.NextProtos = []string{"http/1.1"}
	// TLS 1.3 only: the agent's HTTP/2 server would otherwise refuse
	// TLS 1.2 cipher suites HTTP/2 forbids, and both ends are drawbridge.
	conf.MinVersion = tls.VersionTLS13
	if e.hasCAs() && conf.ClientAuth == tls.NoClientCert {
		// Asked for, checked per name in authenticate.
		conf.ClientAuth = tls.RequestClientCert
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		e.handles.Add(1)
		go func() {
			defer e.handles.Done()
			e.accept(c, conf)
		}()
	}
}

func (e *Edge) hasCAs() bool { return len(e.creds.Load().cas) > 0 }

// unauthorized is the hello's refusal, the same for every reason.
const unauthorized = "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 26\r\nConnection: close\r\n\r\n{\"message\":\"Unauthorized\"}"

// accept runs one connection's TLS handshake and hello, and registers it.
func (e *Edge) accept(raw net.Conn, conf *tls.Config) {
	remote := raw.RemoteAddr().String()
	refuse := func(reason string, attrs ...any) {
		e.m.refused.WithLabelValues(reason).Inc()
		e.log.Warn("agent refused", append([]any{"remote", remote, "reason", reason}, attrs...)...)
		raw.Close()
	}
	raw.SetDeadline(time.Now().Add(e.opts.HelloTimeout))
	tc := tls.Server(raw, conf)
	if err := tc.Handshake(); err != nil {
		refuse("tls", "error", err.Error())
		return
	}
	// The hello is small: a reader that cannot hold more keeps an
	// unauthenticated peer from making the edge buffer anything.
	lr := &io.LimitedReader{R: tc, N: 8 << 10}
	br := bufio.NewReaderSize(lr, 4<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		refuse("hello", "error", err.Error())
		return
	}
	name := req.Header.Get(NameHeader)
	if len(name) > 64 {
		// No configured name is longer; the log gets a bounded prefix of
		// what an untrusted peer sent.
		refuse("hello", "agent", name[:64])
		return
	}
	if req.Method != http.MethodGet || req.URL.Path != HelloPath || req.Header.Get("Upgrade") != Upgrade || br.Buffered() > 0 {
		refuse("hello", "agent", name)
		return
	}
	cred, ok := e.authenticate(name, req.Header.Get("Authorization"), tc.ConnectionState())
	if !ok {
		io.WriteString(tc, unauthorized)
		refuse("credential", "agent", name)
		return
	}
	if _, err := io.WriteString(tc, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+Upgrade+"\r\n\r\n"); err != nil {
		refuse("hello", "agent", name, "error", err.Error())
		return
	}
	raw.SetDeadline(time.Time{})
	t := &tunnel{id: e.nextID.Add(1), name: name, cred: cred, remote: remote, gone: make(chan struct{})}
	t.conn = &watchedConn{Conn: newBatchConn(tc), gone: t.gone}
	cc, err := e.h2.NewClientConn(t.conn)
	if err != nil {
		t.conn.Close()
		refuse("http2", "agent", name, "error", err.Error())
		return
	}
	t.cc = cc
	if !e.register(t) {
		cc.Close()
		return
	}
	e.log.Info("agent connected", "agent", name, "tunnel", t.id, "remote", remote)
	e.watch(t)
}

// authenticate checks a hello's credential for name: a bearer token whose
// SHA-256 matches one of name's, compared in constant time, or a client
// certificate that one of name's CAs signed with name as its Common Name.
// It returns the key of the credential that matched.
func (e *Edge) authenticate(name, authz string, cs tls.ConnectionState) (string, bool) {
	c := e.creds.Load()
	if token, ok := strings.CutPrefix(authz, "Bearer "); ok && token != "" {
		d := sha256.Sum256([]byte(token))
		match := -1
		for i, want := range c.tokens[name] {
			if subtle.ConstantTimeCompare(d[:], want[:]) == 1 {
				match = i
			}
		}
		if match < 0 {
			return "", false
		}
		return fmt.Sprintf("sha256:%x", c.tokens[name][match]), true
	}
	if authz != "" || len(cs.PeerCertificates) == 0 {
		return "", false
	}
	leaf := cs.PeerCertificates[0]
	if leaf.Subject.CommonName != name {
		return "", false
	}
	inter := x509.NewCertPool()
	for _, ic := range cs.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	for _, ca := range c.cas[name] {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			return ca.key, true
		}
	}
	return "", false
}

func (e *Edge) register(t *tunnel) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || !e.creds.Load().keys[t.name][t.cred] {
		return false // closing, or revoked while the hello ran
	}
	t.since = time.Now()
	e.statsLocked(t.name).connects.Add(1)
	e.byName[t.name] = append(e.byName[t.name], t)
	e.m.tunnels.WithLabelValues(t.name).Set(float64(len(e.byName[t.name])))
	e.m.connects.WithLabelValues(t.name).Inc()
	return true
}

// watch pings t until its connection ends, then unregisters it.
func (e *Edge) watch(t *tunnel) {
	tick := time.NewTicker(e.opts.PingEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.gone:
			e.unregister(t, "connection closed")
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), e.opts.PingTimeout)
			t0 := time.Now()
			err := t.cc.Ping(ctx)
			cancel()
			if err != nil {
				t.conn.Close()
				<-t.gone
				e.unregister(t, "ping: "+err.Error())
				return
			}
			rtt := time.Since(t0)
			t.rtt.Store(int64(rtt))
			e.m.rtt.WithLabelValues(t.name).Set(rtt.Seconds())
		}
	}
}

func (e *Edge) unregister(t *tunnel, why string) {
	t.cc.Close()
	e.mu.Lock()
	ts := e.byName[t.name]
	for i, x := range ts {
		if x == t {
			ts = append(ts[:i:i], ts[i+1:]...)
			break
		}
	}
	if len(ts) == 0 {
		delete(e.byName, t.name)
	} else {
		e.byName[t.name] = ts
	}
	e.m.tunnels.WithLabelValues(t.name).Set(float64(len(ts)))
	e.mu.Unlock()
	e.log.Info("agent disconnected", "agent", t.name, "tunnel", t.id, "remote", t.remote, "reason", why)
}

// Connected is how many tunnels of name are connected.
func (e *Edge) Connected(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.byName[name])
}

// Close stops accepting and closes every tunnel.
func (e *Edge) Close() {
	e.mu.Lock()
	e.closed = true
	lns := e.lns
	var all []*tunnel
	for _, ts := range e.byName {
		all = append(all, ts...)
	}
	e.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for _, t := range all {
		t.conn.Close()
	}
	e.handles.Wait()
}

// pick is the connected tunnel of name with the fewest streams in flight,
// skipping those in tried.
func (e *Edge) pick(name string, tried []*tunnel) *tunnel {
	e.mu.Lock()
	defer e.mu.Unlock()
	ts := e.byName[name]
	n := len(ts)
	if n == 0 {
		return nil
	}
	start := int(e.rotate.Add(1) % uint32(n))
	var best *tunnel
	for i := range n {
		t := ts[(start+i)%n]
		if contains(tried, t) || !t.cc.CanTakeNewRequest() {
			continue
		}
		if best == nil || t.inflight.Load() < best.inflight.Load() {
			best = t
		}
	}
	return best
}

func contains(ts []*tunnel, t *tunnel) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// watchedConn closes gone when the connection fails or is closed, which
// is how the registry learns that a tunnel ended (ClientConn has no
// callback for it).
type watchedConn struct {
	net.Conn
	gone chan struct{}
	once sync.Once
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.once.Do(func() { close(c.gone) })
	}
	return n, err
}

func (c *watchedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.gone) })
	return err
}
