package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/export"
	"github.com/drawbridge/drawbridge/internal/gateway"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/store/memory"
)

// runCheck validates a config the way serve would load it: exit 0 with
// warnings, or 1 with one FILE:LINE: message line per problem.
func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			for _, p := range ce.Problems {
				fmt.Fprintln(stderr, p)
			}
			return exitError(1)
		}
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, w)
	}
	for _, n := range export.Notes(cfg) {
		fmt.Fprintln(stderr, "note: if deployed with drawbridge export, AWS cannot enforce:", n)
	}
	guard, err := egress.Compile(cfg, egress.Options{}, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError(1)
	}
	for _, w := range guard.Warnings() {
		fmt.Fprintf(stderr, "%s: WARNING: %s\n", *path, w)
	}
	// A memory store: check must work while serve holds the state file.
	st := memory.New()
	defer st.Close()
	g, err := gateway.Build(cfg, gateway.Deps{Metrics: metrics.New(), Store: st, Control: guard.Control,
		IPSets: localIPSets(*path, slog.New(slog.NewTextHandler(stderr, nil)))})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError(1)
	}
	g.Close()
	fmt.Fprintf(stdout, "%s: ok: %d routes, stage %s, api %s\n", *path, len(cfg.Routes), cfg.Stage, cfg.API)
	fmt.Fprintf(stdout, "egress (deny rows win over any allow; target names resolved now):\n%s", guard.Table())
	return nil
}
