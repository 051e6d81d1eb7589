#!/usr/bin/env bash
# Runs drawbridge's whole test suite, race detector on. It installs what the
# tests need when it is missing (Debian packages via apt-get), so it works on
# a fresh machine that has only Go. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")"

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
missing=()
command -v curl >/dev/null || missing+=(curl)
# --- redis: internal/store/redis tests start a real redis-server (and build
# a clock shim with gcc); under CI=true they fail when these are missing.
# redis-cli (redis-tools) creates the test Cluster and asks the test
# sentinels; a sentinel is `redis-server --sentinel`, so no redis-sentinel.
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
# --- end redis
# --- deploy: internal/deploytest runs systemd-analyze on deploy/systemd and
# `make release` (GNU make, tar, dpkg-deb); under CI=true missing ones fail.
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v make >/dev/null || missing+=(make)
# --- agent: TestAgentThroughNamespace puts an agent and a backend in a
# network namespace (ip netns, veth); under CI=true it fails without them.
command -v ip >/dev/null || missing+=(iproute2)
# --- console: internal/console's TestBrowser drives Debian's chromium
# headless (chromedp); under CI=true it fails when chromium is missing.
command -v chromium >/dev/null || missing+=(chromium)
# --- install: internal/installtest builds the container image from the
# Dockerfile with tools/imagebuild and runs it chrooted as its user (as
# root, or rootless in a user namespace); nothing to install.
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

go test -race -count=1 -timeout 15m ./... "$@"
# The slow-reader flood at its full 1,000 clients: the race detector's
# goroutine cap makes the run above use 250 (docs/hardening.md).
go test -count=1 -run '^TestSlowReaders$' ./internal/cli
# The rejection flood at its full 50,000 requests (10,000 above).
go test -count=1 -run '^TestRejectionFlood$' ./internal/gateway
go -C tools test -count=1 -timeout 15m ./...  # the Helm chart's tests, in their own module (docs/install.md, "Helm chart")

# Every benchmark, briefly, so none can rot (figures: see docs/performance.md).
go test -run '^$' -bench . -benchtime 100x -count=1 ./... | grep -Ev '^(goos|goarch|pkg|cpu):' 

# --- fuzz pass (egress/edge issue) -------------------------------------------
# A short run of every `go test -fuzz` target in the repository, found by
# name: FUZZ_EXECS executions each (default 5000; the whole pass takes
# about 45 s here, most of it building the instrumented test binaries).
# A count, not a duration: with a -fuzztime duration, go1.26's fuzz
# coordinator can fail a target with a bare "context deadline exceeded"
# when the time runs out mid-call (go.dev/issue/75804, fixed in go1.27);
# a count has no deadline to race. FUZZ_SECONDS=N fuzzes each target for
# N seconds instead (a longer local run; that race is then reported as
# such, not as a finding, when no failing input was written).
# FUZZ_SECONDS=0 skips the pass; to fuzz one target longer:
#   go test -run '^$' -fuzz '^FuzzScan$' -fuzztime 10m ./internal/edge
if [ "${FUZZ_SECONDS:-}" != "0" ]; then
  mapfile -t targets < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' internal |
    sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz.*)$#./\1 \2#' | sort -u)
  budget="${FUZZ_EXECS:-5000}x"
  [ -z "${FUZZ_SECONDS:-}" ] || budget="${FUZZ_SECONDS}s"
  for t in "${targets[@]}"; do
    pkg=${t% *} name=${t#* }
    echo "fuzz ${pkg} ${name} (${budget})"
    if ! out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "${budget}" "$pkg" 2>&1); then
      if [[ $budget == *s && $out == *"context deadline exceeded"* && $out != *"Failing input written"* ]]; then
        echo "  stopped by go1.26's fuzztime deadline race (go.dev/issue/75804); no failing input"
        continue
      fi
      echo "$out"
      exit 1
    fi
  done
fi
