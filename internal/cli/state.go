package cli

import (
	"errors"
	"path/filepath"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/bolt"
	"github.com/drawbridge/drawbridge/internal/store/memory"
)

// openStore opens the state store cfg.State names: the one place drivers
// are chosen (STYLE §2: drivers are wired by cli alone). The caller closes
// it, after everything that uses it.
//
// A relative embedded path is taken relative to the config file, as
// resource_policy_file is, so a gateway finds the same state whatever
// directory it is started from.
func openStore(cfg *config.Config) (store.Store, error) {
	switch cfg.State.Driver {
	case "memory":
		return memory.New(), nil
	case "embedded", "":
		// bolt.Open gives up after bolt.DefaultTimeout (1 s) when another
		// process holds the file, with an error naming it.
		return bolt.Open(statePath(cfg), bolt.Options{})
	case "redis":
		return nil, errors.New("state.driver redis is not supported by this build yet (use embedded or memory)")
	}
	return nil, errors.New("state.driver " + cfg.State.Driver + " is unknown")
}

// statePath is the embedded driver's file.
func statePath(cfg *config.Config) string {
	p := cfg.State.Path
	if p == "" {
		p = config.DefaultStatePath
	}
	if !filepath.IsAbs(p) && cfg.File != "" {
		p = filepath.Join(filepath.Dir(cfg.File), p)
	}
	return p
}
