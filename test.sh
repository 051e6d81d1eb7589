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
command -v redis-server >/dev/null || missing+=(redis-server)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
# --- end redis
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

go test -race -count=1 -timeout 15m ./... "$@"

# Every benchmark, briefly, so none can rot (figures: see docs/performance.md).
go test -run '^$' -bench . -benchtime 100x -count=1 ./... | grep -Ev '^(goos|goarch|pkg|cpu):' 

# --- fuzz pass (egress/edge issue) -------------------------------------------
# A short run of every `go test -fuzz` target in the repository, found by
# name, each for FUZZ_SECONDS. The default keeps the whole pass near 90 s
# of wall time: about 3 s per target goes to building the instrumented
# test binary, the rest of the budget is shared out (at most 5 s each).
# FUZZ_SECONDS=0 skips the pass; to fuzz one target longer:
#   go test -run '^$' -fuzz '^FuzzScan$' -fuzztime 10m ./internal/edge
if [ "${FUZZ_SECONDS:-}" != "0" ]; then
  mapfile -t targets < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' internal |
    sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz.*)$#./\1 \2#' | sort -u)
  per=${FUZZ_SECONDS:-$(( (90 - 3 * ${#targets[@]}) / ${#targets[@]} ))}
  [ "$per" -le 5 ] || [ -n "${FUZZ_SECONDS:-}" ] || per=5
  [ "$per" -ge 1 ] || per=1
  for t in "${targets[@]}"; do
    pkg=${t% *} name=${t#* }
    echo "fuzz ${pkg} ${name} (${per}s)"
    out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "${per}s" "$pkg" 2>&1) || { echo "$out"; exit 1; }
  done
fi
