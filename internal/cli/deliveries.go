package cli

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/gateway"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store/bolt"
)

// deliveries is serve's durable delivery queue and its background worker.
// The zero of *deliveries (nil) means no queue: the state driver is not
// embedded, so no async route can be configured (config and Build refuse
// them).
type deliveries struct {
	state  *bolt.Store // owns the file; closed last
	queue  *delivery.Queue
	worker *delivery.Worker
	cancel context.CancelFunc
	done   chan struct{}
}

// startDeliveries opens the queue in the embedded state file and starts
// delivering. control is the egress check for the worker's dials, the
// same as the sync path's.
//
// It opens the state file itself; once serve opens one Store for the
// guards, pass that Store's DB instead (bbolt locks the file, so it can be
// opened only once).
func startDeliveries(cfg *config.Config, m *metrics.Metrics, log *slog.Logger, control func(network, address string, c syscall.RawConn) error) (*deliveries, error) {
	if cfg.State.Driver != "embedded" {
		return nil, nil
	}
	st, err := bolt.Open(cfg.State.Path, bolt.Options{})
	if err != nil {
		return nil, err
	}
	q, err := delivery.Open(st.DB(), delivery.Options{})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("state file %s: %w", cfg.State.Path, err)
	}
	w := delivery.NewWorker(q, delivery.WorkerOptions{
		Log:      log,
		Control:  control,
		OnCounts: func(c delivery.Counts) { setDeliveryGauge(m, c) },
	})
	w.SetPolicies(delivery.Policies(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	d := &deliveries{state: st, queue: q, worker: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		w.Run(ctx)
	}()
	return d, nil
}

func setDeliveryGauge(m *metrics.Metrics, c delivery.Counts) {
	m.Deliveries.WithLabelValues(string(delivery.Pending)).Set(float64(c.Pending))
	m.Deliveries.WithLabelValues(string(delivery.Delivered)).Set(float64(c.Delivered))
	m.Deliveries.WithLabelValues(string(delivery.Dead)).Set(float64(c.Dead))
}

// enqueuer is the gateway's view of the queue; a nil interface, not a nil
// pointer, when there is none.
func (d *deliveries) enqueuer() gateway.Enqueuer {
	if d == nil {
		return nil
	}
	return d.queue
}

// ops is the admin API's view of the queue (nil: none).
func (d *deliveries) ops() delivery.Ops {
	if d == nil {
		return nil
	}
	return d.queue
}

// reload gives the worker the new config's retry policies.
func (d *deliveries) reload(cfg *config.Config) {
	if d != nil {
		d.worker.SetPolicies(delivery.Policies(cfg))
	}
}

// stop ends the worker (an attempt in flight is abandoned, not recorded:
// it is sent again after restart) and then closes the state file. Call it
// after the public listener has drained, so no Enqueue is in flight.
func (d *deliveries) stop() error {
	if d == nil {
		return nil
	}
	d.cancel()
	<-d.done
	d.worker.Close()
	return d.state.Close()
}
