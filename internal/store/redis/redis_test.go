package redis_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

var ctx = context.Background()

// prefixes gives every store of a test run its own key space on one server.
var prefixes atomic.Int64

func newStore(t testing.TB, srv *redistest.Server, o redis.Options) *redis.Store {
	t.Helper()
	o.URL = srv.URL()
	if o.Prefix == "" {
		o.Prefix = "t" + strconv.FormatInt(prefixes.Add(1), 10) + ":"
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second // generous: -race on a loaded machine
	}
	s, err := redis.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformanceClientClock runs the conformance suite with the callers'
// clock: the scripts' arithmetic against the suite's fixed instants.
func TestConformanceClientClock(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	storetest.Run(t, func(t *testing.T) store.Store {
		return newStore(t, srv, redis.Options{ClientClock: true})
	})
}

// TestConformanceServerClock runs the same suite in the production mode,
// where every time comes from Redis: the server's clock is frozen through
// libfaketime and set to each call's `now` just before the call, so the
// suite's instants become the Redis clock (key expiries included).
func TestConformanceServerClock(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Frozen: storetest.T0})
	storetest.Run(t, func(t *testing.T) store.Store {
		return serverClock{newStore(t, srv, redis.Options{}), srv}
	})
}

// serverClock sets the frozen Redis clock to now before each call; for
// quota calls, which carry no time, to the start of the period counted (the
// caller's clock is in the period it passes).
type serverClock struct {
	*redis.Store
	srv *redistest.Server
}

func (s serverClock) Count(ctx context.Context, key string, q store.Quota) (store.QuotaResult, error) {
	s.srv.SetTime(q.Period)
	return s.Store.Count(ctx, key, q)
}

func (s serverClock) Usage(ctx context.Context, key string, q store.Quota) (store.QuotaResult, error) {
	s.srv.SetTime(q.Period)
	return s.Store.Usage(ctx, key, q)
}

func (s serverClock) Take(ctx context.Context, now time.Time, n int64, bs []store.Bucket) (store.TakeResult, error) {
	s.srv.SetTime(now)
	return s.Store.Take(ctx, now, n, bs)
}

func (s serverClock) Tokens(ctx context.Context, now time.Time, b store.Bucket) (float64, error) {
	s.srv.SetTime(now)
	return s.Store.Tokens(ctx, now, b)
}

func (s serverClock) Acquire(ctx context.Context, key string, max int64, ttl time.Duration, now time.Time) (store.Lease, bool, error) {
	s.srv.SetTime(now)
	return s.Store.Acquire(ctx, key, max, ttl, now)
}

func (s serverClock) Admit(ctx context.Context, now time.Time, r store.AdmitRequest) (store.AdmitResult, error) {
	s.srv.SetTime(now)
	return s.Store.Admit(ctx, now, r)
}

func (s serverClock) InUse(ctx context.Context, key string, now time.Time) (int64, error) {
	s.srv.SetTime(now)
	return s.Store.InUse(ctx, key, now)
}

func TestNewBadURL(t *testing.T) {
	if _, err := redis.New(redis.Options{URL: "http://x"}); err == nil {
		t.Fatal("New accepted a non-redis URL")
	}
}

// TestDownAtStart: New succeeds without a server; every call and Ready
// report ErrUnavailable within the budget.
func TestDownAtStart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	srv.Kill()
	s := newStore(t, srv, redis.Options{Timeout: faultBudget})
	start := time.Now()
	if err := s.Ready(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ready = %v, want ErrUnavailable", err)
	}
	if _, err := s.Take(ctx, time.Now(), 1, []store.Bucket{{Key: "b", Rate: 1, Burst: 1}}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Take = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*(faultBudget+faultSlack) {
		t.Fatalf("two calls to a dead server took %v, budget %v each", d, faultBudget)
	}
}

// TestTakeReplyDecoding: a reply the script never sends (a different
// script under the same SHA, a proxy mangling it) is an error, not a panic.
func TestTakeReplyDecoding(t *testing.T) {
	bs := []store.Bucket{{Key: "a", Rate: 1, Burst: 2}}
	for _, r := range [][]any{{}, {int64(0)}, {int64(0), int64(1), "0.5"}, {int64(0), int64(-1), "0.5"}, {int64(0), int64(0), "x"}, {int64(0), "0", "0.5"}} {
		if _, err := redis.TakeResult(r, 1, bs); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("reply %v: err %v, want ErrUnavailable", r, err)
		}
	}
	if got, err := redis.TakeResult([]any{int64(0), int64(0), "0.5"}, 1, bs); err != nil || got.OK || got.Denied != 0 || got.RetryAfter != 500*time.Millisecond {
		t.Errorf("refusal = %+v, %v", got, err)
	}
}
