// Package redistest starts a real redis-server for a test: on a free
// loopback port, with its data in the test's temp dir, stopped (SIGKILL) when
// the test ends. Tests of the redis driver run against it instead of a mock,
// so they see real scripts, real timeouts and real crashes. StartCluster
// and StartSentinel start the failover deployments (a Redis Cluster; a
// primary, its replica and three sentinels), Options.TLS a TLS-only
// server with a CA made for the test.
//
// When redis-server is not installed the test is skipped, except under
// CI=true, where it fails: CI must never pass by skipping the state driver
// that replicas share. test.sh installs the Debian package when missing.
package redistest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a redis-server may take to say it is ready.
const startTimeout = 10 * time.Second

// Options change how the server is started. The zero value is a plain
// server on the real clock without persistence.
//
// The clock options preload a small shim (clock.go) into redis-server that
// moves its wall clock (TIME, key expiry) and nothing else: this is how
// tests show that limits follow the Redis clock, not the client's. The shim
// replaces faketime(1): libfaketime hangs or fails in any program linked
// with jemalloc, as Debian's redis-server is (wolfcw/libfaketime#130), and
// it cannot move a Go program's clock anyway. Building it needs gcc.
type Options struct {
	// Shift moves the server's clock by this much (it keeps ticking).
	Shift time.Duration
	// Frozen, when not zero, stops the server's clock at this instant; the
	// test moves it with SetTime. It overrides Shift.
	Frozen time.Time
	// Config holds extra redis.conf directives, one per element, for
	// example "appendonly yes".
	Config []string
	// TLS serves TLS only (tls-port; the plain port is off) with a
	// certificate for 127.0.0.1 from a CA made for this server: see
	// Server.CA and NewCA.
	TLS bool
	// sentinel runs the server as a sentinel (StartSentinels).
	sentinel bool
}

// Server is one redis-server process. Its address stays the same across
// Kill and Restart, so a client made before a crash can reconnect.
type Server struct {
	Addr string // 127.0.0.1:PORT
	Dir  string // working directory (RDB/AOF files)
	// CA is the PEM file of the CA that signed the server's certificate,
	// with Options.TLS.
	CA string

	t     testing.TB
	opts  Options
	env   []string // nil: inherit
	clock string   // the clock shim's file, when Shift or Frozen
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has exited
}

// Require returns the path of name, skipping the test when it is missing,
// or failing it under CI=true.
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed (CI=true: a missing test dependency fails; test.sh installs it): %v", name, err)
	}
	t.Skipf("%s not installed: %v", name, err)
	return ""
}

// Start starts a redis-server and registers its shutdown with t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t, "redis-server")
	s := &Server{Dir: t.TempDir(), t: t, opts: opts}
	t.Cleanup(s.Kill) // registered after TempDir: runs before the dir is removed
	if opts.Shift != 0 || !opts.Frozen.IsZero() {
		s.clock = filepath.Join(s.Dir, "clock")
		lib, err := buildClock(t, s.clock)
		if err != nil {
			t.Fatal(err)
		}
		s.env = append(os.Environ(), "LD_PRELOAD="+lib, clockEnv+"="+s.clock)
		if opts.Frozen.IsZero() {
			s.writeClock(0, opts.Shift.Nanoseconds())
		} else {
			s.SetTime(opts.Frozen)
		}
	}
	if opts.TLS {
		ca := NewCA(t, "redistest CA")
		s.CA = ca.CertFile
		ca.Issue(t, s.Dir, "server", "127.0.0.1")
	}
	var err error
	for try := 0; try < 5; try++ { // another process may take the free port first
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("start redis-server: %v", err)
	return nil
}

// URL is the server's address as a state.url.
func (s *Server) URL() string {
	if s.opts.TLS {
		return "rediss://" + s.Addr + "/0"
	}
	return "redis://" + s.Addr + "/0"
}

// Kill stops the server with SIGKILL (a crash, not a shutdown) and waits for
// it to exit. Killing a stopped server is a no-op.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies only once continued
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port and directory after Kill.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		s.t.Fatal("redistest: Restart of a running server")
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("restart redis-server: %v", err)
	}
}

// Pause stops the process (SIGSTOP): the port accepts connections but
// nothing answers, like a hung or black-holed Redis. Resume continues it.
func (s *Server) Pause()  { s.signal(syscall.SIGSTOP) }
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Signal(sig)
	}
}

// SetTime sets a Frozen server's clock to t (any instant, also backwards).
// The server sees it on its next clock reading.
func (s *Server) SetTime(t time.Time) {
	s.t.Helper()
	if s.opts.Frozen.IsZero() {
		s.t.Fatal("redistest: SetTime on a server started without Options.Frozen")
	}
	s.writeClock(frozenAt, t.UnixNano())
}

func (s *Server) writeClock(off int64, v int64) {
	s.t.Helper()
	f, err := os.OpenFile(s.clock, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(v))
		_, err = f.WriteAt(b[:], off)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.t.Fatalf("redistest: set the server clock: %v", err)
	}
}

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	// The config goes in on stdin, defaults first: a later line overrides an
	// earlier one, while command-line options would override Options.Config.
	conf := []string{"port " + port, "bind 127.0.0.1", "protected-mode yes", "dir " + strconv.Quote(s.Dir),
		`save ""`, "appendonly no", "daemonize no", `logfile ""`}
	if s.opts.TLS {
		conf = append(conf, "port 0", "tls-port "+port,
			"tls-cert-file "+strconv.Quote(filepath.Join(s.Dir, "server.pem")),
			"tls-key-file "+strconv.Quote(filepath.Join(s.Dir, "server.key")),
			"tls-ca-cert-file "+strconv.Quote(s.CA), "tls-auth-clients no")
	}
	text := strings.Join(append(conf, s.opts.Config...), "\n") + "\n"
	cmd := exec.Command("redis-server", "-")
	if s.opts.sentinel {
		// A sentinel rewrites its config file with what it learns (the
		// current primary), so it needs one on disk; a restart reads back
		// what it wrote.
		f := filepath.Join(s.Dir, "sentinel.conf")
		if _, err := os.Stat(f); err != nil {
			if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
				return err
			}
		}
		cmd = exec.Command("redis-server", f, "--sentinel")
	} else {
		cmd.Stdin = strings.NewReader(text)
	}
	cmd.Env = s.env
	cmd.Dir = s.Dir
	// An os.Pipe rather than StdoutPipe: the log is read until the server
	// exits, independently of Wait.
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	ready := make(chan error, 1)
	go func() {
		defer r.Close()
		var log strings.Builder
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			// A sentinel never says "Ready": it is once it monitors.
			if strings.Contains(sc.Text(), "Ready to accept connections") || s.opts.sentinel && strings.Contains(sc.Text(), "+monitor master") {
				ready <- nil
				io.Copy(io.Discard, r)
				return
			}
		}
		ready <- fmt.Errorf("redis-server exited before it was ready:\n%s", log.String())
	}()
	select {
	case err = <-ready:
	case <-time.After(startTimeout):
		err = fmt.Errorf("redis-server not ready after %v", startTimeout)
	}
	if err != nil {
		cmd.Process.Kill()
		<-done
		return err
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
