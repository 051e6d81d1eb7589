package cli

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestDemoCurlLines runs the demo and every curl line it prints, and
// checks each gives the status the demo claims.
func TestDemoCurlLines(t *testing.T) {
	checkDemoLines(t, nil, len(demoExamples))
}

// TestDemoAgentCurlLines is TestDemoCurlLines for demo --agent.
func TestDemoAgentCurlLines(t *testing.T) {
	checkDemoLines(t, []string{"--agent"}, len(demoAgentExamples))
}

// checkDemoLines runs the demo with extra args and each of the n curl
// lines it prints, and checks each gives the status the demo claims.
func checkDemoLines(t *testing.T, extra []string, n int) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is missing: the demo test needs it (.ci/run installs it)")
		}
		t.Skip("curl not installed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, append([]string{"demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--dir", t.TempDir()}, extra...), pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("demo exited %d after Ctrl-C", code)
			}
		case <-time.After(10 * time.Second):
			t.Error("demo did not stop")
		}
	}()

	expect := regexp.MustCompile(`^# \d+\. .*: expect (\d{3})$`)
	status := regexp.MustCompile(`HTTP/[\d.]+ (\d{3})`)
	sc := bufio.NewScanner(pr)
	ran := 0
	for sc.Scan() {
		line := sc.Text()
		if line == demoEnd {
			break
		}
		m := expect.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		want, _ := strconv.Atoi(m[1])
		if !sc.Scan() {
			t.Fatal("demo output ended after an expect line")
		}
		cmdline := sc.Text()
		out, err := exec.Command("bash", "-c", cmdline).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", cmdline, err, out)
			continue
		}
		all := status.FindAllStringSubmatch(string(out), -1)
		if len(all) == 0 {
			t.Errorf("%s: no HTTP status in output:\n%s", cmdline, out)
			continue
		}
		if got, _ := strconv.Atoi(all[len(all)-1][1]); got != want {
			t.Errorf("%s: status %d, the demo claims %d\n%s", cmdline, got, want, out)
		}
		ran++
	}
	go io.Copy(io.Discard, pr)
	if ran < n {
		t.Errorf("ran %d curl lines, the demo has %d", ran, n)
	}
}
