// Command driver is bench/run's engine: it starts on loopback a Go backend,
// the anchors (a direct connection, nginx proxy_pass, a bare
// httputil.ReverseProxy, a bare net/http 403, nginx return 403, and haproxy
// and caddy when installed) and drawbridge in several configurations, then
// runs wrk against each, interleaved, in several modes (pinned: wrk on CPU
// 0, every server on CPU 1; unpinned), and prints req/s, p50, p99, CPU
// µs per request, RSS and the ratios to the anchors measured in the same
// run. Shared 2-core machines are noisy: only ratios within one run mean
// anything, and medians of the repetitions are printed.
//
// Every process it starts, it stops; every wrk run is bounded by -d and a
// timeout.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type options struct {
	bin      string // directory with drawbridge, backend, bareproxy, bare403
	out      string // results directory
	duration time.Duration
	reps     int
	modes    string
	groups   string // when set, only these target groups run
	variants []variant
}

// variant is one more guard-chain target, drawbridge-guards+LABEL (lean
// path), whose process gets more environment (e.g. GOGC=off): an A/B
// experiment inside one interleaved run, against the same anchors.
type variant struct {
	Label string   `json:"label"`
	Env   []string `json:"env"`
}

// parseVariant reads LABEL:K=V[,K=V...].
func parseVariant(s string) (variant, error) {
	label, env, ok := strings.Cut(s, ":")
	if !ok || label == "" || strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return variant{}, fmt.Errorf("variant %q: want LABEL:K=V[,K=V] with a label of a-z, 0-9 and -", s)
	}
	v := variant{Label: label}
	for _, kv := range strings.Split(env, ",") {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return variant{}, fmt.Errorf("variant %q: %q is not K=V", s, kv)
		}
		v.Env = append(v.Env, kv)
	}
	return v, nil
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "directory holding the built binaries")
	flag.StringVar(&o.out, "out", "bench/results", "directory for the JSON results")
	flag.DurationVar(&o.duration, "d", 3*time.Second, "duration of one wrk run")
	flag.IntVar(&o.reps, "reps", 3, "repetitions of each run (interleaved)")
	flag.StringVar(&o.modes, "modes", "pinned-c64,pinned-c8,pinned-c1,unpinned-c64", "modes to run")
	flag.StringVar(&o.groups, "groups", "", "only these target groups (forward,large,reject,async); all when empty")
	flag.Func("variant", "one more drawbridge-guards target run with more environment, LABEL:K=V[,K=V] (e.g. gcoff:GOGC=off); repeatable", func(s string) error {
		v, err := parseVariant(s)
		o.variants = append(o.variants, v)
		return err
	})
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// mode is one load shape.
type mode struct {
	Name    string `json:"name"`
	Pinned  bool   `json:"pinned"`
	Conns   int    `json:"connections"`
	Threads int    `json:"threads"`
	// Groups are the target groups run in this mode.
	Groups []string `json:"-"`
}

var allModes = []mode{
	{Name: "pinned-c64", Pinned: true, Conns: 64, Threads: 1, Groups: []string{"forward", "large", "reject", "async"}},
	{Name: "pinned-c8", Pinned: true, Conns: 8, Threads: 1, Groups: []string{"forward"}},
	{Name: "pinned-c1", Pinned: true, Conns: 1, Threads: 1, Groups: []string{"forward"}}, // light load
	{Name: "unpinned-c64", Pinned: false, Conns: 64, Threads: 2, Groups: []string{"forward", "reject"}},
}

// target is one thing wrk loads.
type target struct {
	Name   string `json:"name"`
	Group  string `json:"group"`
	URL    string `json:"url"`
	Want   int    `json:"want_status"`
	header []string
	script string // wrk Lua script, for requests wrk cannot express with -H
	proc   *proc  // the process whose CPU and RSS are reported
	// Unavailable says why the target could not run (a server missing or
	// refusing its config); its rows are reported, not measured.
	Unavailable string `json:"unavailable,omitempty"`
}

// sample is one wrk run.
type sample struct {
	Mode      string   `json:"mode"`
	Target    string   `json:"target"`
	Rep       int      `json:"rep"`
	CPUPerReq float64  `json:"-"`                        // NaN: not measured (direct)
	CPU       *float64 `json:"cpu_us_per_req,omitempty"` // CPUPerReq for JSON, which has no NaN
	RSSKiB    int64    `json:"rss_kib"`
	wrkResult
}

const benchKey = "benchKey0123456789abcdefABCDEF"
const hookSecret = "bench-webhook-secret"

func run(ctx context.Context, o options) error {
	if o.bin == "" {
		return fmt.Errorf("-bin is required (bench/run builds the binaries)")
	}
	for _, tool := range []string{"wrk", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (bench/run installs it)", tool)
		}
	}
	if o.groups != "" {
		for _, g := range strings.Split(o.groups, ",") {
			if g = strings.TrimSpace(g); !slices.ContainsFunc(allModes, func(m mode) bool { return contains(m.Groups, g) }) {
				return fmt.Errorf("unknown group %q (forward, large, reject, async)", g)
			}
		}
	}
	var modes []mode
	for _, name := range strings.Split(o.modes, ",") {
		found := false
		for _, m := range allModes {
			if m.Name == strings.TrimSpace(name) {
				if o.groups != "" {
					var keep []string
					for _, g := range strings.Split(o.groups, ",") {
						if contains(m.Groups, strings.TrimSpace(g)) {
							keep = append(keep, strings.TrimSpace(g))
						}
					}
					m.Groups = keep
				}
				modes = append(modes, m)
				found = true
			}
		}
		if !found {
			return fmt.Errorf("unknown mode %q", name)
		}
	}
	var samples []sample
	var targetsSeen []target
	for _, m := range modes {
		if ctx.Err() != nil {
			break
		}
		s, ts, err := runMode(ctx, o, m)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		samples = append(samples, s...)
		if targetsSeen == nil {
			targetsSeen = ts
		}
		printMode(os.Stdout, m, ts, s)
	}
	return writeJSON(o, modes, targetsSeen, samples)
}

// runMode starts every server (pinned to CPU 1 when the mode says so, so
// the Go ones size GOMAXPROCS to it), runs the mode's targets o.reps times
// interleaved, and stops the servers.
func runMode(ctx context.Context, o options, m mode) ([]sample, []target, error) {
	dir, err := os.MkdirTemp("", "drawbridge-bench-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	start := func(name string, addr string, env []string, argv ...string) (*proc, error) {
		p, err := startProc(dir, name, m.Pinned, addr, env, argv...)
		if p != nil {
			procs = append(procs, p)
		}
		return p, err
	}

	backendAddr := freeAddr()
	if _, err := start("backend", backendAddr, nil, filepath.Join(o.bin, "backend"), "-listen", backendAddr); err != nil {
		return nil, nil, fmt.Errorf("backend: %w", err)
	}
	backend := "http://" + backendAddr
	var ts []target
	add := func(t target) { ts = append(ts, t) }
	serverEnv := func(env []string, name, group, path string, want int, argvOf func(addr string) ([]string, error), header ...string) *proc {
		addr := freeAddr()
		t := target{Name: name, Group: group, URL: "http://" + addr + path, Want: want, header: header}
		argv, err := argvOf(addr)
		if err == nil {
			t.proc, err = start(name, addr, env, argv...)
		}
		if err != nil {
			t.Unavailable = err.Error()
		}
		add(t)
		return t.proc
	}
	server := func(name, group, path string, want int, argvOf func(addr string) ([]string, error), header ...string) *proc {
		return serverEnv(nil, name, group, path, want, argvOf, header...)
	}
	// reuse adds a target served by a process already started.
	reuse := func(p *proc, name, group, path string, want int, header ...string) {
		t := target{Name: name, Group: group, Want: want, header: header, proc: p}
		if p == nil {
			t.Unavailable = "server did not start"
		} else {
			t.URL = "http://" + p.addr + path
		}
		add(t)
	}

	// Anchors.
	add(target{Name: "direct", Group: "forward", URL: backend + "/small", Want: 200})
	add(target{Name: "direct-16k", Group: "large", URL: backend + "/large", Want: 200})
	nginx := server("nginx", "forward", "/small", 200, func(addr string) ([]string, error) {
		return nginxArgv(dir, addr, backendAddr)
	})
	reuse(nginx, "nginx-16k", "large", "/large", 200)
	if nginx != nil {
		reuse(nginx, "nginx-403", "reject", "/return403", 403)
	}
	bare := server("bareproxy", "forward", "/small", 200, func(addr string) ([]string, error) {
		return []string{filepath.Join(o.bin, "bareproxy"), "-listen", addr, "-target", backend}, nil
	})
	reuse(bare, "bareproxy-16k", "large", "/large", 200)
	server("bare403", "reject", "/", 403, func(addr string) ([]string, error) {
		return []string{filepath.Join(o.bin, "bare403"), "-listen", addr}, nil
	})
	if _, err := exec.LookPath("haproxy"); err == nil {
		server("haproxy", "forward", "/small", 200, func(addr string) ([]string, error) {
			return haproxyArgv(dir, addr, backendAddr)
		})
	}
	if _, err := exec.LookPath("caddy"); err == nil {
		server("caddy", "forward", "/small", 200, func(addr string) ([]string, error) {
			return caddyArgv(dir, addr, backendAddr)
		})
	}

	// Drawbridge.
	db := filepath.Join(o.bin, "drawbridge")
	dwArgv := func(name, cfg string) func(string) ([]string, error) {
		return func(addr string) ([]string, error) {
			path := filepath.Join(dir, name+".yaml")
			fw := "lean" // the default
			if strings.HasSuffix(name, "-rp") {
				fw = "reverseproxy"
			}
			text := strings.NewReplacer("{LISTEN}", addr, "{BACKEND}", backend, "{DIR}", dir, "{FORWARDER}", fw).Replace(cfg)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				return nil, err
			}
			return []string{db, "serve", "-c", path}, nil
		}
	}
	plain := server("drawbridge", "forward", "/small", 200, dwArgv("plain", plainConfig))
	reuse(plain, "drawbridge-16k", "large", "/large", 200)
	rp := server("drawbridge-rp", "forward", "/small", 200, dwArgv("plain-rp", plainConfig))
	reuse(rp, "drawbridge-rp-16k", "large", "/large", 200)
	guards := server("drawbridge-guards", "forward", "/forward", 200, dwArgv("guards", guardsConfig), "x-api-key: "+benchKey)
	server("drawbridge-guards-rp", "forward", "/forward", 200, dwArgv("guards-rp", guardsConfig), "x-api-key: "+benchKey)
	// The guard chain again with tracing on (sample_ratio 1), exporting
	// every span to a sink in this process: the cost of tracing beside
	// drawbridge-guards in the same run.
	if sink, stop, err := otlpSink(); err == nil {
		defer stop()
		server("drawbridge-guards-traced", "forward", "/forward", 200, dwArgv("guards-traced", tracedConfig(sink)), "x-api-key: "+benchKey)
	}
	for _, v := range o.variants {
		serverEnv(v.Env, "drawbridge-guards+"+v.Label, "forward", "/forward", 200, dwArgv("guards+"+v.Label, guardsConfig), "x-api-key: "+benchKey)
	}
	reuse(guards, "drawbridge-403-nokey", "reject", "/forward", 403)
	reuse(guards, "drawbridge-403-policy", "reject", "/denied", 403, "x-api-key: "+benchKey)
	reuse(guards, "drawbridge-429", "reject", "/throttled", 429)
	// Through an agent tunnel (agent.go): CPU and RSS are the edge's only.
	agentsAddr := freeAddr()
	if edge := server("drawbridge-agent", "forward", "/small", 200, agentEdgeArgv(dir, db, backend, agentsAddr)); edge != nil {
		if err := startAgentSide(dir, db, agentsAddr, backendAddr, start); err != nil {
			ts[len(ts)-1].Unavailable = "agent: " + err.Error()
		}
	}
	async := server("drawbridge-async", "async", "/hooks/github", 202, dwArgv("async", asyncConfig))
	for i := range ts {
		if ts[i].Name == "drawbridge-async" && async != nil {
			ts[i].script = filepath.Join(dir, "async.lua")
			if err := os.WriteFile(ts[i].script, []byte(asyncScript()), 0o644); err != nil {
				return nil, nil, err
			}
		}
	}

	// Sanity: every target answers what it should before it is loaded.
	for i := range ts {
		if ts[i].Unavailable == "" {
			if err := probe(&ts[i]); err != nil {
				ts[i].Unavailable = err.Error()
			}
		}
	}

	var out []sample
	for rep := 1; rep <= o.reps; rep++ {
		for _, t := range ts {
			if ctx.Err() != nil {
				return out, ts, ctx.Err()
			}
			if t.Unavailable != "" || !contains(m.Groups, t.Group) {
				continue
			}
			s, err := load(ctx, o, m, t)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: %s %s rep %d: %v\n", m.Name, t.Name, rep, err)
				continue
			}
			s.Rep = rep
			out = append(out, s)
		}
	}
	return out, ts, nil
}

// load runs wrk once against t and reads the server's CPU time around it.
func load(ctx context.Context, o options, m mode, t target) (sample, error) {
	args := []string{"-t" + strconv.Itoa(m.Threads), "-c" + strconv.Itoa(m.Conns), "-d" + o.duration.String(), "--latency", "--timeout", "5s"}
	for _, h := range t.header {
		args = append(args, "-H", h)
	}
	if t.script != "" {
		args = append(args, "-s", t.script)
	}
	args = append(args, t.URL)
	name := "wrk"
	if m.Pinned {
		args = append([]string{"-c", "0", "wrk"}, args...)
		name = "taskset"
	}
	cctx, cancel := context.WithTimeout(ctx, o.duration+30*time.Second)
	defer cancel()
	var cpu0 time.Duration
	if t.proc != nil {
		cpu0 = t.proc.cpu()
	}
	outb, err := exec.CommandContext(cctx, name, args...).CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("wrk: %w: %s", err, outb)
	}
	r, err := parseWrk(string(outb))
	if err != nil {
		return sample{}, err
	}
	s := sample{Mode: m.Name, Target: t.Name, wrkResult: r, CPUPerReq: math.NaN()}
	if t.proc != nil && r.Requests > 0 {
		s.CPUPerReq = float64((t.proc.cpu() - cpu0).Microseconds()) / float64(r.Requests)
		s.RSSKiB = t.proc.rss()
		v := s.CPUPerReq
		s.CPU = &v
	}
	return s, nil
}

// probe sends one request as wrk will and checks the status.
func probe(t *target) error {
	method, body := http.MethodGet, ""
	if t.Group == "async" {
		method, body = http.MethodPost, asyncBody
	}
	req, err := http.NewRequest(method, t.URL, strings.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range t.header {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if t.Group == "async" {
		req.Header.Set("X-GitHub-Delivery", "probe")
		req.Header.Set("X-Hub-Signature-256", asyncSignature())
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	if t.Want == http.StatusTooManyRequests {
		// A throttled route admits its burst first.
		if r0, err := c.Get(t.URL); err == nil {
			io.Copy(io.Discard, r0.Body)
			r0.Body.Close()
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != t.Want {
		return fmt.Errorf("probe: status %d, want %d: %s", resp.StatusCode, t.Want, strings.TrimSpace(string(b)))
	}
	return nil
}

// proc is a server bench started.
type proc struct {
	name string
	addr string
	cmd  *exec.Cmd
	log  string
}

func startProc(dir, name string, pinned bool, addr string, env []string, argv ...string) (*proc, error) {
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, fmt.Errorf("%s not installed", argv[0])
	}
	if pinned {
		argv = append([]string{"taskset", "-c", "1"}, argv...)
	}
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "DRAWBRIDGE_BENCH_KEY="+benchKey, "DRAWBRIDGE_BENCH_SECRET="+hookSecret)
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, addr: addr, cmd: cmd, log: logPath}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s exited: %s", name, lastLines(string(b), 3))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s not listening on %s after 15s", name, addr)
		}
	}
}

// stop kills the process group (nginx, caddy and haproxy may fork).
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 50; i++ {
			if syscall.Kill(p.cmd.Process.Pid, 0) != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(done)
	}()
	<-done
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// pids is the process and its children (taskset execs, so the pid is the
// server's own; nginx with master_process off and the others do not fork
// workers as configured here).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// cpu is user+system time of the process, from /proc/PID/stat.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After the comm: state(0) ... utime is field 14 of the line, index 11 here.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

// rss is the resident set in KiB, from /proc/PID/status.
func (p *proc) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// summary is the median of a target's samples in one mode.
type summary struct {
	RPS, P50, P99, CPU float64
	RSS                int64
	N                  int
	// Wrong counts the answers of another class than the target's (a
	// 429 where 200 was wanted, a 200 where 403 was) and socket errors,
	// out of Requests: the row's figures mix them in.
	Wrong, Requests int64
}

// wrong is how many of a run's answers were not of the wanted class:
// wrk only counts answers that are not 2xx or 3xx.
func wrong(x sample, want int) int64 {
	if want < 400 {
		return x.Non2xx + x.Errors
	}
	return x.Requests - x.Non2xx + x.Errors
}

func summarize(samples []sample, modeName string, t target) summary {
	var rps, p50, p99, cpu []float64
	var s summary
	for _, x := range samples {
		if x.Mode != modeName || x.Target != t.Name {
			continue
		}
		s.Wrong += wrong(x, t.Want)
		s.Requests += x.Requests
		rps, p50, p99, cpu = append(rps, x.RPS), append(p50, x.P50), append(p99, x.P99), append(cpu, x.CPUPerReq)
		if x.RSSKiB > s.RSS {
			s.RSS = x.RSSKiB
		}
		s.N++
	}
	s.RPS, s.P50, s.P99, s.CPU = median(rps), median(p50), median(p99), median(cpu)
	return s
}

func printMode(w io.Writer, m mode, ts []target, samples []sample) {
	fmt.Fprintf(w, "\n== %s: %d connections, wrk -t%d%s; medians of the repetitions\n", m.Name, m.Conns, m.Threads,
		map[bool]string{true: ", wrk on CPU 0, servers on CPU 1", false: ", unpinned"}[m.Pinned])
	byName := map[string]target{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	anchor := func(name string) float64 { return summarize(samples, m.Name, byName[name]).RPS }
	direct, nginx, bare, b403 := anchor("direct"), anchor("nginx"), anchor("bareproxy"), anchor("bare403")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\treq/s\tp50 ms\tp99 ms\tCPU µs/req\tRSS MiB\t×direct\t×nginx\t×bareproxy\t×bare403\t")
	ratio := func(a, b float64) string {
		if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	num := func(f float64, prec int) string {
		if math.IsNaN(f) {
			return "-"
		}
		return strconv.FormatFloat(f, 'f', prec, 64)
	}
	var missing []string
	for _, t := range ts {
		if !contains(m.Groups, t.Group) {
			continue
		}
		if t.Unavailable != "" {
			missing = append(missing, fmt.Sprintf("  %s: unavailable: %s", t.Name, shorten(t.Unavailable, 160)))
			continue
		}
		s := summarize(samples, m.Name, t)
		if s.N == 0 {
			continue
		}
		if s.Wrong > 0 {
			missing = append(missing, fmt.Sprintf("  %s: %d of %d answers were not %d (or failed): its figures mix them in", t.Name, s.Wrong, s.Requests, t.Want))
		}
		d, n, b := direct, nginx, bare
		if t.Group == "large" {
			d, n, b = anchor("direct-16k"), anchor("nginx-16k"), anchor("bareproxy-16k")
		}
		rss := "-"
		if s.RSS > 0 {
			rss = fmt.Sprintf("%.1f", float64(s.RSS)/1024)
		}
		r403 := "-"
		if t.Group == "reject" {
			r403 = ratio(s.RPS, b403)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", t.Name, s.RPS, num(s.P50, 3), num(s.P99, 3), num(s.CPU, 1),
			rss, ratio(s.RPS, d), ratio(s.RPS, n), ratio(s.RPS, b), r403)
	}
	tw.Flush()
	for _, line := range missing {
		fmt.Fprintln(w, line)
	}
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func writeJSON(o options, modes []mode, ts []target, samples []sample) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	host, _ := os.Hostname()
	cpuModel := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpuModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	doc := map[string]any{
		"date":     time.Now().UTC().Format(time.RFC3339),
		"host":     host,
		"cpu":      cpuModel,
		"cpus":     runtime.NumCPU(),
		"go":       runtime.Version(),
		"duration": o.duration.String(),
		"reps":     o.reps,
		"variants": o.variants,
		"modes":    modes,
		"targets":  ts,
		"samples":  samples,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(o.out, time.Now().UTC().Format("20060102T150405Z")+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	fmt.Printf("\nresults: %s\n", path)
	return nil
}

func asyncSignature() string {
	m := hmac.New(sha256.New, []byte(hookSecret))
	m.Write([]byte(asyncBody))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
