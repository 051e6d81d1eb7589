package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/export"
	"github.com/drawbridge/drawbridge/internal/gateway"
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
	cfg, err := loadConfig(*path)
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
	guard, err := egress.Compile(cfg, egress.Options{Names: egress.NewNames(targetResolver, nil)})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError(1)
	}
	for _, w := range guard.Warnings() {
		fmt.Fprintf(stderr, "%s: WARNING: %s\n", *path, w)
	}
	checkNames(cfg, guard, stderr)
	// Never the embedded file: check must work while serve holds it.
	st, err := openState(cfg, checking)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *path, err)
		return exitError(1)
	}
	defer st.close()
	checkDurability(cfg, st, *path, stderr)
	g, err := gateway.Build(cfg, gatewayDeps(cfg, wiring{state: st, egress: guard, log: slog.New(slog.NewTextHandler(stderr, nil))}))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError(1)
	}
	g.Close()
	fmt.Fprintf(stdout, "%s: ok: %d routes, stage %s, api %s\n", *path, len(cfg.Routes), cfg.Stage, cfg.API)
	fmt.Fprintf(stdout, "egress (deny rows win over any allow; target names are resolved when dialed):\n%s", guard.Table())
	return nil
}

// checkNames warns about each target host name that does not resolve from
// here. Never an error: names are resolved when a connection is dialed,
// and an internal name may resolve only where drawbridge serves; serve
// starts anyway and answers 502 on the route until the name resolves.
func checkNames(cfg *config.Config, guard *egress.Guard, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for _, r := range cfg.RoutesPerTarget() {
		u := r.TargetURL()
		if u == nil || seen[u.Hostname()] {
			continue
		}
		host := u.Hostname()
		seen[host] = true
		if _, err := netip.ParseAddr(host); err == nil || host == "" {
			continue
		}
		if _, err := guard.Lookup(ctx, host); err != nil {
			fmt.Fprintf(stderr, "%s:%d: WARNING: route %s: target host %q does not resolve from here (%v); serve answers 502 on this route until it does\n",
				cfg.File, r.Line, r.Path, host, err)
		}
	}
}

// checkDurability prints the redis driver's durability warnings
// (appendonly, appendfsync, maxmemory-policy), or a note that they could
// not be read. Neither is an error: check validates the config, and the
// server may well be unreachable from where check runs (a state.url serve
// would refuse is, from openState). The URL is never printed whole (it
// may hold a password): only its host.
func checkDurability(cfg *config.Config, st *state, path string, stderr io.Writer) {
	if st.durability == nil {
		return
	}
	host := st.where // the long forms: state.sentinel, state.cluster
	if u, err := url.Parse(cfg.State.URL); err == nil && u.Host != "" {
		host = u.Host
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := st.store.Ready(ctx); err != nil {
		fmt.Fprintf(stderr, "%s: note: redis at %s is not reachable from here (%v): durability not checked\n", path, host, err)
		return
	}
	ws, err := st.durability(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "%s: WARNING: redis at %s refuses CONFIG GET (%v): durability unverified; it needs appendonly yes, appendfsync always, maxmemory-policy noeviction\n", path, host, err)
		return
	}
	for _, w := range ws {
		fmt.Fprintf(stderr, "%s: WARNING: %s\n", path, w)
	}
}
