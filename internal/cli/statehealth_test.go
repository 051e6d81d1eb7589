//go:build linux

package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// recordingBackend is the target of an async route. While refusing it
// answers 503, so deliveries stay queued; else it records each delivery
// id it answered 200.
type recordingBackend struct {
	*httptest.Server
	refusing atomic.Bool
	mu       sync.Mutex
	got      map[string]bool
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	b := &recordingBackend{got: map[string]bool{}}
	b.refusing.Store(true)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if b.refusing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b.mu.Lock()
		b.got[r.Header.Get("X-Drawbridge-Delivery")] = true
		b.mu.Unlock()
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *recordingBackend) missing(ids []string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, id := range ids {
		if !b.got[id] {
			out = append(out, id)
		}
	}
	return out
}

var eventClient = &http.Client{Timeout: 10 * time.Second}

// sendEvent posts one webhook; it returns the status and, for a 202, the
// delivery id.
func sendEvent(addr, guid string, body string) (int, string, error) {
	req, _ := http.NewRequest("POST", "http://"+addr+"/hooks/push", strings.NewReader(body))
	req.Header.Set("X-GitHub-Delivery", guid)
	resp, err := eventClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v struct{ ID string }
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(b, &v); err != nil || v.ID == "" {
			return resp.StatusCode, "", fmt.Errorf("202 body %q", b)
		}
	} else if resp.StatusCode != http.StatusServiceUnavailable || string(b) != `{"message":"Service Unavailable"}` {
		return resp.StatusCode, "", fmt.Errorf("answer %d %q", resp.StatusCode, b)
	}
	return resp.StatusCode, v.ID, nil
}

// restartDelivered restarts serve on cfg and waits until the backend has
// answered every id.
func restartDelivered(t *testing.T, b *recordingBackend, cfg string, ids []string) *process {
	t.Helper()
	b.refusing.Store(false)
	p := startServe(t, cfg)
	deadline := time.Now().Add(20 * time.Second)
	for len(b.missing(ids)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events answered 202 never delivered after the restart: %v\n%s", len(b.missing(ids)), len(ids), b.missing(ids), p.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// TestStateFileDeleted (issue acceptance: deleting the state file mid-run):
// a real serve accepts events for an async route whose backend refuses
// them, so they stay queued, from four concurrent senders. The state file
// is unlinked mid-stream. Within a few seconds async routes answer 503
// {"message":"Service Unavailable"}, /readyz is 503 naming the lost file,
// drawbridge_state_healthy is 0 and the log says why, once; every later
// request is 503. After a restart (SIGTERM, or SIGKILL once the copy is
// logged) with the backend up, every event ever answered 202 is delivered.
func TestStateFileDeleted(t *testing.T) {
	for _, stop := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(stop.String(), func(t *testing.T) {
			b := newRecordingBackend(t)
			dir := t.TempDir()
			state := filepath.Join(dir, "drawbridge.db")
			cfg := filepath.Join(dir, "drawbridge.yaml")
			writeConfig(t, cfg, asyncConfig(b.URL, state))
			p := startServe(t, cfg)

			var (
				mu       sync.Mutex
				accepted []string
				refused  atomic.Int64
				late     []string // 202 to a request sent after a 503 was received
				first503 = make(chan time.Time, 1)
				halt     atomic.Bool
				errs     []error
				wg       sync.WaitGroup
				seq      atomic.Int64
			)
			for range 4 {
				wg.Go(func() {
					for !halt.Load() {
						guid := fmt.Sprintf("guid-%d", seq.Add(1))
						afterSwitch := refused.Load() > 0
						status, id, err := sendEvent(p.addr, guid, "event "+guid)
						mu.Lock()
						switch {
						case err != nil:
							errs = append(errs, err)
							halt.Store(true)
						case status == http.StatusAccepted:
							accepted = append(accepted, id)
							if afterSwitch {
								late = append(late, guid)
							}
						default:
							if refused.Add(1) == 1 {
								first503 <- time.Now()
							}
						}
						mu.Unlock()
					}
				})
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				mu.Lock()
				n := len(accepted)
				mu.Unlock()
				if n >= 100 || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			mu.Lock()
			if err := os.Remove(state); err != nil {
				t.Fatal(err)
			}
			unlinked, before := time.Now(), len(accepted)
			mu.Unlock()
			var switched time.Time
			select {
			case switched = <-first503:
			case <-time.After(10 * time.Second):
				halt.Store(true)
				wg.Wait()
				t.Fatalf("no 503 within 10 s of the unlink (%v)\n%s", errs, p.logText())
			}
			halt.Store(true)
			wg.Wait()
			if len(errs) > 0 {
				t.Fatalf("senders: %v", errs)
			}
			if len(late) > 0 {
				t.Errorf("answered 202 although sent after a 503 had come back: %v", late)
			}
			if d := switched.Sub(unlinked); d > 3*time.Second {
				t.Errorf("first 503 %v after the unlink, want within 3 s", d)
			}
			// After the switch, nothing is accepted any more.
			for i := range 20 {
				if status, _, err := sendEvent(p.addr, fmt.Sprintf("late-%d", i), "late"); err != nil || status != 503 {
					t.Fatalf("request %d after the switch: %d %v", i, status, err)
				}
			}
			code, body := get(t, "http://"+p.admin+"/readyz")
			if code == http.StatusOK || !strings.Contains(body, "state file lost") || !strings.Contains(body, state+" was removed") {
				t.Errorf("/readyz = %d %s", code, body)
			}
			if code, _ := get(t, "http://"+p.admin+"/healthz"); code != http.StatusOK {
				t.Errorf("/healthz = %d: the process is alive", code)
			}
			if v := metricValue(t, p.admin, "drawbridge_state_healthy"); v != 0 {
				t.Errorf("drawbridge_state_healthy = %v, want 0", v)
			}
			waitLog(t, p, "the open file was copied back to its path")
			if n := strings.Count(p.logText(), `"msg":"state file lost`); n != 1 {
				t.Errorf("%d 'state file lost' lines, want 1:\n%s", n, p.logText())
			} else if !strings.Contains(p.logText(), state+` was removed while in use; restart drawbridge"`) {
				t.Errorf("the log does not say why:\n%s", p.logText())
			}
			p.cmd.Process.Signal(stop)
			p.cmd.Wait()
			if _, err := os.Stat(state); err != nil {
				t.Fatalf("no state file after %v: %v\n%s", stop, err, p.logText())
			}

			p = restartDelivered(t, b, cfg, accepted)
			if code, body := get(t, "http://"+p.admin+"/readyz"); code != http.StatusOK {
				t.Errorf("/readyz after the restart = %d %s", code, body)
			}
			t.Logf("%v: %d events answered 202 (%d of them after the unlink), all delivered after the restart; first 503 %v after the unlink; %d answered 503",
				stop, len(accepted), len(accepted)-before, switched.Sub(unlinked).Round(time.Millisecond), refused.Load()+20)
		})
	}
}

func waitLog(t *testing.T, p *process, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logText(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q:\n%s", s, p.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setFileSizeLimit sets the soft RLIMIT_FSIZE of process pid: writes that
// would grow a file past n bytes fail with EFBIG, as on a full disk (Go
// ignores SIGXFSZ). The hard limit is kept, so it can be raised again
// without privileges.
func setFileSizeLimit(t *testing.T, pid int, n uint64) {
	t.Helper()
	var cur syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &cur); err != nil {
		t.Fatal(err)
	}
	lim := syscall.Rlimit{Cur: min(n, cur.Max), Max: cur.Max}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		t.Fatalf("prlimit: %v", e)
	}
}

// TestStateCannotCommit: a real serve whose state file cannot grow (a
// file-size limit set on the process, which fails bbolt's writes with
// EFBIG as a full disk fails them with ENOSPC). Async requests get 503,
// never 202; /readyz is 503 with the commit's error while the file itself
// is fine (no restart needed); with the limit lifted the next request is
// accepted and /readyz is 200 again.
func TestStateCannotCommit(t *testing.T) {
	b := newRecordingBackend(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "drawbridge.db")
	cfg := filepath.Join(dir, "drawbridge.yaml")
	writeConfig(t, cfg, asyncConfig(b.URL, state))
	p := startServe(t, cfg)
	status, id, err := sendEvent(p.addr, "small", "event small")
	if err != nil || status != 202 {
		t.Fatalf("first event: %d %v", status, err)
	}
	accepted := []string{id}
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	setFileSizeLimit(t, p.cmd.Process.Pid, uint64(fi.Size()))

	big := strings.Repeat("x", 256<<10)
	failedAt := -1
	for i := range 200 {
		status, id, err := sendEvent(p.addr, fmt.Sprintf("big-%d", i), big)
		if err != nil {
			t.Fatal(err)
		}
		if status == 503 {
			failedAt = i
			break
		}
		accepted = append(accepted, id) // fitted in pages the file already had
	}
	if failedAt < 0 {
		t.Fatalf("200 events of 256 KiB accepted in a file limited to %d bytes", fi.Size())
	}
	code, body := get(t, "http://"+p.admin+"/readyz")
	if code == http.StatusOK || !strings.Contains(body, "latest commit failed") || !strings.Contains(body, "file too large") {
		t.Errorf("/readyz while commits fail = %d %s", code, body)
	}
	if strings.Contains(body, "state file lost") {
		t.Errorf("/readyz calls the file lost: %s", body)
	}
	if v := metricValue(t, p.admin, "drawbridge_state_healthy"); v != 0 {
		t.Errorf("drawbridge_state_healthy = %v, want 0", v)
	}
	waitLog(t, p, "a commit failed")

	setFileSizeLimit(t, p.cmd.Process.Pid, ^uint64(0))
	status, id, err = sendEvent(p.addr, "after", "event after")
	if err != nil || status != 202 {
		t.Fatalf("event after the limit was lifted: %d %v\n%s", status, err, p.logText())
	}
	accepted = append(accepted, id)
	if code, body := get(t, "http://"+p.admin+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a commit succeeded = %d %s", code, body)
	}
	if v := metricValue(t, p.admin, "drawbridge_state_healthy"); v != 1 {
		t.Errorf("drawbridge_state_healthy = %v, want 1", v)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	restartDelivered(t, b, cfg, accepted)
	t.Logf("first refused commit: big event %d (file limited to %d bytes); %d accepted, all delivered", failedAt, fi.Size(), len(accepted))
}
