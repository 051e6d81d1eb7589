// Package cli is drawbridge's command line: it loads config, wires the
// parts together and runs them. Nothing imports it but cmd/drawbridge and
// its own tests, which run the real program in-process on 127.0.0.1:0.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set by the release build: -ldflags "-X github.com/drawbridge/drawbridge/internal/cli.version=v1.2.3 -X ...commit=abc".
var (
	version = "dev"
	commit  = ""
)

// Main runs one command and returns the process exit code. ctx is
// cancelled on SIGTERM/SIGINT; long-running commands drain and return.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, rest, stdout, stderr)
	case "check":
		err = runCheck(rest, stdout, stderr)
	case "agent":
		err = runAgent(ctx, rest, stdout, stderr)
	case "demo":
		err = runDemo(ctx, rest, stdout, stderr)
	case "explain":
		err = runExplain(rest, stdout, stderr)
	case "keys":
		err = runKeys(ctx, rest, stdout, stderr)
	case "ipsets":
		err = runIPSets(rest, stdout, stderr)
	case "deliveries":
		err = runDeliveries(rest, stdout, stderr)
	case "import":
		err = runImport(rest, stdout, stderr)
	case "export":
		err = runExport(rest, stdout, stderr)
	case "health":
		err = runHealth(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionLine())
	case "help", "-h", "--help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "drawbridge: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	var ex exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ex):
		return int(ex)
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintln(stderr, "drawbridge:", err)
		return 1
	}
}

// exitError ends a command with a code after it has printed its own
// messages.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func versionLine() string {
	c := commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("drawbridge %s (commit %s, %s %s/%s)", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `drawbridge carries requests from the public internet into a private network, safely.

Usage:
  drawbridge serve [-c FILE]    run the gateway (default config drawbridge.yaml)
  drawbridge check [-c FILE]    validate the config: exit 0, or 1 with FILE:LINE: message lines
  drawbridge agent [-c FILE]    run an agent: dial the edge, serve its via routes in the private network (default agent.yaml)
  drawbridge demo               run a sample backend and a gateway in front of it, print curl lines
  drawbridge explain [-c FILE] --method M --path P --ip IP [--header 'K: V']... [--api-key K] [--data BODY]
                                show each guard's decision for an imaginary request (nothing consumed)
  drawbridge keys create --name N [--plan P]
                                make an API key: printed once, with the config snippet holding its SHA-256
  drawbridge keys usage [-c FILE] [--key NAME]
                                quota used and remaining per key in the current period
  drawbridge ipsets update github-hooks --from FILE [-c FILE]
                                refresh the local copy of GitHub's hook ranges from a saved /meta JSON
  drawbridge deliveries [-c FILE] list|show ID|replay ID|purge
                                inspect and replay the durable webhook queue
  drawbridge import serverless FILE [--stage S] [--region R]
                                write a serverless.yml as a commented drawbridge.yaml (stdout)
  drawbridge export sam|serverless [-c FILE] [-o OUT]
                                write a template that makes API Gateway enforce the same limits
  drawbridge health [-c FILE] [--url URL]
                                ask the running gateway's admin /healthz: exit 0 when it answers 200
  drawbridge version            print version, commit and Go version
`)
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("c", "drawbridge.yaml", "config `file`")
}
