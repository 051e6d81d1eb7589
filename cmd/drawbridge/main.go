// Command drawbridge carries requests from the public internet into a
// private network, safely. See README.md; `drawbridge help` lists commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/drawbridge/drawbridge/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
