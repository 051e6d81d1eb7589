package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/drawbridge/drawbridge/internal/admin"
	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/tracing"
)

// deliveries is serve's background delivery worker over the state's
// queue (in the embedded state file, or on Redis shared by replicas). The
// zero of *deliveries (nil) means no queue: the state driver is memory, so
// no async route can be configured (config refuses them).
type deliveries struct {
	queue  delivery.Backend
	worker *delivery.Worker
	cancel context.CancelFunc
	done   chan struct{}
}

// startDeliveries starts delivering from st's queue, if it has one.
// guard is the egress check for the worker's dials, the same as the
// sync path's.
func startDeliveries(cfg *config.Config, st *state, m *metrics.Metrics, log *slog.Logger, guard *egress.Guard, tr *tracing.Tracer) *deliveries {
	if st.queue == nil {
		return nil
	}
	d := &deliveries{queue: st.queue, done: make(chan struct{})}
	d.worker = newWorker(st.queue, cfg, m, log, guard, st.poll, tr)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		defer close(d.done)
		d.worker.Run(ctx)
	}()
	return d
}

// newWorker is the delivery worker of serve and of Lambda's scheduled
// drain, with its metrics and spans (tr nil: none). poll 0 is the
// worker's default.
func newWorker(src delivery.Source, cfg *config.Config, m *metrics.Metrics, log *slog.Logger, guard *egress.Guard, poll time.Duration, tr *tracing.Tracer) *delivery.Worker {
	opts := delivery.WorkerOptions{
		Log:      log,
		Egress:   guard,
		Poll:     poll,
		OnCounts: func(c delivery.Counts) { m.SetDeliveries(c.Pending, c.Delivered, c.Dead, c.Coalesced) },
		OnAttempt: func(a delivery.AttemptReport) {
			m.ObserveAttempt(a.Route, a.Duration, a.State != delivery.Pending, string(a.State), a.Tries, a.SinceAccepted)
		},
	}
	traceAttempts(tr, &opts)
	w := delivery.NewWorker(src, opts)
	w.SetPolicies(delivery.Policies(cfg))
	return w
}

// reload gives the worker and the queue the new config's retry policies
// and async routes.
func (d *deliveries) reload(cfg *config.Config) {
	if d == nil {
		return
	}
	p := delivery.Policies(cfg)
	d.worker.SetPolicies(p)
	d.queue.SetPolicies(p)
}

// stop ends the worker (an attempt in flight is abandoned, not recorded:
// it is sent again after restart). Call it after the public listener has
// drained, so no Enqueue is in flight, and before the Store closes.
func (d *deliveries) stop() error {
	if d == nil {
		return nil
	}
	d.cancel()
	<-d.done
	d.worker.Close()
	return nil
}

// runDeliveries is `drawbridge deliveries [-c FILE] list|show|replay|purge`
// (README.md#commands). It works on the state file when serve is stopped and
// through the admin listener when serve runs (it then holds the file's
// lock).
func runDeliveries(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("deliveries", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, deliveriesUsage) }
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, deliveriesUsage)
		return exitError(2)
	}
	sub, rest := fs.Arg(0), fs.Args()[1:]
	sfs := flag.NewFlagSet("deliveries "+sub, flag.ContinueOnError)
	sfs.SetOutput(stderr)
	sfs.Usage = func() { fmt.Fprint(stderr, deliveriesUsage) }
	sfs.StringVar(path, "c", *path, "config `file`")
	asJSON := sfs.Bool("json", false, "print JSON")
	var (
		state, route, since, olderThan string
		limit                          int
		dead, delivered, coalesced     bool
	)
	switch sub {
	case "list":
		sfs.StringVar(&state, "state", "", "pending, delivered or dead")
		sfs.StringVar(&route, "route", "", "only this configured route path")
		sfs.StringVar(&since, "since", "", "only accepted within this `age` (1h, 7d)")
		sfs.IntVar(&limit, "limit", delivery.DefaultListLimit, "at most this many, newest first")
	case "show":
	case "replay":
		sfs.BoolVar(&dead, "dead", false, "replay every dead delivery (with --since: that died within the age)")
		sfs.StringVar(&since, "since", "", "with --dead: only those that died within this `age`")
	case "purge":
		sfs.BoolVar(&delivered, "delivered", false, "purge delivered deliveries")
		sfs.BoolVar(&dead, "dead", false, "purge dead deliveries")
		sfs.BoolVar(&coalesced, "coalesced", false, "purge coalesced deliveries")
		sfs.StringVar(&olderThan, "older-than", "", "only those finished longer ago than this `age` (required: 7d, 24h)")
	default:
		fmt.Fprintf(stderr, "drawbridge deliveries: unknown command %q\n", sub)
		fmt.Fprint(stderr, deliveriesUsage)
		return exitError(2)
	}
	pos, err := parseInterleaved(sfs, rest)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	ops, offline, closeOps, err := openOps(cfg)
	if err != nil {
		return err
	}
	defer closeOps()
	now := time.Now()

	switch sub {
	case "list":
		f := delivery.Filter{Route: route, Limit: limit}
		if state != "" {
			if f.State, err = delivery.ParseState(state); err != nil {
				return err
			}
		}
		if since != "" {
			age, err := parseAge(since)
			if err != nil {
				return err
			}
			f.Since = now.Add(-age)
		}
		ds, err := ops.List(f)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, redacted(ds))
		}
		printList(stdout, ds)
	case "show":
		if len(pos) != 1 {
			return errors.New("deliveries show: want one delivery id")
		}
		d, err := ops.Get(pos[0])
		if err != nil {
			return err
		}
		d.Header = delivery.Redact(d.Header)
		if *asJSON {
			return printJSON(stdout, d)
		}
		printDelivery(stdout, d)
	case "replay":
		switch {
		case dead && len(pos) == 0:
			var from time.Time
			if since != "" {
				age, err := parseAge(since)
				if err != nil {
					return err
				}
				from = now.Add(-age)
			}
			n, err := ops.ReplayDead(from)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "replayed %d dead deliveries\n", n)
		case !dead && len(pos) == 1:
			if err := ops.Replay(pos[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "replayed %s\n", pos[0])
		default:
			return errors.New("deliveries replay: want one delivery id, or --dead [--since AGE]")
		}
		if offline {
			fmt.Fprintln(stdout, "serve is not running: the delivery is sent when it starts")
		}
	case "purge":
		var st delivery.State
		switch {
		case delivered && !dead && !coalesced:
			st = delivery.Delivered
		case dead && !delivered && !coalesced:
			st = delivery.Dead
		case coalesced && !delivered && !dead:
			st = delivery.Coalesced
		default:
			return errors.New("deliveries purge: want one of --delivered, --dead or --coalesced")
		}
		if olderThan == "" {
			return errors.New("deliveries purge: --older-than is required (such as 7d)")
		}
		age, err := parseAge(olderThan)
		if err != nil {
			return err
		}
		n, err := ops.Purge(st, now.Add(-age))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "purged %d %s deliveries\n", n, st)
	}
	return nil
}

const deliveriesUsage = `Usage:
  drawbridge deliveries [-c FILE] list [--state pending|delivered|dead|coalesced] [--route R] [--since AGE] [--limit N] [--json]
  drawbridge deliveries [-c FILE] show ID [--json]
  drawbridge deliveries [-c FILE] replay ID
  drawbridge deliveries [-c FILE] replay --dead [--since AGE]
  drawbridge deliveries [-c FILE] purge --delivered|--dead|--coalesced --older-than AGE
AGE is a Go duration (90m, 24h) or a number of days (7d). With serve running
the command goes through its admin listener; otherwise it opens the state file.
With state.driver redis it reads the shared streams (pending and dead only).
`

// parseInterleaved parses flags that may come before, between or after
// positional arguments ("show ID --json"), and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// maxAgeDays keeps days·24h inside a time.Duration (≈ 292 years).
const maxAgeDays = 100 * 365

// parseAge reads a Go duration or whole days ("7d").
func parseAge(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > maxAgeDays {
			return 0, fmt.Errorf("bad age %q: want a Go duration (90m, 24h) or days (7d)", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad age %q: want a Go duration (90m, 24h) or days (7d)", s)
	}
	return d, nil
}

// openOps reaches the delivery history: the state file itself if no
// serve holds it (offline), else the running serve's admin API; on redis,
// the streams themselves.
func openOps(cfg *config.Config) (ops delivery.Ops, offline bool, done func() error, err error) {
	st, err := openState(cfg, operating)
	if errors.Is(err, errStateLocked) {
		if cfg.Admin == config.AdminOff {
			return nil, false, nil, fmt.Errorf("%w, and its admin listener is off: stop it, or set admin", err)
		}
		return &admin.Client{Base: "http://" + dialAddr(cfg.Admin), Token: os.Getenv(AdminTokenEnv)}, false, func() error { return nil }, nil
	}
	if err != nil {
		return nil, false, nil, err
	}
	// Serve's worker picks a replay up by itself on redis: only the state
	// file waits for the next serve.
	return st.history, st.driver == "embedded", st.close, nil
}

// dialAddr turns a listen address into one to dial: an empty or
// unspecified host means this machine's loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

func redacted(ds []*delivery.Delivery) []*delivery.Delivery {
	for _, d := range ds {
		d.Header = delivery.Redact(d.Header)
	}
	return ds
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// lastAttempt is the last attempt's status, "no answer" or "-".
func lastAttempt(d *delivery.Delivery) string {
	if len(d.Attempts) == 0 {
		return "-"
	}
	a := d.Attempts[len(d.Attempts)-1]
	if a.Status != 0 {
		return strconv.Itoa(a.Status)
	}
	return "no answer"
}

func printList(w io.Writer, ds []*delivery.Delivery) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tROUTE\tMETHOD\tATTEMPTS\tLAST\tACCEPTED")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.State, d.Route, d.Method, len(d.Attempts), lastAttempt(d), stamp(d.AcceptedAt))
	}
	tw.Flush()
}

// maxShownBody is how much of a body show prints.
const maxShownBody = 4 << 10

func printDelivery(w io.Writer, d *delivery.Delivery) {
	fmt.Fprintf(w, "id:        %s\nstate:     %s\nroute:     %s\nrequest:   %s %s\n", d.ID, d.State, d.Route, d.Method, d.URL)
	if d.Key != "" {
		fmt.Fprintf(w, "key:       %s\n", d.Key)
	}
	if d.OrderKey != "" || d.Ordered {
		fmt.Fprintf(w, "order key: %q\n", d.OrderKey)
	}
	if len(d.Targets) > 0 {
		// One request fanned out: every target's delivery, this one too.
		fmt.Fprintf(w, "targets:   %d (request %s)\n", len(d.Targets), d.Request)
		for _, t := range d.Targets {
			last := ""
			if t.LastStatus != 0 {
				last = "  last " + strconv.Itoa(t.LastStatus)
			}
			fmt.Fprintf(w, "  %s  %-9s  %s  %d attempts%s\n", t.ID, t.State, t.Route, t.Attempts, last)
		}
	}
	fmt.Fprintf(w, "accepted:  %s\n", stamp(d.AcceptedAt))
	if !d.ReplayedAt.IsZero() {
		fmt.Fprintf(w, "replayed:  %s\n", stamp(d.ReplayedAt))
	}
	if d.State == delivery.Pending {
		fmt.Fprintf(w, "next:      %s\n", stamp(d.NextAt))
	} else {
		fmt.Fprintf(w, "done:      %s\n", stamp(d.DoneAt))
	}
	fmt.Fprintln(w, "headers:")
	for _, k := range slices.Sorted(maps.Keys(d.Header)) {
		for _, v := range d.Header[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintf(w, "body:      %d bytes\n", d.BodyBytes)
	if b := d.Body; len(b) > 0 {
		if len(b) > maxShownBody {
			b = b[:maxShownBody]
		}
		if utf8.Valid(b) {
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(string(b), "\n", "\n  "))
		} else {
			fmt.Fprintf(w, "  (binary; --json shows it in base64)\n")
		}
		if len(b) < len(d.Body) {
			fmt.Fprintf(w, "  … %d more bytes\n", len(d.Body)-len(b))
		}
	}
	fmt.Fprintf(w, "attempts:  %d\n", len(d.Attempts))
	for i, a := range d.Attempts {
		res := "no answer"
		if a.Status != 0 {
			res = strconv.Itoa(a.Status)
		}
		fmt.Fprintf(w, "  %d  %s  %s  %v", i+1, stamp(a.At), res, a.Duration.Round(time.Millisecond))
		if a.Error != "" {
			fmt.Fprintf(w, "  %s", a.Error)
		}
		fmt.Fprintln(w)
	}
}
