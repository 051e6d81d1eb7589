package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// clockEnv names the file the shim maps: two little-endian int64s, the
// shift in nanoseconds added to the real clock, and (when not zero) the
// frozen clock in Unix nanoseconds. Each word is written in one aligned
// 8-byte write, so the server never reads half of one.
const clockEnv = "DRAWBRIDGE_CLOCK_FILE"

// frozenAt is the offset of the frozen time in the clock file.
const frozenAt = 8

// clockShim is an LD_PRELOAD library that takes over the wall-clock calls
// redis-server makes (clock_gettime for the realtime clocks, gettimeofday,
// time) and passes every other clock to the kernel. It reads the kernel by
// syscall rather than through libc, so it needs no dlsym and cannot recurse
// into a malloc that itself reads the clock (libfaketime's jemalloc hang).
const clockShim = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int64_t *clk;

static int64_t wall_ns(void) {
	struct timespec ts;
	syscall(SYS_clock_gettime, CLOCK_REALTIME, &ts);
	int64_t t = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	if (!clk) {
		const char *p = getenv("` + clockEnv + `");
		int fd = p ? open(p, O_RDONLY) : -1;
		if (fd >= 0) {
			void *m = mmap(NULL, 16, PROT_READ, MAP_SHARED, fd, 0);
			close(fd);
			if (m != MAP_FAILED) clk = m;
		}
	}
	if (clk) {
		int64_t f = clk[1];
		if (f) return f;
		t += clk[0];
	}
	return t;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
	if (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE)
		return syscall(SYS_clock_gettime, id, ts);
	int64_t t = wall_ns();
	ts->tv_sec = t / 1000000000LL;
	ts->tv_nsec = t % 1000000000LL;
	return 0;
}

int gettimeofday(struct timeval *tv, void *tz) {
	(void)tz;
	if (tv) {
		int64_t t = wall_ns();
		tv->tv_sec = t / 1000000000LL;
		tv->tv_usec = (t % 1000000000LL) / 1000;
	}
	return 0;
}

time_t time(time_t *out) {
	time_t t = wall_ns() / 1000000000LL;
	if (out) *out = t;
	return t;
}
`

// buildClock compiles the shim into the test's temp dir and creates the
// clock file (zero: the real clock) at path.
func buildClock(t testing.TB, path string) (string, error) {
	t.Helper()
	Require(t, "gcc")
	dir := t.TempDir()
	src := filepath.Join(dir, "clock.c")
	lib := filepath.Join(dir, "clock.so")
	if err := os.WriteFile(src, []byte(clockShim), 0o600); err != nil {
		return "", err
	}
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-o", lib, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the clock shim: %v\n%s", err, out)
	}
	if err := os.WriteFile(path, make([]byte, 16), 0o600); err != nil {
		return "", err
	}
	return lib, nil
}
