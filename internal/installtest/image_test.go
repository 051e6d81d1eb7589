package installtest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	testVersion = "v0.0.0-imagetest"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
	// The image's user and group (the Dockerfile's USER).
	imageUID = 65532
)

// The whole image: anything more (a shell, a package manager, a stray
// build file) fails the test. Directories end in /.
var wantFiles = []string{
	"etc/", "etc/drawbridge/", "etc/drawbridge/drawbridge.yaml", "etc/group", "etc/passwd",
	"etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt",
	"usr/", "usr/bin/", "usr/bin/drawbridge",
	"var/", "var/lib/", "var/lib/drawbridge/",
}

// imageConfig is the part of the image config the test reads (Docker's
// and OCI's config JSON share these keys).
type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		User         string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		WorkingDir   string
		Entrypoint   []string
		Cmd          []string
		Env          []string
		Healthcheck  *struct {
			Test    []string
			Retries int
		}
	} `json:"config"`
}

// TestImage builds the image from the Dockerfile, offline, checks its
// contents and config, then unpacks it and runs it as a container would:
// chrooted into the image's filesystem, as the image's user, in new PID
// (the gateway is PID 1), UTS and IPC namespaces, with the image's
// entrypoint, command, environment and working directory. No container
// runtime runs on the machine this was written on (no daemon, no
// registry), so the image is not run by Docker or podman; the network
// namespace is the host's, so the test reaches the listeners on loopback
// as `docker run --network host` would. Without root it runs the image
// rootless, as podman would: in a user namespace that maps the image's
// user to the test's.
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image is a linux image")
	}
	root := repoRoot(t)
	tmp := t.TempDir()

	// The build tool lives in tools/go.mod, so that go-containerregistry
	// is no dependency of the program. Building the tool may fetch its
	// modules; the image build itself runs with the module proxy off.
	tool := filepath.Join(tmp, "imagebuild")
	run(t, 5*time.Minute, filepath.Join(root, "tools"), []string{"GOWORK=off"},
		"go", "build", "-o", tool, "./imagebuild")
	build := func(out string) []byte {
		run(t, 5*time.Minute, root, []string{"GOPROXY=off", "GOWORK=off", "SOURCE_DATE_EPOCH=1700000000"},
			tool, "-f", "Dockerfile", "-C", ".", "-t", "drawbridge:imagetest",
			"--build-arg", "VERSION="+testVersion, "--build-arg", "COMMIT="+testCommit, "-o", out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	image := filepath.Join(tmp, "image.tar")
	// Reproducible: a second build (in another scratch directory) gives
	// the same bytes, so the same image digest.
	if a, b := build(image), build(filepath.Join(tmp, "again.tar")); !bytes.Equal(a, b) {
		t.Errorf("two builds differ (%d and %d bytes)", len(a), len(b))
	}

	cfg, layers := readImage(t, image)
	rootfs := filepath.Join(tmp, "rootfs")
	files, owners := unpack(t, layers, rootfs)

	t.Run("contents", func(t *testing.T) {
		if !slices.Equal(files, wantFiles) {
			t.Errorf("image files = %q\nwant %q", files, wantFiles)
		}
		for _, sh := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh", "usr/bin/env"} {
			if _, err := os.Lstat(filepath.Join(rootfs, sh)); err == nil {
				t.Errorf("the image has /%s", sh)
			}
		}
		// Static: no ELF interpreter (dynamic loader) to find at run time.
		f, err := elf.Open(filepath.Join(rootfs, "usr/bin/drawbridge"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("usr/bin/drawbridge is dynamically linked (has PT_INTERP)")
			}
		}
		if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]; want != 0 && f.Machine != want {
			t.Errorf("binary machine %v, want %v", f.Machine, want)
		}
		passwd, _ := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
		if !strings.Contains(string(passwd), fmt.Sprintf("drawbridge:x:%d:%d:", imageUID, imageUID)) {
			t.Errorf("/etc/passwd has no drawbridge user %d:\n%s", imageUID, passwd)
		}
		ca, _ := os.ReadFile(filepath.Join(rootfs, "etc/ssl/certs/ca-certificates.crt"))
		if !bytes.Contains(ca, []byte("BEGIN CERTIFICATE")) {
			t.Error("the CA bundle holds no certificate")
		}
		if o := owners["var/lib/drawbridge"]; o != [2]int{imageUID, imageUID} {
			t.Errorf("/var/lib/drawbridge owned by %d:%d in the image, want the image's user", o[0], o[1])
		}
	})

	t.Run("config", func(t *testing.T) {
		c := cfg.Config
		if c.User != fmt.Sprintf("%d:%d", imageUID, imageUID) {
			t.Errorf("User = %q", c.User)
		}
		if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
			t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
		}
		if _, ok := c.Volumes["/var/lib/drawbridge"]; !ok || len(c.Volumes) != 1 {
			t.Errorf("Volumes = %v, want the state directory", c.Volumes)
		}
		for _, p := range []string{"8080/tcp", "9090/tcp"} {
			if _, ok := c.ExposedPorts[p]; !ok {
				t.Errorf("ExposedPorts = %v, want %s", c.ExposedPorts, p)
			}
		}
		// CMD, not CMD-SHELL: a shell-form health check would need /bin/sh.
		if c.Healthcheck == nil || len(c.Healthcheck.Test) < 2 || c.Healthcheck.Test[0] != "CMD" {
			t.Errorf("Healthcheck = %+v, want an exec-form CMD", c.Healthcheck)
		}
		if len(c.Entrypoint) == 0 || c.Entrypoint[0] != "/usr/bin/drawbridge" {
			t.Errorf("Entrypoint = %q", c.Entrypoint)
		}
	})
	if t.Failed() {
		return
	}

	entry := cfg.Config.Entrypoint
	out := runImage(t, rootfs, cfg, append(slices.Clone(entry), "version"))
	if !strings.Contains(out, "drawbridge "+testVersion+" (commit "+testCommit) {
		t.Errorf("version = %q, want the stamped version and commit", out)
	}

	// The user's config, as `docker run -v ./drawbridge.yaml:/etc/drawbridge/drawbridge.yaml`
	// would put it; state stays where the shipped config puts it, in the volume.
	var forwarded sync.Map
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded.Store(r.URL.Path, true)
		fmt.Fprintf(w, "backend saw %s", r.URL.Path)
	}))
	defer backend.Close()
	listen, admin := freePort(t), freePort(t)
	conf := fmt.Sprintf(`listen: %q
admin: %q
state: {driver: embedded, path: /var/lib/drawbridge/drawbridge.db}
routes:
  - path: /app/*
    target: %s/
    allow_ips: [127.0.0.0/8]
`, listen, admin, backend.URL)
	if err := os.WriteFile(filepath.Join(rootfs, "etc/drawbridge/drawbridge.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	gw, logs := startImage(t, rootfs, cfg, append(slices.Clone(entry), cfg.Config.Cmd...))
	waitHealthy(t, "http://"+admin+"/healthz", gw, logs)

	if uid := processUID(t, gw.Process.Pid); uid != fmt.Sprint(hostUID(imageUID)) {
		t.Errorf("the gateway runs as uid %s, want %d", uid, hostUID(imageUID))
	}
	if rootless() {
		// The image's uid inside the user namespace, this test's outside.
		m, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", gw.Process.Pid))
		if f := strings.Fields(string(m)); err != nil || len(f) != 3 || f[0] != fmt.Sprint(imageUID) || f[1] != fmt.Sprint(os.Getuid()) {
			t.Errorf("uid_map %q (%v), want %d mapped to %d", m, err, imageUID, os.Getuid())
		}
	}
	// The image's own HEALTHCHECK, run inside the container as Docker
	// would: the command as it is, not through the entrypoint.
	hc := runImage(t, rootfs, cfg, cfg.Config.Healthcheck.Test[1:])
	if strings.TrimSpace(hc) != `{"status":"ok"}` {
		t.Errorf("HEALTHCHECK printed %q", hc)
	}

	resp, err := http.Get("http://" + listen + "/app/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "backend saw /hello" {
		t.Errorf("GET /app/hello = %d %q, want 200 from the backend", resp.StatusCode, body)
	}
	if _, ok := forwarded.Load("/hello"); !ok {
		t.Error("the backend did not see /hello")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(rootfs, "var/lib/drawbridge/drawbridge.db"), &st); err != nil || st.Uid != hostUID(imageUID) {
		t.Errorf("state file in the volume: %v, owner %d", err, st.Uid)
	}

	// docker stop: SIGTERM, then the gateway drains and exits 0.
	if err := gw.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want exit 0\n%s", err, logs)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("still running 40 s after SIGTERM\n%s", logs)
	}
}

// startImage starts argv in the image's filesystem, as the image's user,
// with the image's environment and working directory.
func startImage(t *testing.T, rootfs string, cfg imageConfig, argv []string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	// Docker's default PATH, then the image's environment, and nothing of
	// the test's.
	c.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, cfg.Config.Env...)
	c.Dir = cfg.Config.WorkingDir
	c.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     rootfs,
		Credential: imageUser(t, cfg.Config.User),
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		Pdeathsig:  syscall.SIGKILL,
	}
	if rootless() {
		// Without root, as rootless podman: a user namespace in which this
		// test's uid and gid are the image's, which gives the chroot and
		// the new namespaces the capabilities they need.
		a := c.SysProcAttr
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: int(a.Credential.Uid), HostID: os.Getuid(), Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: int(a.Credential.Gid), HostID: os.Getgid(), Size: 1}}
		a.Credential.NoSetGroups = true
	}
	logs := &syncBuffer{}
	c.Stdout, c.Stderr = logs, logs
	if err := c.Start(); err != nil {
		t.Fatalf("start %q in the image: %v", argv, err)
	}
	t.Cleanup(func() {
		c.Process.Kill()
		c.Wait()
	})
	return c, logs
}

// imageUser is the image's USER as a runtime applies it: numeric
// UID:GID (a name would need the image's /etc/passwd; the Dockerfile
// gives numbers so that Kubernetes' runAsNonRoot can check them).
func imageUser(t *testing.T, user string) *syscall.Credential {
	t.Helper()
	u, g, _ := strings.Cut(user, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("USER %q: want numeric UID:GID", user)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// runImage runs one command in the image and returns its output; a
// non-zero exit fails the test.
func runImage(t *testing.T, rootfs string, cfg imageConfig, args []string) string {
	t.Helper()
	c, logs := startImage(t, rootfs, cfg, args)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%q in the image: %v\n%s", args, err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%q in the image still runs after 30 s", args)
	}
	return logs.String()
}

func waitHealthy(t *testing.T, url string, gw *exec.Cmd, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if gw.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("no 200 from %s (last: %v)\n%s", url, err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processUID is the real, effective, saved and filesystem uid of pid,
// which must all be one.
func processUID(t *testing.T, pid int) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			ids := strings.Fields(rest)
			for _, id := range ids[1:] {
				if id != ids[0] {
					return rest
				}
			}
			return ids[0]
		}
	}
	t.Fatalf("no Uid line for pid %d", pid)
	return ""
}

// readImage reads a `docker save` tarball (what tools/imagebuild writes
// and `docker load` takes): manifest.json names the config and the layers.
func readImage(t *testing.T, file string) (imageConfig, [][]byte) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blobs := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if blobs[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(blobs["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v (%d images)", err, len(manifest))
	}
	m := manifest[0]
	if !slices.Equal(m.RepoTags, []string{"drawbridge:imagetest"}) {
		t.Errorf("RepoTags = %q", m.RepoTags)
	}
	var cfg imageConfig
	if err := json.Unmarshal(blobs[m.Config], &cfg); err != nil {
		t.Fatalf("config %s: %v", m.Config, err)
	}
	var layers [][]byte
	for _, l := range m.Layers {
		b := blobs[l]
		if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatalf("layer %s: %v", l, err)
			}
		}
		layers = append(layers, b)
	}
	return cfg, layers
}

// unpack applies the layers in order into dir, owners and modes as
// recorded (the test runs as root), and returns every path, sorted.
func unpack(t *testing.T, layers [][]byte, dir string) (files []string, owners map[string][2]int) {
	t.Helper()
	seen := map[string]bool{}
	owners = map[string][2]int{}
	for i, l := range layers {
		tr := tar.NewReader(bytes.NewReader(l))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
			name := path.Clean(h.Name)
			if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || strings.Contains(path.Base(name), ".wh.") {
				t.Fatalf("layer %d: unexpected entry %q", i, h.Name)
			}
			p := filepath.Join(dir, filepath.FromSlash(name))
			owners[name] = [2]int{h.Uid, h.Gid}
			switch h.Typeflag {
			case tar.TypeDir:
				seen[name+"/"] = true
				if err := os.MkdirAll(p, 0o755); err != nil {
					t.Fatal(err)
				}
			case tar.TypeReg:
				seen[name] = true
				data, _ := io.ReadAll(tr)
				if err := os.WriteFile(p, data, 0o600); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("layer %d: %q has type %c; the image should hold only files and directories", i, h.Name, h.Typeflag)
			}
			if !rootless() { // rootless: the test's own files are the image user's in its namespace
				if err := os.Chown(p, h.Uid, h.Gid); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(p, os.FileMode(h.Mode).Perm()); err != nil {
				t.Fatal(err)
			}
		}
	}
	files = make([]string, 0, len(seen))
	for f := range seen {
		files = append(files, f)
	}
	slices.Sort(files)
	return files, owners
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// run runs a command on the host; a non-zero exit fails the test.
func run(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rootless reports whether the test runs without root: the image then
// runs in a user namespace that maps the image's user to the test's.
func rootless() bool { return os.Geteuid() != 0 }

// hostUID is the uid that the image's uid appears as outside the image.
func hostUID(uid uint32) uint32 {
	if rootless() {
		return uint32(os.Getuid())
	}
	return uid
}
