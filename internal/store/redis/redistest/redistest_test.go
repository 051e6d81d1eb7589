package redistest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMissingServer re-runs itself with an empty PATH: without CI the test
// needing redis-server skips, under CI=true it fails.
func TestMissingServer(t *testing.T) {
	if os.Getenv("REDISTEST_CHILD") == "1" {
		Start(t, Options{})
		t.Fatal("Start returned without redis-server")
	}
	for _, tt := range []struct {
		ci   string
		fail bool
		want string
	}{{"", false, "--- SKIP"}, {"true", true, "--- FAIL"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingServer$", "-test.v")
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "CI=") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, "PATH="+t.TempDir(), "REDISTEST_CHILD=1", "CI="+tt.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tt.fail || !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), "redis-server not installed") {
			t.Errorf("CI=%q: err %v, output:\n%s", tt.ci, err, out)
		}
	}
}

// TestStoppedAtTestEnd: the server a test started is gone when it ends.
func TestStoppedAtTestEnd(t *testing.T) {
	var pid int
	t.Run("uses a server", func(t *testing.T) {
		s := Start(t, Options{Shift: time.Hour})
		pid = s.cmd.Process.Pid
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("redis-server %d still running after its test ended (kill -0: %v)", pid, err)
	}
}

// TestServer: start, kill, restart on the same address, checked with a
// bare inline PING.
func TestServer(t *testing.T) {
	s := Start(t, Options{})
	if got := ping(t, s.Addr); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
	s.Kill()
	s.Kill() // no-op
	s.Restart()
	if got := ping(t, s.Addr); got != "+PONG" {
		t.Fatalf("PING after restart = %q", got)
	}
}

func ping(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PING\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}
