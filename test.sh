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
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

go test -race -count=1 -timeout 15m ./... "$@"

# Every benchmark, briefly, so none can rot (figures: see docs/performance.md).
go test -run '^$' -bench . -benchtime 100x -count=1 ./... | grep -Ev '^(goos|goarch|pkg|cpu):' 
