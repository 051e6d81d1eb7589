package cli

import (
	"log/slog"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
)

// egressGuard compiles cfg's egress table (resolving target names now, so
// a reload follows DNS) and logs its warnings loudly.
func egressGuard(cfg *config.Config, opts egress.Options, logger *slog.Logger) (*egress.Guard, error) {
	g, err := egress.Compile(cfg, opts, nil)
	if err != nil {
		return nil, err
	}
	for _, w := range g.Warnings() {
		logger.Warn("WARNING: " + w)
	}
	return g, nil
}
