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
