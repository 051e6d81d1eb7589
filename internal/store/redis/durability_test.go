package redis_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

func TestDurability(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := newStore(t, srv, redis.Options{})
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer raw.Close()
	// Each case starts from the settings the previous one left.
	tests := []struct {
		name   string
		config [][2]string
		want   []string // substrings, one per warning
	}{
		{"Debian defaults: no AOF", [][2]string{{"appendonly", "no"}, {"appendfsync", "everysec"}, {"maxmemory-policy", "noeviction"}},
			[]string{`appendonly is "no"`}},
		{"AOF everysec", [][2]string{{"appendonly", "yes"}, {"appendfsync", "everysec"}},
			[]string{"appendfsync is everysec"}},
		{"AOF fsync no", [][2]string{{"appendfsync", "no"}},
			[]string{`appendfsync is "no"`}},
		{"durable", [][2]string{{"appendfsync", "always"}}, nil},
		{"durable but LRU eviction", [][2]string{{"maxmemory-policy", "allkeys-lru"}},
			[]string{`maxmemory-policy is "allkeys-lru"`}},
		{"no AOF and eviction", [][2]string{{"appendonly", "no"}, {"maxmemory-policy", "volatile-ttl"}},
			[]string{"set appendonly yes and appendfsync always", "set maxmemory-policy noeviction"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kv := range tt.config {
				if err := raw.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Durability(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d matching %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
	t.Run("CONFIG refused", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{Config: []string{`rename-command CONFIG ""`}})
		got, err := newStore(t, srv, redis.Options{}).Durability(ctx)
		if err == nil || !reflect.DeepEqual(got, []string(nil)) {
			t.Fatalf("Durability = %q, %v; want an error", got, err)
		}
	})
}

// TestCrashRecovery: SIGKILL Redis and restart it from its data dir. With
// appendfsync always every acknowledged quota count and queued delivery
// survives; without AOF the counts are gone (what Durability warns about).
func TestCrashRecovery(t *testing.T) {
	q := store.Quota{Period: time.Now().UTC().Truncate(24 * time.Hour), Limit: 100}
	for _, tt := range []struct {
		name   string
		config []string
		want   int64
	}{
		{"appendfsync always", []string{"appendonly yes", "appendfsync always"}, 5},
		{"no AOF", nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{Config: tt.config})
			s := newStore(t, srv, redis.Options{})
			queue := s.Queue("hooks", redis.QueueOptions{})
			for i := 0; i < 5; i++ {
				if r, err := s.Count(ctx, "k", q); err != nil || !r.OK {
					t.Fatalf("count %d: %+v, %v", i, r, err)
				}
				if _, _, err := queue.Enqueue(ctx, "", []byte("event")); err != nil {
					t.Fatal(err)
				}
			}
			srv.Kill()
			srv.Restart()
			var u store.QuotaResult
			until(t, "Redis back", func() bool {
				var err error
				u, err = s.Usage(ctx, "k", q)
				return err == nil
			})
			if u.Used != tt.want {
				t.Errorf("quota used after the crash = %d, want %d", u.Used, tt.want)
			}
			if n, _ := queue.Pending(ctx); n != tt.want {
				t.Errorf("deliveries queued after the crash = %d, want %d", n, tt.want)
			}
		})
	}
}
