package delivery

import (
	"sync"

	bbolt "go.etcd.io/bbolt"
)

// group is a group commit: callers that arrive while a commit is running
// share the next one, so N concurrent Enqueues cost one transaction and one
// fsync instead of N, and a lone caller commits at once.
//
// bbolt's own DB.Batch does the same but waits up to MaxBatchDelay (10 ms)
// for company before committing, which a lone webhook pays in full; and the
// DB is shared with the quota store, whose settings we must not change.
// BenchmarkEnqueue measures the difference against one commit per call.
//
// The same rule as DB.Batch applies: if one function of a batch fails, the
// batch is rolled back and every function is run again alone, so functions
// must be idempotent (compute their outputs afresh on every run).
//
// Leadership: the first caller to find the group idle commits every call
// queued by then (its own included), then hands the lead to the first call
// that queued meanwhile, which commits everything queued by then, and so on.
// No goroutine of its own, and no caller commits more than one batch.
type group struct {
	db   *bbolt.DB
	solo bool // no grouping: one transaction per call (for comparison)

	mu      sync.Mutex
	busy    bool
	pending []*call
}

type call struct {
	fn   func(*bbolt.Tx) error
	err  error
	wake chan bool // true: you lead the next batch; false: done, err set
}

// do runs before (if not nil) under the group's lock, so that what it
// assigns (ids) follows commit order, then fn in a shared write transaction,
// and returns once that transaction is durable.
func (g *group) do(before func(), fn func(*bbolt.Tx) error) error {
	if g.solo {
		g.mu.Lock()
		defer g.mu.Unlock()
		if before != nil {
			before()
		}
		return g.db.Update(fn)
	}
	c := &call{fn: fn, wake: make(chan bool, 1)}
	g.mu.Lock()
	if before != nil {
		before()
	}
	g.pending = append(g.pending, c)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead && !<-c.wake {
		return c.err
	}
	g.mu.Lock()
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()

	g.commit(batch)

	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].wake <- true
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	for _, o := range batch {
		if o != c {
			o.wake <- false
		}
	}
	return c.err
}

func (g *group) commit(batch []*call) {
	err := g.db.Update(func(tx *bbolt.Tx) error {
		for _, c := range batch {
			if err := c.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		return
	}
	if len(batch) == 1 {
		batch[0].err = err
		return
	}
	// One failed (or the commit did): run each alone, so one bad call
	// does not fail its neighbours.
	for _, c := range batch {
		c.err = g.db.Update(c.fn)
	}
}
