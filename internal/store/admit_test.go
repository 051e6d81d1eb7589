package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memory"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

var ctx = context.Background()

// faulty is a memory store whose Acquire fails on one key and whose
// Release fails while failRelease is set: the faults Admit's all-or-none
// give-back must survive.
type faulty struct {
	*memory.Store
	failAcquire  string
	failRelease  bool
	releaseCalls int
}

var errInjected = errors.New("injected")

func (f *faulty) Acquire(ctx context.Context, key string, max int64, ttl time.Duration, now time.Time) (store.Lease, bool, error) {
	if key == f.failAcquire {
		return store.Lease{}, false, errInjected
	}
	return f.Store.Acquire(ctx, key, max, ttl, now)
}

func (f *faulty) Release(ctx context.Context, l store.Lease) error {
	f.releaseCalls++
	if f.failRelease {
		return errInjected
	}
	return f.Store.Release(ctx, l)
}

// TestAdmitGivesBackOnFailure: when a later cap's Acquire fails, Admit
// gives back the earlier cap's lease and reports the error; a lease it
// cannot give back (Release failing) is returned in Leases for the
// caller's release, never dropped.
func TestAdmitGivesBackOnFailure(t *testing.T) {
	now := storetest.T0
	req := store.AdmitRequest{N: 1, Caps: []store.Cap{{Key: "stage", Max: 5}, {Key: "route", Max: 5}}, LeaseTTL: time.Minute}

	f := &faulty{Store: memory.New(), failAcquire: "route"}
	res, err := store.Admit(ctx, f, now, req)
	if !errors.Is(err, errInjected) {
		t.Fatalf("Admit error = %v, want the Acquire failure", err)
	}
	if n, _ := f.InUse(ctx, "stage", now); n != 0 || res.Leases != [store.MaxCaps]store.Lease{} {
		t.Fatalf("after a failed second Acquire: stage holds %d, result leases %+v; want none", n, res.Leases)
	}

	f = &faulty{Store: memory.New(), failAcquire: "route", failRelease: true}
	res, err = store.Admit(ctx, f, now, req)
	if !errors.Is(err, errInjected) || res.Leases[0].Key != "stage" || res.Leases[0].ID == 0 {
		t.Fatalf("Release failing too: %+v, %v; want the stage lease handed to the caller", res, err)
	}
	f.failRelease = false
	if err := f.Release(ctx, res.Leases[0]); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.InUse(ctx, "stage", now); n != 0 {
		t.Fatalf("stage holds %d after the caller's release", n)
	}

	// A refusal (not an error) whose give-back fails: the refusal stands
	// and the lease is the caller's to release.
	f = &faulty{Store: memory.New(), failRelease: true}
	f.Store.Acquire(ctx, "route", 5, time.Minute, now)
	full := req
	full.Caps = []store.Cap{{Key: "stage", Max: 5}, {Key: "route", Max: 1}}
	res, err = store.Admit(ctx, f, now, full)
	if err != nil || res.Refused != store.OverConcurrency || res.Denied != 1 || res.Leases[0].ID == 0 {
		t.Fatalf("route full, Release failing: %+v, %v", res, err)
	}
}

// TestAdmitEmptyCallsNothing: a request no guard applies to is admitted
// without a store (the gateway has none when nothing keeps state).
func TestAdmitEmptyCallsNothing(t *testing.T) {
	res, err := store.Admit(ctx, nil, storetest.T0, store.AdmitRequest{N: 1})
	if err != nil || res.Refused != store.Admitted || !res.Take.OK || res.Denied != -1 {
		t.Fatalf("Admit(empty) = %+v, %v", res, err)
	}
	p, err := store.Peek(ctx, nil, storetest.T0, store.AdmitRequest{N: 1})
	if err != nil || p.Refused != store.Admitted || !p.Take.OK {
		t.Fatalf("Peek(empty) = %+v, %v", p, err)
	}
}
