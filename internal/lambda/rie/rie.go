//go:build linux

// Package rie runs a Lambda bootstrap under the real AWS Lambda Runtime
// Interface Emulator, on loopback, from go test. It exists so Lambda-mode
// tests exercise the real Runtime API (its framing, timeouts and re-init)
// instead of a hand-written imitation; it needs no Docker and no AWS account.
//
// One Emulator is one Lambda execution environment: the classic RIE serves
// one invocation at a time and crashes on a concurrent one
// (aws/aws-lambda-runtime-interface-emulator#97), so Invoke serialises calls
// and parallel tests each start their own.
//
// The RIE is built from the Go module proxy at the pinned Version with
// "go install module@version" (internal/testbin), which leaves the
// project's go.mod alone. When go or the proxy is unavailable the calling
// test is skipped, unless CI=true, where a missing dependency is a failure.
package rie

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/testbin"
)

// Module and Version pin the emulator (docs/lambda.md#testing-locally).
const (
	Module  = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
	Version = "v0.0.0-20261030222936-bef5c4ba774d"
)

// Binary returns the path of the pinned RIE, built once into the user
// cache directory by internal/testbin (a rebuild per test would cost
// seconds each time).
func Binary(t testing.TB) string {
	t.Helper()
	return testbin.Install(t, testbin.Program{Owner: "rie", Dir: filepath.Join("aws-lambda-rie", Version), Exe: "aws-lambda-rie"},
		Module, Version)
}

// BuildBootstrap builds pkg (a main package, as a go build argument) the way
// a provided.al2023 deployment does and returns the path of "bootstrap" in a
// fresh temporary directory. tags are added to lambda.norpc.
func BuildBootstrap(t testing.TB, pkg string, tags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command(testbin.Go(t), "build", "-tags", strings.Join(append([]string{"lambda.norpc"}, tags...), ","), "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rie: build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// Report is one invocation's accounting, from the RIE's log.
type Report struct {
	RequestID string
	// Duration is REPORT's Duration. On a cold invoke it includes the wait
	// for init.
	Duration time.Duration
	// Init is the real init time, from "(rapid) INIT REPORT(durationMs: …)"
	// before this invocation; zero for a warm one. REPORT's own "Init
	// Duration" times an asynchronous call and means nothing under the RIE.
	Init time.Duration
}

// Result is one invocation as the client saw it.
type Result struct {
	Status  int    // HTTP status of the RIE's invoke endpoint (200 even for function errors)
	Body    []byte // the function's raw response document
	Elapsed time.Duration
	Report  Report // zero unless Status is 200
}

// Emulator is a running RIE with its bootstrap.
type Emulator struct {
	invokeURL string
	cmd       *exec.Cmd
	invokeMu  sync.Mutex

	mu      sync.Mutex
	log     bytes.Buffer
	reports map[string]Report
	initDur time.Duration // pending INIT REPORT, for the next REPORT
	changed chan struct{} // closed and replaced on every log line
	done    chan struct{} // closed when the log ends
}

// Start runs bootstrap under a fresh RIE with both listeners on free loopback
// ports, and stops it when the test ends. env adds to a minimal environment
// (PATH, HOME, TMPDIR), so the function does not see the test's own.
func Start(t testing.TB, bootstrap string, env ...string) *Emulator {
	t.Helper()
	rie := Binary(t)
	invokeAddr, apiAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(rie,
		// Both listeners explicit: the invoke endpoint defaults to
		// 0.0.0.0:8080 (not loopback), and the Runtime API to 127.0.0.1:9001,
		// which collides with a second RIE.
		"--runtime-interface-emulator-address", invokeAddr,
		"--runtime-api-address", apiAddr,
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir(),
		"AWS_LAMBDA_FUNCTION_TIMEOUT=10"}
	cmd.Env = append(cmd.Env, env...)
	// Own process group: stopping kills the bootstrap child too, which holds
	// the log pipe open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("rie: start: %v", err)
	}
	e := &Emulator{
		invokeURL: "http://" + invokeAddr + "/2015-03-31/functions/function/invocations",
		cmd:       cmd,
		reports:   map[string]Report{},
		changed:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	go e.scan(out)
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("RIE log:\n%s", e.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.waitListening(ctx, invokeAddr); err != nil {
		t.Fatalf("rie: %v\n%s", err, e.Log())
	}
	return e
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListening dials until the invoke endpoint accepts. Each attempt waits
// on a ticker or the RIE's next log line, and the loop gives up when the RIE
// exits, so a crash is reported at once rather than after the deadline.
func (e *Emulator) waitListening(ctx context.Context, addr string) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("invoke endpoint %s not listening: %w", addr, err)
		case <-e.done:
			return errors.New("RIE exited before listening")
		case <-tick.C:
		}
	}
}

var (
	reportRE = regexp.MustCompile(`^REPORT RequestId: (\S+)\s+(?:Init Duration: [0-9.]+ ms\s+)?Duration: ([0-9.]+) ms`)
	initRE   = regexp.MustCompile(`\(rapid\) INIT REPORT\(durationMs: ([0-9.]+)\)`)
)

func (e *Emulator) scan(r io.Reader) {
	defer close(e.done)
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 8<<20)
	for s.Scan() {
		line := s.Text()
		e.mu.Lock()
		e.log.WriteString(line)
		e.log.WriteByte('\n')
		if m := initRE.FindStringSubmatch(line); m != nil {
			e.initDur = millis(m[1])
		}
		if m := reportRE.FindStringSubmatch(line); m != nil {
			e.reports[m[1]] = Report{RequestID: m[1], Duration: millis(m[2]), Init: e.initDur}
			e.initDur = 0
		}
		close(e.changed)
		e.changed = make(chan struct{})
		e.mu.Unlock()
	}
}

func millis(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Millisecond))
}

// Log returns everything the RIE and the function printed so far.
func (e *Emulator) Log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.log.String()
}

// Invoke sends one event and waits for both the response and, when the RIE
// answered 200, its REPORT line. The request id is chosen here and passed
// as X-Amzn-RequestId, which the RIE adopts, so the REPORT line can be
// matched without guessing.
func (e *Emulator) Invoke(ctx context.Context, event []byte) (*Result, error) {
	e.invokeMu.Lock()
	defer e.invokeMu.Unlock()
	id := newID()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.invokeURL, bytes.NewReader(event))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Amzn-RequestId", id)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rie: invoke: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("rie: read response: %w", err)
	}
	res := &Result{Status: resp.StatusCode, Body: body, Elapsed: elapsed}
	if resp.StatusCode != http.StatusOK {
		// The RIE prints no REPORT after a failed init (Sandbox.Failure),
		// and the caller has what it needs: the failure itself.
		return res, nil
	}
	rep, err := e.waitReport(ctx, id)
	if err != nil {
		return res, err
	}
	res.Report = rep
	return res, nil
}

func (e *Emulator) waitReport(ctx context.Context, id string) (Report, error) {
	for {
		e.mu.Lock()
		rep, ok := e.reports[id]
		changed := e.changed
		e.mu.Unlock()
		if ok {
			return rep, nil
		}
		select {
		case <-changed:
		case <-e.done:
			return Report{}, fmt.Errorf("rie: exited before REPORT for %s", id)
		case <-ctx.Done():
			return Report{}, fmt.Errorf("rie: no REPORT for %s: %w", id, ctx.Err())
		}
	}
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return "drawbridge-" + hex.EncodeToString(b[:])
}

// stop kills the RIE and its bootstrap (their process group, which this
// package created) and waits for the log to drain.
func (e *Emulator) stop() {
	if e.cmd.Process != nil {
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	}
	// The bootstrap exits by itself once its Runtime API is gone, should the
	// RIE have moved it to another group; a bound wait keeps Cleanup finite.
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
	}
	_ = e.cmd.Wait()
}

// Lines returns the log lines containing substr, for assertions on what the
// function logged.
func (e *Emulator) Lines(substr string) []string {
	var out []string
	for _, l := range strings.Split(e.Log(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// WaitLine waits until a log line contains substr and returns it. The
// function's output reaches the log through the RIE asynchronously, so it
// may arrive after the invocation's response.
func (e *Emulator) WaitLine(ctx context.Context, substr string) (string, error) {
	for {
		e.mu.Lock()
		log, changed := e.log.String(), e.changed
		e.mu.Unlock()
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, substr) {
				return l, nil
			}
		}
		select {
		case <-changed:
		case <-e.done:
			return "", fmt.Errorf("rie: exited before logging %q", substr)
		case <-ctx.Done():
			return "", fmt.Errorf("rie: no log line with %q: %w", substr, ctx.Err())
		}
	}
}
