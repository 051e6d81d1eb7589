package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Sentinel is a Sentinel deployment (Options.Sentinel).
type Sentinel struct {
	Master   string   // the name the sentinels monitor the primary under
	Addrs    []string // host:port of each sentinel
	Password string   // the sentinels' own password, if they require one
}

// TLS says what to trust when talking TLS to Redis: PEM files.
type TLS struct {
	CA         string // CA bundle; empty: the system roots
	Cert, Key  string // client certificate, both or neither
	ServerName string // name to verify; empty: the host dialled
}

// topology is how the driver reaches Redis.
type topology int

const (
	topoSingle   topology = iota // one server (redis:// or rediss://)
	topoSentinel                 // a primary found through sentinels
	topoCluster                  // a Redis Cluster
)

// target is what New connects to, parsed from Options.
type target struct {
	form     topology
	addrs    []string // Single: one
	master   string
	db       int
	user     string
	password string
	tls      bool
	// single holds ParseURL's options for the one-server forms; the
	// failure settings and TLS are set over them.
	single *goredis.Options
}

// parseURL reads the three URL forms. Errors never quote the URL: it may
// hold a password.
//
//	redis://[user:pw@]host:port[/db]   rediss:// for TLS, unix:// (go-redis's ParseURL)
//	redis+sentinel://[user:pw@]h1:26379,h2:26379/MASTER[/db]
//	redis+cluster://[user:pw@]h1:6379,h2:6379
//
// The password in a sentinel URL is the data nodes' (the primary and its
// replicas), as in redis-py and Celery; the sentinels' own is
// Sentinel.Password.
func parseURL(raw string) (target, error) {
	var t target
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return t, errors.New("state.url: want redis://, rediss://, redis+sentinel:// or redis+cluster://")
	}
	switch scheme {
	case "redis", "rediss", "unix":
		return parseSingle(raw, scheme, rest)
	case "redis+sentinel":
		t.form = topoSentinel
	case "redis+cluster":
		t.form = topoCluster
	default:
		return t, fmt.Errorf("state.url: scheme %q: want redis, rediss, unix, redis+sentinel or redis+cluster", scheme)
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		return t, errors.New("state.url: query and fragment are not read; use the state: keys (docs/redis.md)")
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		user := rest[:i]
		rest = rest[i+1:]
		t.user, t.password, _ = strings.Cut(user, ":") // user@ alone is a user name, as in ParseURL
	}
	hosts, path, _ := strings.Cut(rest, "/")
	for _, h := range strings.Split(hosts, ",") {
		if h == "" {
			continue
		}
		if strings.HasPrefix(h, "[") && !strings.Contains(h, "]") {
			return t, errors.New("state.url: missing ']' in host")
		}
		if _, port, ok := strings.Cut(h[strings.LastIndex(h, "]")+1:], ":"); !ok {
			// No port: Redis's own default, as go-redis's ParseURL.
			if t.form == topoSentinel {
				h += ":26379"
			} else {
				h += ":6379"
			}
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return t, fmt.Errorf("state.url: host %q: bad port", h)
		}
		t.addrs = append(t.addrs, h)
	}
	if len(t.addrs) == 0 {
		return t, errors.New("state.url: no host")
	}
	if t.form == topoSingle && len(t.addrs) > 1 {
		return t, errors.New("state.url: several hosts need redis+sentinel:// or redis+cluster://")
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	if t.form == topoSentinel {
		if len(parts) == 0 {
			return t, errors.New("state.url: redis+sentinel:// needs the master name: redis+sentinel://h1:26379,h2:26379/MASTER[/db]")
		}
		t.master, parts = parts[0], parts[1:]
	}
	if len(parts) > 1 {
		return t, errors.New("state.url: path: want /db")
	}
	if len(parts) == 1 {
		db, err := strconv.Atoi(parts[0])
		if err != nil || db < 0 {
			return t, fmt.Errorf("state.url: database %q is not a number", parts[0])
		}
		if t.form == topoCluster && db != 0 {
			return t, errors.New("state.url: a Redis Cluster has database 0 only")
		}
		t.db = db
	}
	return t, nil
}

// parseSingle reads the one-server forms as go-redis's ParseURL always
// has (query options such as ?pool_size=, unix:// sockets), after
// checking what ParseURL lets through: one host, a valid port. ParseURL's
// own errors quote the whole URL, password included: only what is wrong
// is kept.
func parseSingle(raw, scheme, rest string) (target, error) {
	if scheme != "unix" {
		hosts, _, _ := strings.Cut(rest[strings.LastIndex(rest, "@")+1:], "/")
		hosts, _, _ = strings.Cut(hosts, "?")
		if strings.Contains(hosts, ",") {
			return target{}, errors.New("state.url: several hosts need redis+sentinel:// or redis+cluster://")
		}
		if strings.HasPrefix(hosts, "[") && !strings.Contains(hosts, "]") {
			return target{}, errors.New("state.url: missing ']' in host")
		}
		if _, port, ok := strings.Cut(hosts[strings.LastIndex(hosts, "]")+1:], ":"); ok {
			if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				return target{}, fmt.Errorf("state.url: host %q: bad port", hosts)
			}
		}
	}
	ro, err := goredis.ParseURL(raw)
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return target{}, fmt.Errorf("state.url: %w", ue.Err)
	}
	if err != nil {
		return target{}, fmt.Errorf("state.url: %w", err)
	}
	return target{addrs: []string{ro.Addr}, db: ro.DB, user: ro.Username, password: ro.Password,
		tls: ro.TLSConfig != nil, single: ro}, nil
}

// RedactURL is u with its password replaced by "xxxxx", for messages that
// must name the state URL (url.URL.Redacted, for the multi-host forms
// net/url cannot parse).
func RedactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return "state.url"
	}
	i := strings.LastIndex(rest, "@")
	if i < 0 {
		return u
	}
	user, _, has := strings.Cut(rest[:i], ":")
	if !has {
		user = "" // hidden too: some clients read a lone user@ as the password
	}
	return scheme + "://" + user + ":xxxxx@" + rest[i+1:]
}

// Describe names what o connects to without any password: the redacted
// URL, or the form and addresses of the long forms.
func (o Options) Describe() string {
	switch {
	case o.Sentinel != nil:
		return strings.Join(o.Sentinel.Addrs, ",") + " (sentinel master " + o.Sentinel.Master + ")"
	case len(o.Cluster) > 0:
		return strings.Join(o.Cluster, ",") + " (cluster)"
	}
	return RedactURL(o.URL)
}

// String names what the store connects to, without any password
// (Options.Describe).
func (s *Store) String() string { return s.name }

// resolve turns o into one target: the URL or a long form (only one).
func (o Options) resolve() (target, error) {
	n := 0
	for _, set := range []bool{o.URL != "", o.Sentinel != nil, len(o.Cluster) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return target{}, errors.New("state: set exactly one of url, sentinel and cluster")
	}
	var t target
	switch {
	case o.Sentinel != nil:
		if o.Sentinel.Master == "" || len(o.Sentinel.Addrs) == 0 {
			return t, errors.New("state.sentinel needs master and addrs")
		}
		t = target{form: topoSentinel, master: o.Sentinel.Master, addrs: o.Sentinel.Addrs}
	case len(o.Cluster) > 0:
		t = target{form: topoCluster, addrs: o.Cluster}
	default:
		var err error
		if t, err = parseURL(o.URL); err != nil {
			return t, err
		}
	}
	if o.Username != "" {
		t.user = o.Username
	}
	if o.Password != "" {
		t.password = o.Password
	}
	if o.TLS != nil {
		t.tls = true
	}
	return t, nil
}

// tlsConfig builds the client's TLS settings; files are read now, so a
// missing or malformed one is an error at start.
// An empty ServerName verifies each node against the host it is dialled
// by (tls.DialWithDialer fills it in), which the multi-host forms need.
func tlsConfig(c *TLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c == nil {
		return cfg, nil
	}
	if c.ServerName != "" {
		cfg.ServerName = c.ServerName
	}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("state.tls.ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("state.tls.ca: %s holds no PEM certificate", c.CA)
		}
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, errors.New("state.tls: cert and key go together")
	}
	if c.Cert != "" {
		kp, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("state.tls: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}

// client builds the go-redis client for t. Every form gets the same
// failure settings: go-redis defaults wait up to 5 s per socket operation,
// retry three times and ignore context deadlines: a black-holed Redis
// would stall each request for tens of seconds, and a retried script whose
// reply was lost would apply twice.
func (t target) client(timeout time.Duration, tc *TLS, sentinelPassword string) (goredis.UniversalClient, error) {
	var tcfg *tls.Config
	if t.tls {
		var err error
		if tcfg, err = tlsConfig(tc); err != nil {
			return nil, err
		}
	}
	// go-redis's defaults wait up to 5 s per socket operation, retry three
	// times and ignore context deadlines
	// (docs/hardening.md#redis-calls-are-bounded-and-never-retried): a
	// black-holed Redis would stall each request for tens of seconds, and a
	// retried script whose reply was lost would apply twice. Every form
	// below gets the same bounds.
	//
	// Connection setup is HELLO only: no CLIENT SETINFO, no maintenance
	// push notifications (neither exists on Redis 7.0; the failover client
	// has no such option and asks for none).
	maint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch t.form {
	case topoSentinel:
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName: t.master, SentinelAddrs: t.addrs, SentinelPassword: sentinelPassword,
			Username: t.user, Password: t.password, DB: t.db, TLSConfig: tcfg,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout,
			ContextTimeoutEnabled: true, MaxRetries: -1, DialerRetries: 1,
			DisableIdentity: true,
		}), nil
	case topoCluster:
		// MaxRedirects stays at go-redis's 3: a MOVED or ASK reply means the
		// command did not run, so following it cannot apply a script twice.
		// The same loop re-sends once after a dropped connection (EOF),
		// which docs/redis.md counts among what a failover may cost.
		return goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs: t.addrs, Username: t.user, Password: t.password, TLSConfig: tcfg,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout,
			ContextTimeoutEnabled: true, MaxRetries: -1, DialerRetries: 1,
			DisableIdentity: true, MaintNotificationsConfig: maint,
		}), nil
	}
	o := &goredis.Options{Addr: t.addrs[0], DB: t.db}
	if t.single != nil {
		o = t.single
	}
	o.Username, o.Password, o.TLSConfig = t.user, t.password, tcfg
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = timeout, timeout, timeout, timeout
	o.ContextTimeoutEnabled = true
	o.MaxRetries = -1 // -1, not 0: zero means go-redis's default of 3
	o.DialerRetries = 1
	o.DisableIdentity = true
	o.MaintNotificationsConfig = maint
	return goredis.NewClient(o), nil
}

// Verify contacts Redis once and returns an error when it answers in a way
// no amount of waiting fixes: its TLS certificate is not trusted (wrong
// state.tls.ca or server_name), it is not TLS at all, it rejects the
// client certificate, or it refuses the password. A Redis that is merely
// down or slow is no error here: the gateway starts and answers 503 until
// it is back. The error names the state URL without its password.
func (s *Store) Verify(ctx context.Context) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	err := s.c.Ping(ctx).Err()
	if err == nil || !refused(err) {
		return nil
	}
	return fmt.Errorf("%s: %w", s.name, err)
}

// refused tells a wrong setting from an outage.
func refused(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
		rh tls.RecordHeaderError
		ae tls.AlertError
	)
	switch {
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci), errors.As(err, &rh), errors.As(err, &ae):
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "WRONGPASS") || strings.Contains(msg, "NOAUTH") || strings.Contains(msg, "invalid password")
}
