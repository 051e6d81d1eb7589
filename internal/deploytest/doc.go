// Package deploytest holds no code, only tests of what the repository ships
// besides the Go program: the systemd units in deploy/systemd and the
// archives and packages `make release` builds (docs/install.md). They run
// the real tools (systemd-analyze, make, dpkg); under CI=true a missing tool
// fails the test, elsewhere it skips.
package deploytest
