package cli

import (
	"os"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/serverless"
)

// loadConfig reads the config file every command takes with -c: a
// serverless.yml as it is (a top-level service, provider or functions
// key, none of which drawbridge.yaml has; docs/serverless.md), anything
// else as drawbridge.yaml. Secrets come from the process environment.
func loadConfig(path string) (*config.Config, error) {
	data, err := config.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if serverless.Detect(data) {
		im, err := serverless.Import(path, data, os.LookupEnv, serverless.Options{})
		if err != nil {
			return nil, err
		}
		return im.Config, nil
	}
	return config.Parse(path, data, os.LookupEnv)
}
