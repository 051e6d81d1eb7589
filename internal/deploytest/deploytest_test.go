package deploytest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// repoRoot is the repository's top directory: this package sits two levels
// below it.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// tool finds a program the test needs. Under CI=true a missing one fails
// the test (./test.sh installs them), elsewhere it skips.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing; the test needs it (./test.sh installs it)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// run runs a command and returns its stdout and stderr apart; a non-zero
// exit or a timeout fails the test with both.
func run(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, o.String(), e.String())
	}
	return o.String(), e.String()
}

// buildDrawbridge compiles the program into dir and returns its path.
func buildDrawbridge(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "drawbridge")
	run(t, 5*time.Minute, repoRoot(t), []string{"CGO_ENABLED=0"},
		"go", "build", "-trimpath", "-o", bin, "./cmd/drawbridge")
	return bin
}
