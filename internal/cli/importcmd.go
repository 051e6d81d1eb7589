package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/serverless"
)

// runImport writes the drawbridge.yaml equivalent of another tool's
// config: `drawbridge import serverless [-stage S] [-region R] [-o OUT] FILE`.
// The keys' values are not needed: the output names the variables that
// will hold them.
func runImport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stage := fs.String("stage", "", "value of ${opt:stage} (default: provider.stage, else dev)")
	region := fs.String("region", "", "value of ${opt:region} (default: provider.region)")
	out := fs.String("o", "", "write to `file` instead of stdout")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: drawbridge import serverless [-stage S] [-region R] [-o OUT] serverless.yml")
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "serverless" {
		fs.Usage()
		return exitError(2)
	}
	file, err := oneFileArg(fs, args[1:])
	if err != nil {
		return err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "%s: cannot read: %v\n", file, errors.Unwrap(err))
		return exitError(1)
	}
	im, err := serverless.Import(file, data, os.LookupEnv, serverless.Options{Stage: *stage, Region: *region, WithoutSecrets: true})
	if err != nil {
		return printProblems(err, stderr)
	}
	for _, w := range im.Config.Warnings {
		fmt.Fprintln(stderr, w)
	}
	return writeOutput(*out, stdout, im.Native(file))
}

// oneFileArg parses flags around exactly one positional argument, so
// both "FILE -o OUT" and "-o OUT FILE" work.
func oneFileArg(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return "", exitError(2)
	}
	file := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return "", exitError(2)
	}
	return file, nil
}

// printProblems prints a config error as FILE:LINE lines, exit 1.
func printProblems(err error, stderr io.Writer) error {
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			fmt.Fprintln(stderr, p)
		}
		return exitError(1)
	}
	return err
}

// writeOutput writes data to path, or to stdout when path is "".
func writeOutput(path string, stdout io.Writer, data []byte) error {
	if path == "" {
		_, err := stdout.Write(data)
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
