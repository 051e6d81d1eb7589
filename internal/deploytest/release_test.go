package deploytest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Stamped into the test's release builds; DEB_VERSION is the Debian form
// the Makefile derives from it.
const (
	relVersion = "v1.2.3-4-gabcdef0"
	relCommit  = "0123456789abcdef0123456789abcdef01234567"
	debVersion = "1.2.3+4.gabcdef0"
	relEpoch   = 1700000000 // SOURCE_DATE_EPOCH: 2023-11-14T22:13:20Z
)

// TestRelease runs `make release` twice, each time in its own copy of the
// working tree (the second copy with other file times and group-writable
// modes, as another checkout could have), with the module proxy off, and
// demands identical bytes. To keep the test's time modest it builds only
// linux/amd64 (archive, .deb and Lambda zip); `make release` builds the
// whole matrix the same way. Then the .deb is installed into a scratch
// root with dpkg and the installed binary runs.
func TestRelease(t *testing.T) {
	for _, name := range []string{"make", "tar", "gzip", "sha256sum", "git", "dpkg", "dpkg-deb"} {
		tool(t, name)
	}
	root := repoRoot(t)
	tmp := t.TempDir()
	files := treeFiles(t, root)
	// What the builds compile must be in the module cache first: a fresh
	// machine (CI) has not fetched the tools module's dependencies (nFPM)
	// yet, and the builds themselves run with the proxy off.
	for _, dir := range []string{root, filepath.Join(root, "tools")} {
		run(t, 10*time.Minute, dir, []string{"GOWORK=off"}, "go", "mod", "download")
	}

	build := func(name string, skew time.Duration, extraMode fs.FileMode) string {
		dir := filepath.Join(tmp, name)
		copyTree(t, root, dir, files, skew, extraMode)
		run(t, 10*time.Minute, dir, []string{"GOPROXY=off", "GOWORK=off"},
			"make", "-s", "release",
			"PLATFORMS=linux/amd64", "DEB_ARCHES=amd64", "ARCHES=amd64",
			"VERSION="+relVersion, "COMMIT="+relCommit,
			"SOURCE_DATE_EPOCH="+strconv.FormatInt(relEpoch, 10))
		return filepath.Join(dir, "dist", "release")
	}
	a := build("a", 0, 0)
	b := build("b", 3*time.Hour, 0o020)

	want := []string{
		"SHA256SUMS",
		"drawbridge_" + debVersion + "_amd64.deb",
		"drawbridge_" + relVersion + "_lambda_amd64.zip",
		"drawbridge_" + relVersion + "_linux_amd64.tar.gz",
	}
	if got := dirNames(t, a); !slices.Equal(got, want) {
		t.Fatalf("release files = %q, want %q", got, want)
	}
	if got := dirNames(t, b); !slices.Equal(got, want) {
		t.Fatalf("second build's release files = %q, want %q", got, want)
	}
	for _, name := range want {
		x, err := os.ReadFile(filepath.Join(a, name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds (%d and %d bytes)", name, len(x), len(y))
		}
	}
	run(t, time.Minute, a, nil, "sha256sum", "--check", "--strict", "SHA256SUMS")

	t.Run("archive", func(t *testing.T) {
		checkArchive(t, filepath.Join(a, want[3]), "drawbridge_"+relVersion+"_linux_amd64/")
	})
	t.Run("deb", func(t *testing.T) {
		checkDeb(t, filepath.Join(a, want[1]))
	})
}

// checkArchive reads the tarball: one top directory holding the binary and
// README.md, every member owned by root and dated SOURCE_DATE_EPOCH.
func checkArchive(t *testing.T, path, top string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	modes := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d/%d %q/%q, want 0/0 without names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Unix() != relEpoch {
			t.Errorf("%s: mtime %v, want SOURCE_DATE_EPOCH", h.Name, h.ModTime)
		}
		if !strings.HasPrefix(h.Name, top) {
			t.Errorf("%s: outside %s", h.Name, top)
		}
	}
	if modes[top+"drawbridge"] != 0o755 || modes[top+"README.md"] != 0o644 || modes[top] != 0o755 {
		t.Errorf("archive members and modes: %v", modes)
	}
}

// checkDeb reads the package's control fields, then installs it into a
// scratch root with dpkg (maintainer scripts run outside a chroot, with
// DPKG_ROOT set, so they leave the host's systemd alone), runs the
// installed binary, and removes the package again.
func checkDeb(t *testing.T, deb string) {
	out, _ := run(t, time.Minute, "", nil, "dpkg-deb", "--field", deb, "Package", "Version", "Architecture")
	if want := "Package: drawbridge\nVersion: " + debVersion + "\nArchitecture: amd64\n"; out != want {
		t.Errorf("control fields:\n%s\nwant:\n%s", out, want)
	}
	out, _ = run(t, time.Minute, "", nil, "dpkg-deb", "--info", deb, "conffiles")
	if out != "/etc/drawbridge/drawbridge.yaml\n" {
		t.Errorf("conffiles = %q", out)
	}

	sr := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(sr, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(sr, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dpkg := func(args ...string) string {
		t.Helper()
		out, _ := run(t, time.Minute, "", nil, "dpkg", append([]string{
			"--root=" + sr, "--log=/dev/null", "--force-not-root", "--force-script-chrootless",
		}, args...)...)
		return out
	}
	dpkg("--install", deb)
	if out := dpkg("--status", "drawbridge"); !strings.Contains(out, "Status: install ok installed\n") {
		t.Fatalf("dpkg --status after install:\n%s", out)
	}
	for _, f := range []string{
		"usr/lib/systemd/system/drawbridge.service",
		"usr/lib/systemd/system/drawbridge-agent.service",
		"etc/drawbridge/drawbridge.yaml",
	} {
		if _, err := os.Stat(filepath.Join(sr, f)); err != nil {
			t.Error(err)
		}
	}
	bin := filepath.Join(sr, "usr", "bin", "drawbridge")
	out, _ = run(t, time.Minute, "", nil, bin, "version")
	if want := "drawbridge " + relVersion + " (commit " + relCommit + ", go"; !strings.HasPrefix(out, want) ||
		!strings.HasSuffix(out, " linux/amd64)\n") {
		t.Errorf("installed drawbridge version = %q, want %q...linux/amd64)", out, want)
	}
	// The shipped default config is valid as it stands.
	run(t, time.Minute, "", nil, bin, "check", "-c", filepath.Join(sr, "etc", "drawbridge", "drawbridge.yaml"))

	dpkg("--remove", "drawbridge")
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("binary after remove: %v", err)
	}
	// A remove (not a purge) keeps the operator's config, as for any
	// Debian conffile.
	if _, err := os.Stat(filepath.Join(sr, "etc", "drawbridge", "drawbridge.yaml")); err != nil {
		t.Errorf("config after remove: %v", err)
	}
}

// treeFiles lists the working tree's files as git sees them: tracked ones
// and new ones not ignored, so uncommitted edits are what gets built.
func treeFiles(t *testing.T, root string) []string {
	t.Helper()
	out, _ := run(t, time.Minute, root, nil, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	var files []string
	for _, f := range strings.Split(strings.TrimSuffix(out, "\x00"), "\x00") {
		if fi, err := os.Lstat(filepath.Join(root, f)); err == nil && fi.Mode().IsRegular() {
			files = append(files, f)
		}
	}
	return files
}

// copyTree copies files into dst, their times moved by skew and extraMode
// added to their permissions.
func copyTree(t *testing.T, src, dst string, files []string, skew time.Duration, extraMode fs.FileMode) {
	t.Helper()
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755|extraMode); err != nil {
			t.Fatal(err)
		}
		mode := fi.Mode().Perm() | extraMode
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		mt := fi.ModTime().Add(skew)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
