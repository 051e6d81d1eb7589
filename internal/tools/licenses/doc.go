// Package licenses holds only a test: it keeps LICENSE, NOTICE and
// docs/dependencies.md true to go.mod, so a new or upgraded dependency
// cannot ship without its license listed and its NOTICE reproduced.
package licenses
