// Package installtest holds no code, only tests of how drawbridge is
// installed: the container image, built from the repository's Dockerfile
// with tools/imagebuild (offline, no Docker or registry), inspected and
// run from its unpacked filesystem, as docs/install.md ("Container image")
// describes; and the README's first two commands and its Install section.
package installtest
