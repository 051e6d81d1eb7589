// Package redis is the store driver that replicas and Lambda instances
// share: token buckets, quota counters and concurrency leases live in one
// Redis server, so limits are exact across any number of gateways. That
// server may be a primary found through sentinels or a Cluster, over TLS
// (connect.go; docs/redis.md says what a failover loses).
//
// Every Store call is one Lua script (or one command) in one round trip,
// atomic on the server; see docs/redis.md for the key layout and scripts.
//
// Time comes from the Redis server (TIME inside each script), not from the
// callers, so replicas whose clocks disagree still share one bucket refill,
// one lease expiry and one quota period boundary; the `now` arguments of
// the Store interface are ignored. Options.ClientClock switches to the
// caller's `now`, for tests that walk fixed instants.
//
// Failure policy: a call that Redis does not answer within Options.Timeout
// (down, slow, hung, out of memory) returns an error wrapping
// store.ErrUnavailable, never blocks longer, and is never retried: a
// script whose reply was lost may have run, and running it again would take
// twice. The client reconnects by itself once Redis is back. Whether a
// refused throttle fails open (state.on_error: open) is the gateway's
// decision, not the driver's.
package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/throttle"
)

// DefaultTimeout is the per-call budget when Options.Timeout is zero: far
// above a healthy Redis round trip (well under a millisecond on a LAN), far
// below any route timeout, so a request with its one or two store calls
// answers 503 long before its route gives up.
const DefaultTimeout = 100 * time.Millisecond

// DefaultPrefix is the key prefix when Options.Prefix is empty.
const DefaultPrefix = "drawbridge:"

// Options configure the driver. The zero value, with URL set, is the
// production setup.
type Options struct {
	// URL is the server: redis://[user:password@]host:port/db, rediss://
	// for TLS, redis+sentinel://h1:26379,h2:26379/MASTER[/db] or
	// redis+cluster://h1:6379,h2:6379 (see parseURL). Or set Sentinel or
	// Cluster instead: exactly one of the three.
	URL      string
	Sentinel *Sentinel
	Cluster  []string // host:port of any cluster nodes
	// TLS turns TLS on for every form (rediss:// does too, trusting the
	// system roots) and says what to trust.
	TLS *TLS
	// Username and Password, when set, replace the URL's (they come from
	// the environment, state.username_env and state.password_env).
	Username, Password string
	// WaitReplicas is how many replicas must have an enqueued delivery
	// before Enqueue returns (WAIT, in the same round trip); 0: none.
	WaitReplicas int
	// Prefix starts every key (state.prefix); empty means DefaultPrefix.
	Prefix string
	// Timeout is the budget of one call, dial included; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// ClientClock makes the scripts use the callers' `now` instead of the
	// Redis clock, and set no key expiry (Redis would expire keys by its own
	// clock). For tests that walk fixed instants; never for replicas.
	ClientClock bool
}

// Store is the redis driver. Create it with New.
type Store struct {
	c       goredis.UniversalClient
	form    topology
	name    string // Options.Describe: for errors, no password
	wait    int    // Options.WaitReplicas
	prefix  string
	timeout time.Duration
	client  bool // Options.ClientClock
	closed  atomic.Bool
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Admitter = (*Store)(nil)
)

// New makes a store for o. It does not contact the server: a gateway
// whose Redis is down at start still starts, answers 503 on guarded routes
// and reports not ready, and recovers when Redis comes up. What it can
// check without the network (the URL, the TLS files) is an error here;
// errors never hold a password.
func New(o Options) (*Store, error) {
	t, err := o.resolve()
	if err != nil {
		return nil, err
	}
	s := &Store{form: t.form, name: o.Describe(), wait: o.WaitReplicas, prefix: o.Prefix, timeout: o.Timeout, client: o.ClientClock}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.wait < 0 {
		return nil, errors.New("state.wait_replicas must not be negative")
	}
	sp := ""
	if o.Sentinel != nil {
		sp = o.Sentinel.Password
	}
	if s.c, err = t.client(s.timeout, o.TLS, sp); err != nil {
		return nil, err
	}
	return s, nil
}

// QuietClientLogs silences go-redis's own log lines (one per failed dial:
// while Redis is down, about one per guarded request). The driver's errors
// still reach the gateway, wrapped as store.ErrUnavailable with the cause.
// go-redis's logger is process-wide, so this is a function for main to call
// once, not an option of New.
func QuietClientLogs() { goredis.SetLogger(quiet{}) }

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// Keys. Every key starts with the prefix; the part in braces is the Redis
// Cluster hash tag. Buckets, quota counters and lease sets all share the
// tag {g} because one Admit touches the account, stage/route and API-key
// buckets, the key's quota counter and the stage's and route's lease sets
// of a request, and a Lua script may touch only one slot (one shard of a
// cluster holds all guard state; a standalone server is unaffected).

func (s *Store) bucketKey(k string) string { return s.prefix + "{g}:b:" + k }
func (s *Store) quotaKey(k string) string  { return s.prefix + "{g}:q:" + k }
func (s *Store) leaseKey(k string) string  { return s.prefix + "{g}:l:" + k }

// now is the first script argument: the caller's time in microseconds, or
// "" for the server's clock.
func (s *Store) now(t time.Time) any {
	if s.client {
		return t.UnixMicro()
	}
	return ""
}

// call bounds ctx by the per-call budget.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// fail wraps a Redis error: every failure to get an answer is
// ErrUnavailable to the guards, with the cause kept for the log. On a
// Cluster it also asks for the slot map again (in the background): after
// a failover the map names a dead primary until then, and go-redis's own
// periodic reload comes only every minute.
func (s *Store) fail(action string, err error) error {
	if cc, ok := s.c.(*goredis.ClusterClient); ok && !errors.Is(err, goredis.Nil) {
		cc.ReloadState(context.Background())
	}
	return fmt.Errorf("%s: %w: %w", action, store.ErrUnavailable, err)
}

// Take implements store.Store with one script over all buckets of bs.
func (s *Store) Take(ctx context.Context, now time.Time, n int64, bs []store.Bucket) (store.TakeResult, error) {
	if s.closed.Load() {
		return store.TakeResult{Denied: -1}, fmt.Errorf("take tokens: %w", store.ErrClosed)
	}
	if len(bs) == 0 {
		return store.TakeResult{OK: true, Denied: -1}, nil
	}
	keys := make([]string, len(bs))
	args := make([]any, 2, 2+2*len(bs))
	args[0], args[1] = s.now(now), n
	for i, b := range bs {
		keys[i] = s.bucketKey(b.Key)
		args = append(args, b.Rate, b.Burst)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	r, err := takeScript.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return store.TakeResult{Denied: -1}, s.fail("take tokens", err)
	}
	return takeResult(r, n, bs)
}

// takeResult decodes takeScript's reply: {1}, or {0, index, "tokens"}.
func takeResult(r []any, n int64, bs []store.Bucket) (store.TakeResult, error) {
	if len(r) == 1 && r[0] == int64(1) {
		return store.TakeResult{OK: true, Denied: -1}, nil
	}
	bad := fmt.Errorf("take tokens: %w: unexpected reply %v", store.ErrUnavailable, r)
	if len(r) != 3 {
		return store.TakeResult{Denied: -1}, bad
	}
	i, ok1 := r[1].(int64)
	ts, ok2 := r[2].(string)
	tokens, err := strconv.ParseFloat(ts, 64)
	if !ok1 || !ok2 || err != nil || i < 0 || int(i) >= len(bs) {
		return store.TakeResult{Denied: -1}, bad
	}
	b := bs[i]
	wait := throttle.Wait(tokens, throttle.Limit{Rate: b.Rate, Burst: b.Burst}, n)
	return store.TakeResult{OK: false, Denied: int(i), RetryAfter: wait}, nil
}

// Tokens implements store.Store.
func (s *Store) Tokens(ctx context.Context, now time.Time, b store.Bucket) (float64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("read tokens: %w", store.ErrClosed)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := tokensScript.Run(ctx, s.c, []string{s.bucketKey(b.Key)}, s.now(now), b.Rate, b.Burst).Text()
	if err != nil {
		return 0, s.fail("read tokens", err)
	}
	t, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("read tokens: %w: unexpected reply %q", store.ErrUnavailable, v)
	}
	return t, nil
}

// Count implements store.Store. With the server clock, a later q.Period
// starts only when the Redis clock has reached it (see countScript).
func (s *Store) Count(ctx context.Context, key string, q store.Quota) (store.QuotaResult, error) {
	if s.closed.Load() {
		return store.QuotaResult{}, fmt.Errorf("count quota: %w", store.ErrClosed)
	}
	server := "1"
	if s.client {
		server = ""
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := countScript.Run(ctx, s.c, []string{s.quotaKey(key)}, q.Period.Unix(), q.Limit, q.Offset, server).Int64Slice()
	if err != nil {
		return store.QuotaResult{}, s.fail("count quota", err)
	}
	if len(v) != 3 {
		return store.QuotaResult{}, fmt.Errorf("count quota: %w: unexpected reply %v", store.ErrUnavailable, v)
	}
	return store.QuotaResult{OK: v[0] == 1, Used: v[1], Limit: v[2]}, nil
}

// Usage implements store.Store: the counter's hash and the server clock in
// one pipelined round trip, then store.Counter.Peek, the arithmetic the
// embedded drivers use.
func (s *Store) Usage(ctx context.Context, key string, q store.Quota) (store.QuotaResult, error) {
	if s.closed.Load() {
		return store.QuotaResult{}, fmt.Errorf("read quota: %w", store.ErrClosed)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	p := s.c.Pipeline()
	h := p.HMGet(ctx, s.quotaKey(key), "period", "first", "used")
	var tm *goredis.TimeCmd
	if !s.client {
		tm = p.Time(ctx)
	}
	if _, err := p.Exec(ctx); err != nil {
		return store.QuotaResult{}, s.fail("read quota", err)
	}
	var c store.Counter
	if f := h.Val(); len(f) == 3 && f[0] != nil {
		c.Seen = true
		c.Period, c.First, c.Used = atoi(f[0]), atoi(f[1]), atoi(f[2])
	}
	if tm != nil && c.Seen && q.Period.Unix() > c.Period && tm.Val().Unix() < q.Period.Unix() {
		q.Period = time.Unix(c.Period, 0) // as countScript: not started on the server's clock
	}
	return c.Peek(q), nil
}

// atoi reads an integer hash field as HMGET returns it (a string).
func atoi(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// Acquire implements store.Store. Lease IDs are random 64-bit numbers, so
// replicas need no shared sequence and an ID from before a Redis restart
// cannot collide with a new lease (a collision among a key's live leases
// has odds of about 2^-64 per pair). limit <= 0 admits nothing.
func (s *Store) Acquire(ctx context.Context, key string, limit int64, ttl time.Duration, now time.Time) (store.Lease, bool, error) {
	if s.closed.Load() {
		return store.Lease{}, false, fmt.Errorf("acquire lease: %w", store.ErrClosed)
	}
	if limit <= 0 {
		return store.Lease{}, false, nil
	}
	id := leaseID()
	ttlUS := micros(ttl)
	ctx, cancel := s.call(ctx)
	defer cancel()
	k := s.leaseKey(key)
	ok, err := acquireScript.Run(ctx, s.c, []string{k}, s.now(now), limit, ttlUS, id).Int64()
	if err != nil {
		return store.Lease{}, false, s.fail("acquire lease", err)
	}
	if ok != 1 {
		return store.Lease{}, false, nil
	}
	return store.Lease{Key: key, ID: id}, true, nil
}

// leaseID is a random lease ID, never 0 (the "no lease" ID).
func leaseID() uint64 { return rand.Uint64() | 1<<63 }

// micros is a lease ttl as the scripts take it: µs, at least 1; 0 = none.
func micros(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return max(ttl.Microseconds(), 1)
}

// Admit implements store.Admitter with one script (admitScript) over all
// the request's keys: one round trip instead of Take, Count and Acquire.
// Lease IDs are drawn here, so the reply needs to carry none.
func (s *Store) Admit(ctx context.Context, now time.Time, r store.AdmitRequest) (store.AdmitResult, error) {
	res := store.AdmitResult{Take: store.TakeResult{Denied: -1}, Denied: -1}
	if s.closed.Load() {
		return res, fmt.Errorf("admit: %w", store.ErrClosed)
	}
	if len(r.Caps) > store.MaxCaps {
		return res, fmt.Errorf("admit: %d caps, at most %d", len(r.Caps), store.MaxCaps)
	}
	nk := len(r.Buckets) + len(r.Caps)
	hasQuota, server := "0", "1"
	if r.QuotaKey != "" {
		hasQuota = "1"
		nk++
	}
	if s.client {
		server = ""
	}
	keys := make([]string, 0, nk)
	args := make([]any, 10, 10+2*len(r.Buckets)+2*len(r.Caps))
	args[0], args[1], args[2], args[3] = s.now(now), r.N, len(r.Buckets), hasQuota
	args[4], args[5], args[6], args[7] = r.Quota.Period.Unix(), r.Quota.Limit, r.Quota.Offset, server
	args[8], args[9] = micros(r.LeaseTTL), len(r.Caps)
	for _, b := range r.Buckets {
		keys = append(keys, s.bucketKey(b.Key))
		args = append(args, b.Rate, b.Burst)
	}
	if r.QuotaKey != "" {
		keys = append(keys, s.quotaKey(r.QuotaKey))
	}
	var ids [store.MaxCaps]uint64
	for i, c := range r.Caps {
		ids[i] = leaseID()
		keys = append(keys, s.leaseKey(c.Key))
		args = append(args, c.Max, ids[i])
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	v, err := admitScript.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return res, s.fail("admit", err)
	}
	if len(v) != 6 {
		return res, badAdmit(v)
	}
	var n [6]int64
	for _, i := range []int{0, 1, 3, 4, 5} {
		var ok bool
		if n[i], ok = v[i].(int64); !ok {
			return res, badAdmit(v)
		}
	}
	res.Quota = store.QuotaResult{OK: n[3] == 1, Used: n[4], Limit: n[5]}
	switch stage := store.Stage(n[0]); stage {
	case store.Admitted:
		res.Take.OK = true
		for i, c := range r.Caps {
			res.Leases[i] = store.Lease{Key: c.Key, ID: ids[i]}
		}
	case store.Throttled:
		t, err := takeResult([]any{int64(0), v[1], v[2]}, r.N, r.Buckets)
		if err != nil {
			return store.AdmitResult{Take: store.TakeResult{Denied: -1}, Denied: -1}, badAdmit(v)
		}
		res.Refused, res.Take, res.Quota = stage, t, store.QuotaResult{}
	case store.OverQuota:
		res.Refused, res.Take.OK = stage, true
	case store.OverConcurrency:
		if n[1] < 0 || int(n[1]) >= len(r.Caps) {
			return res, badAdmit(v)
		}
		res.Refused, res.Take.OK, res.Denied = stage, true, int(n[1])
	default:
		return res, badAdmit(v)
	}
	return res, nil
}

// badAdmit is the error for a reply admitScript cannot have sent (built
// only then: the hot path allocates no error).
func badAdmit(v []any) error {
	return fmt.Errorf("admit: %w: unexpected reply %v", store.ErrUnavailable, v)
}

// Release implements store.Store with one ZREM, idempotent by nature. After
// Close it is a no-op. If Redis cannot be reached the lease stays until its
// ttl expires, which is why the gateway passes a ttl.
func (s *Store) Release(ctx context.Context, l store.Lease) error {
	if l.ID == 0 || s.closed.Load() {
		return nil
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.c.ZRem(ctx, s.leaseKey(l.Key), l.ID).Err(); err != nil {
		return s.fail("release lease", err)
	}
	return nil
}

// InUse implements store.Store.
func (s *Store) InUse(ctx context.Context, key string, now time.Time) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("read leases: %w", store.ErrClosed)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	n, err := inUseScript.Run(ctx, s.c, []string{s.leaseKey(key)}, s.now(now)).Int64()
	if err != nil {
		return 0, s.fail("read leases", err)
	}
	return n, nil
}

// Ready implements store.Store: a PING within the budget.
func (s *Store) Ready(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.c.Ping(ctx).Err(); err != nil {
		return s.fail("ping redis", err)
	}
	return nil
}

// Close implements store.Store: it closes the connections. Redis keeps the
// state for the other replicas. A second Close returns ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return store.ErrClosed
	}
	if err := s.c.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}
