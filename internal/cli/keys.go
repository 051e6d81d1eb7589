package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/drawbridge/drawbridge/internal/apikey"
)

// runKeys is `drawbridge keys create|usage`.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: drawbridge keys create --name N [--plan P] | keys usage [-c FILE] [--key NAME]")
		return exitError(2)
	}
	switch args[0] {
	case "create":
		return keysCreate(args[1:], stdout, stderr)
	case "usage":
		return keysUsage(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("keys: unknown subcommand %q (want create or usage)", args[0])
}

// keysCreate prints a fresh key once and the config snippet holding only
// its SHA-256: the key itself is never written anywhere by drawbridge.
func keysCreate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "key `name` (appears in logs and metrics, never the key)")
	plan := fs.String("plan", "", "usage `plan` the key belongs to (without one, requests with it get 403)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("keys create: --name is required")
	}
	k := apikey.Generate()
	fmt.Fprintf(stdout, "API key %q (shown once; give it to the client now, drawbridge keeps only its hash):\n\n  %s\n\n", *name, k)
	fmt.Fprintf(stdout, "Add under api_keys: in the config:\n\n")
	fmt.Fprintf(stdout, "  - name: %s\n", *name)
	if *plan != "" {
		fmt.Fprintf(stdout, "    plan: %s\n", *plan)
	}
	fmt.Fprintf(stdout, "    sha256: %s\n", apikey.FormatDigest(apikey.Hash(k)))
	if *plan == "" {
		fmt.Fprintf(stderr, "warning: no --plan: a key must belong to a usage plan, or requests using it get 403 Forbidden\n")
	}
	return nil
}

// keysUsage prints each key's quota in the current UTC period, as API
// Gateway's get-usage.
func keysUsage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys usage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	only := fs.String("key", "", "show only the key with this `name`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	g, done, err := readingGateway(*path, true, stderr)
	if err != nil {
		return err
	}
	defer done()
	us, err := g.Usage(ctx, time.Now())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tPLAN\tPERIOD\tUSED\tLIMIT\tREMAINING\tRESETS")
	found := false
	for _, u := range us {
		if *only != "" && u.Key != *only {
			continue
		}
		found = true
		plan, period, used, limit, rem, reset := u.Plan, "-", "-", "-", "-", "-"
		if plan == "" {
			plan = "(none: key refused)"
		}
		if !u.Enabled {
			plan += " (disabled)"
		}
		if u.HasQuota {
			period = u.Period + " " + u.PeriodStart.Format("2006-01-02")
			used, limit, rem = fmt.Sprint(u.Used), fmt.Sprint(u.Limit), fmt.Sprint(u.Remaining)
			reset = u.ResetAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Key, plan, period, used, limit, rem, reset)
	}
	tw.Flush()
	if *only != "" && !found {
		return fmt.Errorf("keys usage: no key named %q in %s", *only, *path)
	}
	return nil
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
