package redis

import (
	"context"
	"fmt"
	"sort"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// Durability reads the server's persistence and eviction settings and
// returns one warning per setting under which state can be lost, each
// saying what to set (for `drawbridge check` and the start-up log). None
// means: AOF on with appendfsync always, and no eviction.
//
// What each setting risks (docs/hardening.md#durability-depends-on-fsync): without AOF a
// Redis restart loses every quota count and accepted delivery since the
// last RDB snapshot; with appendfsync everysec a crash loses up to a second
// of them; with appendfsync no, whatever the kernel had not written; an
// eviction policy other than noeviction lets Redis drop counters, leases
// and queued deliveries silently when memory runs out.
//
// A server that refuses CONFIG GET (managed services often rename it)
// returns an error: the caller should warn that durability is unverified.
func (s *Store) Durability(ctx context.Context) ([]string, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	var w []string
	if cc, ok := s.c.(*goredis.ClusterClient); ok {
		// CONFIG GET names no key: each primary answers for its own slots.
		var mu sync.Mutex
		seen := map[string]bool{}
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
			ws, err := configWarnings(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			for _, x := range ws {
				if !seen[x] {
					seen[x] = true
					w = append(w, x)
				}
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(w)
	} else {
		var err error
		if w, err = configWarnings(ctx, s.c); err != nil {
			return nil, err
		}
	}
	if s.form != topoSingle && s.wait == 0 {
		w = append(w, "redis: state.wait_replicas is 0: Redis replicates asynchronously, so a failover can lose async deliveries answered 202 that the old primary had not yet sent to a replica; set state.wait_replicas 1")
	}
	return w, nil
}

// configWarnings reads one server's settings.
func configWarnings(ctx context.Context, c goredis.Cmdable) ([]string, error) {
	p := c.Pipeline()
	aof := p.ConfigGet(ctx, "appendonly")
	fsync := p.ConfigGet(ctx, "appendfsync")
	evict := p.ConfigGet(ctx, "maxmemory-policy")
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read redis config (CONFIG GET): %w", err)
	}
	return durabilityWarnings(aof, fsync, evict), nil
}

func durabilityWarnings(aof, fsync, evict *goredis.MapStringStringCmd) []string {
	var w []string
	switch v := aof.Val()["appendonly"]; v {
	case "yes":
		switch f := fsync.Val()["appendfsync"]; f {
		case "always":
		case "everysec":
			w = append(w, "redis: appendfsync is everysec: a Redis crash can lose the last second of accepted deliveries and quota counts; set appendfsync always")
		default:
			w = append(w, fmt.Sprintf("redis: appendfsync is %q: a Redis crash can lose accepted deliveries and quota counts the kernel had not written; set appendfsync always", f))
		}
	default:
		w = append(w, fmt.Sprintf("redis: appendonly is %q: a Redis restart loses accepted deliveries and quota counts since the last snapshot; set appendonly yes and appendfsync always", v))
	}
	if p := evict.Val()["maxmemory-policy"]; p != "noeviction" {
		w = append(w, fmt.Sprintf("redis: maxmemory-policy is %q: Redis may evict quota counters, leases and queued deliveries when memory is full; set maxmemory-policy noeviction", p))
	}
	return w
}
