package redis_test

import (
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// TestSentinelFailover: a store that found the primary through three
// sentinels keeps working after the primary is SIGKILLed: calls fail
// while no primary is reachable, then succeed on the promoted replica
// with no new Store. An enqueue with WaitReplicas 1 is on the replica
// before it returns, so the failover keeps it.
func TestSentinelFailover(t *testing.T) {
	ss := redistest.StartSentinel(t, redistest.Options{})
	s, err := redis.New(redis.Options{URL: ss.URL(), Prefix: "s:", WaitReplicas: 1, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admit := func() error {
		_, err := s.Admit(ctx, time.Now(), store.AdmitRequest{N: 1, Buckets: []store.Bucket{{Key: "fo", Rate: 1e6, Burst: 1e6}}})
		return err
	}
	if err := admit(); err != nil {
		t.Fatal(err)
	}
	q := s.Queue("hooks", redis.QueueOptions{})
	const before = 20
	for i := range before {
		if _, _, err := q.Enqueue(ctx, "", []byte{byte(i)}); err != nil {
			t.Fatalf("enqueue %d with a replica up: %v", i, err)
		}
	}
	ss.Primary.Kill()
	killed := time.Now()
	var recovered time.Time
	failures := 0
	for time.Since(killed) < 15*time.Second {
		if err := admit(); err != nil {
			failures++
		} else if failures > 0 {
			recovered = time.Now()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if failures == 0 || recovered.IsZero() {
		t.Fatalf("failures %d, recovered %v", failures, recovered)
	}
	if got := ss.PrimaryAddr(); got != ss.Replica.Addr {
		t.Errorf("sentinels name %s as primary, want the replica %s", got, ss.Replica.Addr)
	}
	t.Logf("primary killed: calls failed for %v (%d failures), then succeeded on %s", recovered.Sub(killed).Round(time.Millisecond), failures, ss.Replica.Addr)
	if n, err := q.Pending(ctx); err != nil || n != before {
		t.Errorf("after the failover the stream holds %d, %v; want all %d acknowledged before", n, err, before)
	}
	// The new primary has no replica now: WAIT 1 cannot be met, and the
	// enqueue says so instead of acknowledging a write a second failover
	// would lose.
	if _, _, err := q.Enqueue(ctx, "", []byte("alone")); err == nil {
		t.Error("enqueue with no replica left and WaitReplicas 1: nil error")
	}
}
