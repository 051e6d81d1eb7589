package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/bolt"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	"github.com/drawbridge/drawbridge/internal/store/redis"
)

// openStore opens the state store cfg.State names: the one place drivers
// are chosen (STYLE §2: drivers are wired by cli alone). The caller closes
// it, after everything that uses it.
//
// A relative embedded path is taken relative to the config file, as
// resource_policy_file is, so a gateway finds the same state whatever
// directory it is started from.
//
// The redis driver connects lazily (Lambda init does no network I/O; a
// gateway whose Redis is down starts, answers 503 on guarded routes and
// reports not ready) and bounds every call by redis.DefaultTimeout.
func openStore(cfg *config.Config) (store.Store, error) {
	switch cfg.State.Driver {
	case "memory":
		return memory.New(), nil
	case "embedded", "":
		// bolt.Open gives up after bolt.DefaultTimeout (1 s) when another
		// process holds the file, with an error naming it.
		return bolt.Open(statePath(cfg), bolt.Options{})
	case "redis":
		return openRedis(cfg)
	}
	return nil, errors.New("state.driver " + cfg.State.Driver + " is unknown")
}

// quietRedis silences go-redis's process-wide logger once: while Redis is
// down it would print a line per failed dial, about one per guarded
// request. The driver's errors still reach the access log as the cause of
// each 503.
var quietRedis sync.Once

func openRedis(cfg *config.Config) (*redis.Store, error) {
	if cfg.State.URL == "" {
		return nil, errors.New("state.driver redis needs state.url (redis://host:port/db)")
	}
	quietRedis.Do(redis.QuietClientLogs)
	st, err := redis.New(redis.Options{URL: cfg.State.URL, Prefix: cfg.State.Prefix})
	// url.Parse's error quotes the whole URL, password included: keep
	// only what is wrong with it.
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return nil, fmt.Errorf("state.url: %w", ue.Err)
	}
	return st, err
}

// logDurability logs the redis driver's durability warnings once at serve
// start (check prints the same). It waits at most the driver's per-call
// budget: a Redis that is down delays the start by that much and is
// reported, not fatal. Other drivers: nothing.
func logDurability(st store.Store, log *slog.Logger) {
	rs, ok := st.(*redis.Store)
	if !ok {
		return
	}
	ws, err := rs.Durability(context.Background())
	if err != nil {
		log.Warn("redis durability not checked", "error", err.Error())
		return
	}
	for _, w := range ws {
		log.Warn(w)
	}
}

// statePath is the embedded driver's file.
func statePath(cfg *config.Config) string {
	p := cfg.State.Path
	if p == "" {
		p = config.DefaultStatePath
	}
	if !filepath.IsAbs(p) && cfg.File != "" {
		p = filepath.Join(filepath.Dir(cfg.File), p)
	}
	return p
}
