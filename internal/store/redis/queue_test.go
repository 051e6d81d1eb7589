package redis_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

func newQueue(t *testing.T, s *redis.Store, o redis.QueueOptions) *redis.Queue {
	return s.Queue("hooks", o)
}

// TestQueueDeliversOnce: two healthy workers share the stream; every entry
// is handed to exactly one of them.
func TestQueueDeliversOnce(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := newStore(t, srv, redis.Options{})
	producer := newQueue(t, s, redis.QueueOptions{})
	const total = 300
	want := make(map[string]bool, total)
	for i := 0; i < total; i++ {
		id, dup, err := producer.Enqueue(ctx, fmt.Sprintf("d%d", i), []byte(fmt.Sprintf("body %d", i)))
		if err != nil || dup {
			t.Fatalf("enqueue %d: %v %v", i, dup, err)
		}
		want[id] = true
	}
	var mu sync.Mutex
	got := make(map[string]int)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		q := newQueue(t, s, redis.QueueOptions{Consumer: fmt.Sprintf("w%d", w)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < total; round++ {
				ms, err := q.Claim(ctx, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ms) == 0 {
					return
				}
				mu.Lock()
				for _, m := range ms {
					got[m.ID]++
					if m.Deliveries != 1 || !strings.HasPrefix(string(m.Body), "body ") {
						t.Errorf("message %+v", m)
					}
				}
				mu.Unlock()
				ids := make([]string, len(ms))
				for i, m := range ms {
					ids[i] = m.ID
				}
				if err := q.Ack(ctx, ids...); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for id := range want {
		if got[id] != 1 {
			t.Errorf("entry %s delivered %d times", id, got[id])
		}
	}
	if len(got) != total {
		t.Errorf("delivered %d distinct entries, want %d", len(got), total)
	}
	if n, _ := producer.Pending(ctx); n != 0 {
		t.Errorf("Pending after all acked = %d", n)
	}
}

// TestQueueDedupe: a repeated idempotency key returns the first entry,
// until the key's TTL passes on the Redis clock.
func TestQueueDedupe(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv := redistest.Start(t, redistest.Options{Frozen: t0})
	q := newQueue(t, newStore(t, srv, redis.Options{}), redis.QueueOptions{DedupeTTL: time.Hour})
	first, dup, err := q.Enqueue(ctx, "gh-1", []byte("a"))
	if err != nil || dup {
		t.Fatal(dup, err)
	}
	if id, dup, _ := q.Enqueue(ctx, "gh-1", []byte("a again")); id != first || !dup {
		t.Errorf("repeat = %s %v, want %s duplicate", id, dup, first)
	}
	ms, _ := q.Claim(ctx, 10)
	q.Ack(ctx, ms[0].ID)
	if id, dup, _ := q.Enqueue(ctx, "gh-1", []byte("a after delivery")); id != first || !dup {
		t.Errorf("repeat after delivery = %s %v, want the first again", id, dup)
	}
	a, _, _ := q.Enqueue(ctx, "", []byte("no key"))
	b, _, _ := q.Enqueue(ctx, "", []byte("no key"))
	if a == b {
		t.Error("entries without a key were deduplicated")
	}
	srv.SetTime(t0.Add(time.Hour + time.Millisecond))
	if id, dup, _ := q.Enqueue(ctx, "gh-1", []byte("a next day")); id == first || dup {
		t.Errorf("after the TTL = %s %v, want a new entry", id, dup)
	}
}

// TestQueueTakeover: replica A (its own process) accepts deliveries, claims
// half of them and is killed with SIGKILL before acknowledging any.
// Replica B delivers the unclaimed half at once and A's half once they
// have been idle for MinIdle on the Redis clock: every accepted event is
// delivered; the duplicates possible are exactly A's in-flight entries,
// marked by Deliveries = 2.
func TestQueueTakeover(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv := redistest.Start(t, redistest.Options{Frozen: t0})
	const prefix, accepted = "takeover:", 10
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWorker+"=accept", envURL+"="+srv.URL(), envPrefix+"="+prefix, envOps+"="+fmt.Sprint(accepted))
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	line, _ := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if line != fmt.Sprintf("claimed %d\n", accepted/2) {
		t.Fatalf("replica A said %q: %s", line, errb.String())
	}

	b := newQueue(t, newStore(t, srv, redis.Options{Prefix: prefix}), redis.QueueOptions{Consumer: "replica-b", MinIdle: time.Minute})
	bodies := map[string]int64{}
	claim := func() int {
		ms, err := b.Claim(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			bodies[string(m.Body)] = m.Deliveries
			b.Ack(ctx, m.ID)
		}
		return len(ms)
	}
	if n := claim(); n != accepted/2 {
		t.Fatalf("B claimed %d at once, want the %d A never claimed", n, accepted/2)
	}
	if n := claim(); n != 0 {
		t.Fatalf("B took %d of A's entries before MinIdle", n)
	}
	srv.SetTime(t0.Add(time.Minute))
	if n := claim(); n != accepted/2 {
		t.Fatalf("B claimed %d after MinIdle, want A's %d", n, accepted/2)
	}
	var again []string
	for i := 0; i < accepted; i++ {
		body := fmt.Sprintf("event %d", i)
		d, ok := bodies[body]
		if !ok {
			t.Errorf("%s never delivered", body)
		}
		if d == 2 {
			again = append(again, body)
		}
	}
	sort.Strings(again)
	if len(again) != accepted/2 {
		t.Errorf("redelivered (possible duplicates) %v, want A's %d in-flight entries", again, accepted/2)
	}
	if n, _ := b.Pending(ctx); n != 0 {
		t.Errorf("Pending at the end = %d", n)
	}
}

// TestQueueDeadLetter: an entry handed out MaxDeliveries times without an
// Ack moves to the dead-letter stream with its original ID and body.
func TestQueueDeadLetter(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv := redistest.Start(t, redistest.Options{Frozen: t0})
	q := newQueue(t, newStore(t, srv, redis.Options{}), redis.QueueOptions{MinIdle: time.Second, MaxDeliveries: 2})
	id, _, _ := q.Enqueue(ctx, "k", []byte("poison"))
	for i := 1; i <= 2; i++ {
		ms, err := q.Claim(ctx, 10)
		if err != nil || len(ms) != 1 || ms[0].ID != id || ms[0].Deliveries != int64(i) {
			t.Fatalf("claim %d = %+v, %v", i, ms, err)
		}
		srv.SetTime(t0.Add(time.Duration(i) * time.Second))
	}
	if ms, err := q.Claim(ctx, 10); err != nil || len(ms) != 0 {
		t.Fatalf("claim after MaxDeliveries = %+v, %v; want nothing", ms, err)
	}
	dead, err := q.Dead(ctx, 10)
	if err != nil || len(dead) != 1 || dead[0].ID != id || string(dead[0].Body) != "poison" || dead[0].Key != "k" {
		t.Fatalf("Dead = %+v, %v", dead, err)
	}
	if n, _ := q.Pending(ctx); n != 0 {
		t.Errorf("Pending = %d, want 0", n)
	}
}

// TestQueueAfterRedisLostEverything: Redis restarts without persistence,
// losing the stream and its group. Enqueue recreates the stream, Claim the
// group, and the queue works again without a restart of the gateway.
func TestQueueAfterRedisLostEverything(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	q := newQueue(t, newStore(t, srv, redis.Options{}), redis.QueueOptions{})
	q.Enqueue(ctx, "a", []byte("before"))
	if ms, err := q.Claim(ctx, 10); err != nil || len(ms) != 1 {
		t.Fatalf("claim = %+v, %v", ms, err)
	}
	srv.Kill()
	srv.Restart()
	until(t, "Redis back", func() bool { _, _, err := q.Enqueue(ctx, "b", []byte("after")); return err == nil })
	ms, err := q.Claim(ctx, 10)
	if err != nil || len(ms) != 1 || string(ms[0].Body) != "after" {
		t.Fatalf("claim after the restart = %+v, %v; want the entry enqueued after it", ms, err)
	}
}
