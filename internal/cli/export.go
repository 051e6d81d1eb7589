package cli

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/export"
	"github.com/drawbridge/drawbridge/internal/serverless"
)

// runExport writes a deployable AWS template for a config:
// `drawbridge export sam|serverless [-c FILE] [-o OUT]`. The config may be
// a drawbridge.yaml or a serverless.yml; secrets are not needed, the
// templates only name the variables that hold them.
func runExport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	out := fs.String("o", "", "write to `file` instead of stdout")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: drawbridge export sam|serverless [-c FILE] [-o OUT]")
		fs.PrintDefaults()
	}
	if len(args) == 0 || (args[0] != "sam" && args[0] != "serverless") {
		fs.Usage()
		return exitError(2)
	}
	format := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return exitError(2)
	}
	cfg, err := loadWithoutSecrets(*path)
	if err != nil {
		return printProblems(err, stderr)
	}
	var data []byte
	if format == "sam" {
		data, err = export.SAM(cfg)
	} else {
		data, err = export.Serverless(cfg)
	}
	if err != nil {
		return err
	}
	for _, n := range export.Notes(cfg) {
		fmt.Fprintln(stderr, "note: not enforced by AWS:", n)
	}
	return writeOutput(*out, stdout, data)
}

// loadWithoutSecrets loads a config whose secrets may be absent: a
// variable that is not set reads as a placeholder (a serverless.yml's own
// ${env:...} variables still read the real environment).
func loadWithoutSecrets(path string) (*config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &config.Error{Problems: []config.Problem{{File: path, Msg: "cannot read config: " + err.Error()}}}
	}
	if serverless.Detect(data) {
		im, err := serverless.Import(path, data, os.LookupEnv, serverless.Options{WithoutSecrets: true})
		if err != nil {
			return nil, err
		}
		return im.Config, nil
	}
	return config.Parse(path, data, func(name string) (string, bool) {
		if v, ok := os.LookupEnv(name); ok {
			return v, true
		}
		return "placeholderForExport0000", true // in the API key format
	})
}
