package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/delivery/streams"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/bolt"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	"github.com/drawbridge/drawbridge/internal/store/redis"
)

// state is what the configured state driver provides. Callers use the
// fields that are set and never ask which driver it was: a nil queue or
// history means the driver keeps none.
type state struct {
	driver string      // the driver opened: memory, embedded or redis (for logs)
	store  store.Store // throttle buckets, quota counters, concurrency leases
	// queue holds async routes' deliveries (nil: none, so async routes
	// answer 503). On the embedded driver it shares the store's file.
	queue delivery.Backend
	// poll bounds the delivery worker's sleep between scans (0: its
	// default). Redis needs 1 s: other replicas' enqueues wake nobody here.
	poll time.Duration
	// history is the operator's view of the queue (`drawbridge
	// deliveries`, the admin API). Nil: the driver keeps none (redis
	// deletes what it delivered; memory keeps no queue).
	history delivery.Ops
	// durability reports what makes the driver lose acknowledged writes
	// (docs/redis.md). Nil: nothing to check beyond the driver itself.
	durability func(context.Context) ([]string, error)
	// where names the server for messages, never with a password ("" for
	// drivers without one).
	where string
}

// close closes the store, after everything that uses it (the queue shares
// it).
func (s *state) close() error { return s.store.Close() }

// stateUse is what a command opens the state for: it decides which parts
// are opened and how the embedded driver's file and lock are treated.
type stateUse int

const (
	// serving: store and queue; the embedded file is created if missing
	// and its lock waited for bolt.DefaultTimeout (1 s) before an error
	// naming the file.
	serving stateUse = iota
	// servingLambda is serving inside a Lambda execution environment. The
	// deployment package is read-only and every environment has its own
	// /tmp, so an embedded file could only ever be per-instance: memory
	// says so honestly. redis is shared and kept.
	servingLambda
	// checking: only what check can report on without serving: the redis
	// store (connected lazily) for its durability; never the embedded
	// file, which a running serve holds.
	checking
	// reading: the store, for commands that read it (explain, keys
	// usage); a missing embedded file is errNoStateFile, its lock waited
	// for 200 ms.
	reading
	// operating: the delivery history (`drawbridge deliveries`): the
	// embedded file must exist, and its lock is not waited for
	// (bolt.ErrLocked: a running serve holds it; its admin API is the way
	// in). On redis, the streams every replica shares. The memory driver,
	// which has no queue, is refused with the reason.
	operating
)

// Errors of openState callers branch on.
var (
	// errNoStateFile: a command that only reads found no embedded state
	// file.
	errNoStateFile = errors.New("no state file")
	// errStateLocked: another process, a running serve, holds the
	// embedded state file.
	errStateLocked = bolt.ErrLocked
)

// openState opens the state cfg.State names, for use: the one place a
// driver is chosen (drivers are wired by cli alone). The caller closes
// it, after everything that uses it.
//
// A relative embedded path is taken relative to the config file, as
// resource_policy_file is, so a gateway finds the same state whatever
// directory it is started from.
//
// The redis driver connects lazily (Lambda init does no network I/O; a
// gateway whose Redis is down starts, answers 503 on guarded routes and
// reports not ready) and bounds every call by redis.DefaultTimeout.
func openState(cfg *config.Config, use stateUse) (*state, error) {
	driver := cfg.State.Driver
	if driver == "" {
		driver = "embedded"
	}
	if driver == "embedded" && (use == servingLambda || use == checking) {
		driver = "memory"
	}
	switch driver {
	case "memory":
		if use == operating {
			return nil, errors.New("state.driver memory keeps no delivery queue (async routes need embedded)")
		}
		return &state{driver: driver, store: memory.New()}, nil
	case "embedded":
		return openEmbedded(cfg, use)
	case "redis":
		rs, err := openRedis(cfg)
		if err != nil {
			return nil, err
		}
		// serve refuses a Redis it can reach but never use (an untrusted
		// certificate, a wrong password); one that is down is waited for.
		// Lambda init does no network I/O.
		if use == serving {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := rs.Verify(ctx)
			cancel()
			if err != nil {
				rs.Close()
				return nil, err
			}
		}
		s := &state{driver: driver, store: rs, durability: rs.Durability, where: rs.String()}
		if use == serving || use == servingLambda {
			q := streams.New(rs, delivery.Policies(cfg), "")
			// The console's history: the streams and dead letters, not
			// what was delivered (streams/ops.go).
			s.queue, s.history, s.poll = q, q, time.Second
		}
		if use == operating {
			// Every replica shares the streams: the CLI reads and
			// replays them itself, running serve or not; it claims
			// nothing, so it needs no consumer of its own.
			s.history = streams.New(rs, delivery.Policies(cfg), "")
		}
		return s, nil
	}
	return nil, errors.New("state.driver " + driver + " is unknown")
}

// openEmbedded opens the bbolt state file and, unless use only reads
// limits, the delivery queue in it: bbolt locks its file, so the queue
// shares the Store's DB instead of opening the file again.
func openEmbedded(cfg *config.Config, use stateUse) (*state, error) {
	p := statePath(cfg)
	var opts bolt.Options
	switch use {
	case reading, operating:
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if use == operating {
				return nil, fmt.Errorf("no state file at %s: nothing was accepted yet (or -c names another config)", p)
			}
			return nil, fmt.Errorf("%w %s", errNoStateFile, p)
		}
		opts.Timeout = 200 * time.Millisecond
		if use == operating {
			opts.Timeout = -1
		}
	}
	bs, err := bolt.Open(p, opts)
	if err != nil {
		return nil, err
	}
	s := &state{driver: "embedded", store: bs}
	if use == reading {
		return s, nil
	}
	q, err := delivery.Open(bs.DB(), delivery.Options{})
	if err != nil {
		bs.Close()
		return nil, fmt.Errorf("state file %s: %w", p, err)
	}
	s.queue, s.history = q, q
	return s, nil
}

// openStateForReading opens the configured store for a command that only
// reads it (explain, keys usage). A missing file has nothing to read: an
// empty memory store stands in, with a note saying so. A running serve
// holds the embedded file's lock: unless exact (keys usage, whose numbers
// must not be guessed), explain also falls back, with a note.
func openStateForReading(cfg *config.Config, exact bool) (*state, string, error) {
	st, err := openState(cfg, reading)
	switch {
	case errors.Is(err, errNoStateFile):
		return freshState(), err.Error() + " yet: limits shown as fresh", nil
	case errors.Is(err, errStateLocked) && !exact:
		return freshState(), "state file " + statePath(cfg) + " is held by a running drawbridge: limits shown as fresh (quota counts are in the server)", nil
	case err != nil:
		return nil, "", err
	case st.driver == "memory":
		return st, "state.driver is memory: the server's state lives in its process; limits shown as fresh", nil
	}
	return st, "", nil
}

// freshState stands in for state a command cannot or need not read: an
// empty memory store, no queue.
func freshState() *state { return &state{driver: "memory", store: memory.New()} }

// quietRedis silences go-redis's process-wide logger once: while Redis is
// down it would print a line per failed dial, about one per guarded
// request. The driver's errors still reach the access log as the cause of
// each 503.
var quietRedis sync.Once

// openRedis makes the redis store from the state: block. Passwords come
// from the environment (state.password_env, state.sentinel.password_env)
// or the URL, and no error names them: the URL is redacted.
func openRedis(cfg *config.Config) (*redis.Store, error) {
	c := cfg.State
	if c.URL == "" && c.Sentinel == nil && c.Cluster == nil {
		return nil, errors.New("state.driver redis needs state.url (redis://host:port/db), state.sentinel or state.cluster")
	}
	o := redis.Options{URL: c.URL, Prefix: c.Prefix, WaitReplicas: int(c.WaitReplicas)}
	var err error
	if o.Username, err = fromEnv("state.username_env", c.UsernameEnv); err != nil {
		return nil, err
	}
	if o.Password, err = fromEnv("state.password_env", c.PasswordEnv); err != nil {
		return nil, err
	}
	if s := c.Sentinel; s != nil {
		o.Sentinel = &redis.Sentinel{Master: s.Master, Addrs: s.Addrs}
		if o.Sentinel.Password, err = fromEnv("state.sentinel.password_env", s.PasswordEnv); err != nil {
			return nil, err
		}
	}
	if c.Cluster != nil {
		if len(c.Cluster.Addrs) == 0 {
			return nil, errors.New("state.cluster needs addrs")
		}
		o.Cluster = c.Cluster.Addrs
	}
	if t := c.TLS; t != nil {
		o.TLS = &redis.TLS{CA: t.CA, Cert: t.Cert, Key: t.Key, ServerName: t.ServerName}
		for _, f := range []*string{&o.TLS.CA, &o.TLS.Cert, &o.TLS.Key} {
			if *f != "" && !filepath.IsAbs(*f) && cfg.File != "" {
				*f = filepath.Join(filepath.Dir(cfg.File), *f) // as state.path
			}
		}
	}
	quietRedis.Do(redis.QuietClientLogs)
	return redis.New(o)
}

// fromEnv reads the variable key names; "" names none.
func fromEnv(key, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s: environment variable %s is not set or empty", key, name)
	}
	return v, nil
}

// logDurability logs the driver's durability warnings once at serve start
// (check prints the same). It waits at most the driver's per-call budget:
// a Redis that is down delays the start by that much and is reported, not
// fatal. Drivers with nothing to check: nothing.
func logDurability(st *state, log *slog.Logger) {
	if st.durability == nil {
		return
	}
	ws, err := st.durability(context.Background())
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

// watchStateHealth logs each change in the embedded state file's health
// once, with its reason, and mirrors it in drawbridge_state_healthy (see
// docs/hardening.md). Other drivers: nothing (Redis reports through
// /readyz and drawbridge_state_errors_total).
func watchStateHealth(st store.Store, log *slog.Logger, m *metrics.Metrics) {
	b, ok := st.(*bolt.Store)
	if !ok {
		return
	}
	b.OnHealth(func(ev bolt.HealthEvent) {
		switch {
		case ev.Rescue != "" && ev.Rescue == b.Path():
			log.Error("state file: the open file was copied back to its path; restart drawbridge to deliver what it accepted", "copy", ev.Rescue)
		case ev.Rescue != "":
			log.Error("state file: another file now sits at its path, so the open file was copied beside it; move the copy into place (or point state.path at it) and restart to deliver what it accepted", "copy", ev.Rescue, "path", b.Path())
		case ev.RescueErr != nil:
			log.Error("state file: the open file could not be copied; what it holds is lost when drawbridge stops", "error", ev.RescueErr.Error())
		case ev.Lost:
			m.StateHealthy.Set(0)
			log.Error("state file lost: async routes answer 503 and /readyz is not ready until drawbridge restarts", "error", ev.Err.Error())
		case ev.Err != nil:
			m.StateHealthy.Set(0)
			log.Error("state file: a commit failed; /readyz is not ready until one succeeds", "error", ev.Err.Error())
		default:
			if b.Healthy() == nil {
				m.StateHealthy.Set(1)
			}
			log.Info("state file: commits succeed again")
		}
	})
}
