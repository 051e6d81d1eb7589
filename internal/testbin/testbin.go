// Package testbin builds the pinned programs that tests run as real
// dependencies (the Lambda RIE in internal/lambda/rie, the OpenID provider
// in internal/authorizer/oidcop, the OTLP receiver in
// internal/tracing/collector) from the Go module proxy, once, into the user
// cache directory: outside the repository, so the project's go.mod and
// go.sum never name them, and kept across runs, so only a cold cache pays
// for the build.
//
// A program that cannot be had (no go, no proxy, a failed build) skips the
// calling test, unless CI=true, where every dependency must be present and
// its absence is a failure.
package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Unavailable skips the test with the message, or fails it with the same
// message under CI=true: a skip there would let CI pass without running
// the test at all.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (set CI=true to make this a failure)", args...)
}

// Go returns the path of the go command, or marks the test Unavailable.
func Go(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		Unavailable(t, "go not on PATH: %v", err)
	}
	return p
}

// Program is one executable kept in the cache.
type Program struct {
	// Owner names the package that wants it, the prefix of its messages
	// ("rie").
	Owner string
	// Dir is the executable's directory below drawbridge/ in the user
	// cache. It names the pinned version, so a new pin builds afresh
	// instead of reusing an old build.
	Dir string
	// Exe is the executable's file name.
	Exe string
}

// buildMu serialises builds within a test binary: parallel tests wanting
// the same program wait for one build instead of each starting their own.
// One lock serves every program, as builds of different programs would
// only compete for the same cores.
var buildMu sync.Mutex

// Install returns the path of the executable that
// "go install module@version" builds, installing it on first use. It runs
// outside any module, so the project's go.mod and go.work play no part,
// and with GOFLAGS cleared, so the developer's flags cannot change the
// build.
func Install(t testing.TB, p Program, module, version string) string {
	t.Helper()
	return p.ensure(t, "go install "+module+"@"+version, func(goTool, tmp string) *exec.Cmd {
		cmd := exec.Command(goTool, "install", module+"@"+version)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
		return cmd
	})
}

// Build returns the path of the executable built from a small main module
// whose files (main.go, go.mod, go.sum, by name) the caller embeds, building
// it on first use. A module of its own pins every dependency in its go.sum
// (readonly: a build never updates it) without any of them entering the
// project's go.mod. what describes the program in messages.
func Build(t testing.TB, p Program, what string, files map[string][]byte) string {
	t.Helper()
	return p.ensure(t, "build "+what, func(goTool, tmp string) *exec.Cmd {
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(goTool, "build", "-trimpath", "-o", p.Exe, ".")
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
		return cmd
	})
}

// ensure returns the cached executable, or runs the command that command
// prepares to write it into a fresh directory tmp and renames it into
// place: parallel test binaries (which buildMu does not reach) never see a
// half-written executable, and a failed build leaves nothing behind.
func (p Program) ensure(t testing.TB, what string, command func(goTool, tmp string) *exec.Cmd) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "drawbridge", p.Dir)
	bin := filepath.Join(dir, p.Exe)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin
	}
	goTool := Go(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	if out, err := command(goTool, tmp).CombinedOutput(); err != nil {
		Unavailable(t, "%s: %s: %v\n%s", p.Owner, what, err, out)
	}
	t.Logf("%s: %s took %v", p.Owner, what, time.Since(start).Round(time.Second))
	if err := os.Rename(filepath.Join(tmp, p.Exe), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}
