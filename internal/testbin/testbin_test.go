package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func hello(word string) map[string][]byte {
	return map[string][]byte{
		"go.mod":  []byte("module example.com/hello\n\ngo 1.22\n"),
		"main.go": []byte("package main\n\nfunc main() { println(\"" + word + "\") }\n"),
	}
}

// tempCache points the user cache directory at a fresh one for the test,
// keeping go's build cache where it was: it lives in the user cache
// directory too, and an empty one would rebuild the standard library.
func tempCache(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(Go(t), "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOCACHE", strings.TrimSpace(string(out)))
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	return cache
}

func run(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	return strings.TrimSpace(string(out))
}

// The first Build compiles into the cache; a later one returns that build
// as it is, even for other sources: the cache is keyed by Dir, which names
// the pin.
func TestBuildOnceIntoCache(t *testing.T) {
	cache := tempCache(t)
	p := Program{Owner: "hello", Dir: "hello/v1", Exe: "hello"}
	bin := Build(t, p, "hello", hello("one"))
	if want := filepath.Join(cache, "drawbridge", "hello", "v1", "hello"); bin != want {
		t.Fatalf("Build = %s, want %s", bin, want)
	}
	if got := run(t, bin); got != "one" {
		t.Fatalf("first build prints %q, want one", got)
	}
	if again := Build(t, p, "hello", hello("two")); again != bin {
		t.Fatalf("second Build = %s, want %s", again, bin)
	}
	if got := run(t, bin); got != "one" {
		t.Fatalf("after a second Build the program prints %q: it was rebuilt", got)
	}
	entries, err := os.ReadDir(filepath.Dir(bin))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("cache directory holds %v, want the executable alone", entries)
	}
}

// recorder is a testing.TB that records a skip or a failure and ends the
// goroutine, as the real ones do, so the outcome of Unavailable can be
// checked without failing this test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func buildBroken(t *testing.T) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Build(r, Program{Owner: "broken", Dir: "broken/v1", Exe: "broken"}, "the broken program", map[string][]byte{
			"go.mod":  []byte("module example.com/broken\n\ngo 1.22\n"),
			"main.go": []byte("package main\n\nfunc main() { undefined() }\n"),
		})
	}()
	<-done
	return r
}

// A failed build skips the test outside CI and fails it under CI=true,
// with the build's output, and leaves nothing in the cache.
func TestBuildFailure(t *testing.T) {
	cache := tempCache(t)

	t.Setenv("CI", "")
	r := buildBroken(t)
	if r.failed != "" || !strings.HasPrefix(r.skipped, "broken: build the broken program: ") ||
		!strings.Contains(r.skipped, "undefined") || !strings.HasSuffix(r.skipped, "(set CI=true to make this a failure)") {
		t.Fatalf("outside CI: skipped %q, failed %q", r.skipped, r.failed)
	}

	t.Setenv("CI", "true")
	r = buildBroken(t)
	if r.skipped != "" || !strings.HasPrefix(r.failed, "broken: build the broken program: ") || strings.Contains(r.failed, "CI=true") {
		t.Fatalf("under CI: skipped %q, failed %q", r.skipped, r.failed)
	}

	entries, err := os.ReadDir(filepath.Join(cache, "drawbridge", "broken", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("a failed build left %v in the cache", entries)
	}
}
