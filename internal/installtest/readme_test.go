package installtest

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeCommands are the README's first two commands, word for word.
var readmeCommands = []string{"go run ./cmd/drawbridge demo", "./test.sh"}

// TestREADMEStart checks that the README still begins with its two
// commands and that the first still runs, as written, from a copy of the
// repository that holds only what a clone would (no ignored or generated
// file); TestDemoCurlLines in internal/cli runs the demo's curl lines.
// The second is this test suite, so it is only checked to be there.
func TestREADMEStart(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The title, then the two code blocks, before any prose.
	start := regexp.MustCompile("^# drawbridge\n\n```sh\n([^\n]*)\n```\n\n```sh\n([^\n]*)\n```\n")
	m := start.FindSubmatch(readme)
	if m == nil || string(m[1]) != readmeCommands[0] || string(m[2]) != readmeCommands[1] {
		t.Fatalf("README.md does not begin with the two commands %q", readmeCommands)
	}
	if info, err := os.Stat(filepath.Join(root, "test.sh")); err != nil || info.Mode()&0o111 == 0 {
		t.Errorf("test.sh is missing or not executable: %v", err)
	}

	git, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git is missing; the test lists the repository's files with it")
		}
		t.Skip("git not installed")
	}
	// What a clone has: tracked files, and new ones not yet committed
	// (but not ignored ones), so that the test also holds before a commit.
	out, err := exec.Command(git, "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	// One directory per checkout, the same on every run: the build cache
	// keys a package by its directory (no -trimpath here, as in the
	// README), so a new directory each time would compile every package
	// of the program again.
	sum := sha256.Sum256([]byte(root))
	clone := filepath.Join(os.TempDir(), fmt.Sprintf("drawbridge-readme-%x", sum[:6]))
	if err := os.RemoveAll(clone); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(clone) })
	for _, f := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, f)
		info, err := os.Lstat(src)
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(clone, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}

	args := strings.Fields(readmeCommands[0])
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = clone
	// The module cache the test's own build filled: no download.
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOWORK=off", "GOFLAGS=-mod=readonly")
	// A group of its own: Ctrl-C reaches go run and the demo together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	timeout := time.After(4 * time.Minute)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%q ended before its examples: %v\nstdout:\n%s\nstderr:\n%s", readmeCommands[0], cmd.Wait(), strings.Join(seen, "\n"), &stderr)
			}
			seen = append(seen, l)
			if strings.HasPrefix(l, "End of examples.") {
				break wait
			}
		case <-timeout:
			t.Fatalf("%q printed no examples within 4 minutes\n%s", readmeCommands[0], &stderr)
		}
	}
	if !strings.Contains(strings.Join(seen, "\n"), "curl ") {
		t.Errorf("the demo printed no curl line:\n%s", strings.Join(seen, "\n"))
	}
	// Ctrl-C, as a terminal sends it: to go run and the demo together.
	// go run then exits 1 whatever the demo does (it reports the
	// interrupt), so the demo's own goodbye is the sign it stopped cleanly.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	stopped := false
	timeout = time.After(30 * time.Second)
drain:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break drain
			}
			stopped = stopped || l == "stopping the demo"
		case <-timeout:
			t.Fatal("the demo did not stop on Ctrl-C")
		}
	}
	if !stopped {
		t.Errorf("the demo did not say it was stopping\n%s", &stderr)
	}
	cmd.Wait()
}

// TestREADMEInstall checks the README's Install section: above the tour,
// with the four ways in, each naming what exists in the repository.
func TestREADMEInstall(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	install := strings.Index(text, "\n## Install\n")
	tour := strings.Index(text, "\n## A 60-second tour\n")
	if install < 0 || tour < 0 || install > tour {
		t.Fatalf("README.md: Install section at %d, tour at %d; want Install first", install, tour)
	}
	section := text[install:tour]
	for _, want := range []string{"docker build -t drawbridge .", "make image", "deploy/helm/drawbridge", "make release", ".deb", "go install github.com/drawbridge/drawbridge/cmd/drawbridge@latest", "docs/install.md"} {
		if !strings.Contains(section, want) {
			t.Errorf("the Install section does not mention %q", want)
		}
	}
	for _, f := range []string{"Dockerfile", "docs/install.md"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("the Install section points at %s: %v", f, err)
		}
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"\nimage:", "\nrelease:"} {
		if !strings.Contains(string(mk), target) {
			t.Errorf("the Makefile has no %s target", strings.TrimSpace(target))
		}
	}
}
