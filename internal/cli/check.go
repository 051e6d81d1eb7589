package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/export"
	"github.com/drawbridge/drawbridge/internal/gateway"
	"github.com/drawbridge/drawbridge/internal/metrics"
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
	g, err := gateway.Build(cfg, gateway.Deps{Metrics: metrics.New()})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError(1)
	}
	g.Close()
	fmt.Fprintf(stdout, "%s: ok: %d routes, stage %s, api %s\n", *path, len(cfg.Routes), cfg.Stage, cfg.API)
	return nil
}
