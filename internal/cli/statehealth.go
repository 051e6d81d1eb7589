package cli

import (
	"log/slog"

	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/bolt"
)

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
