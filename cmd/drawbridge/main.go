// Command drawbridge carries requests from the public internet into a
// private network, safely. See README.md; `drawbridge help` lists commands.
//
// Started by the Lambda runtime as a function's bootstrap, it serves Lambda
// events instead (docs/lambda.md).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/drawbridge/drawbridge/internal/cli"
)

func main() {
	if cli.InLambda(os.Getenv, os.Args[1:]) {
		os.Exit(cli.RunLambda(os.LookupEnv, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
