package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// design is the docs/design.md of the test trees.
const design = "# Design\n\n## The guard order and why\n\n```\n## not a heading\n```\n\n## Edge rules\n\n## Edge rules\n"

// tree writes files (path → content) under a new root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestCitations: each row is a Go file; bad rows must be reported at the
// given line, good rows not at all.
func TestCitations(t *testing.T) {
	cases := []struct {
		name string
		src  string
		line int // 0: must pass
	}{
		// Refused: documents, sections and issues no clone has.
		{"design section", "package p\n\n// Cheapest first (DESIGN §1).\nfunc f() {}\n", 3},
		{"style section", "package p\n\n// Drivers are wired by cli alone (STYLE §2).\n", 3},
		{"reliability section", "package p\n\n// Close it (reliability §0.1).\n", 3},
		{"reliability-security", "package p\n\n/* Bad events (reliability-security §2.8). */\n", 3},
		{"mission-anchors", "package p\n\n// Vectors (mission-anchors §2.10).\n", 3},
		{"bare section", "package p\n\n// Paths.\n// §2.2 paths.\n", 4},
		{"split over two lines", "package p\n\n// as the DESIGN\n// §4a says\n", 3},
		{"block comment, later line", "package p\n\n/*\nfine\nsee DESIGN §7\n*/\n", 5},
		{"issue number", "package p\n\n// issue 9's acceptance 4.\n", 3},
		{"issue hash", "package p\n\n// Fixed in Issue #12.\n", 3},
		{"named issue", "package p\n\n// The lean path (the performance issue's profile).\n", 3},
		{"named issue, slash", "package p\n\n// From the egress/edge issue.\n", 3},
		{"trailing comment", "package p\n\nvar x = 1 // DESIGN §3\n", 3},
		{"names a missing file", "package p\n\n// DESIGN §1 (docs/missing.md).\n", 3},
		{"missing Markdown file", "package p\n\n// See docs/missing.md.\n", 3},
		{"missing anchor", "package p\n\n// See docs/design.md#no-such-heading.\n", 3},
		{"anchor inside a code fence", "package p\n\n// See docs/design.md#not-a-heading.\n", 3},
		{"bare Markdown name", "package p\n\n// See design.md.\n", 3},

		// Accepted.
		{"reason itself", "package p\n\n// Cheapest first: a rejection must cost no backend work.\n", 0},
		{"docs link", "package p\n\n// Cheapest first (docs/design.md#the-guard-order-and-why).\n", 0},
		{"second heading of a name", "package p\n\n// docs/design.md#edge-rules-1\n", 0},
		{"docs file", "package p\n\n// See docs/design.md, the guard order.\n", 0},
		{"citation with a file", "package p\n\n// DESIGN §1, now docs/design.md.\n", 0},
		{"issue with a file", "package p\n\n// issue 9: docs/design.md#edge-rules.\n", 0},
		{"RFC sections", "package p\n\n// RFC 9110 §7.6.1 and RFC 9112 §6.3, RFC 9110 §5.5, §5.6.3.\n", 0},
		{"RFC over two lines", "package p\n\n// as RFC 9112\n// §6.1 says\n", 0},
		{"URL", "package p\n\n// go.dev/issue/75804 and https://example.com/DESIGN§4/issue#9/missing.md\n", 0},
		{"generic issue", "package p\n\n// Not the same issue as the real issue.\n", 0},
		{"string literal", "package p\n\nvar s = \"DESIGN §1, issue 9, docs/missing.md\"\n", 0},
		{"raw string", "package p\n\nvar s = `// DESIGN §1`\n", 0},
		{"root file", "package p\n\n// See README.md.\n", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, map[string]string{
				"docs/design.md": design,
				"README.md":      "# R\n",
				"p/p.go":         tc.src,
			})
			got, err := check(root)
			if err != nil {
				t.Fatal(err)
			}
			if tc.line == 0 {
				if len(got) != 0 {
					t.Fatalf("good citation refused: %v", got)
				}
				return
			}
			if len(got) == 0 {
				t.Fatalf("bad citation not reported in:\n%s", tc.src)
			}
			for _, f := range got {
				if f.file != "p/p.go" || f.line != tc.line {
					t.Errorf("reported at %s:%d, want p/p.go:%d: %v", f.file, f.line, tc.line, f)
				}
			}
		})
	}
}

// TestRun is the CI step: exit 1 and one FILE:LINE line per citation on
// a tree that has bad ones, exit 0 and silence on a clean tree. Hidden
// directories are not read.
func TestRun(t *testing.T) {
	bad := tree(t, map[string]string{
		"docs/design.md":     design,
		"a/a.go":             "package a\n\n// Cheapest first (DESIGN §1).\n// Fine (docs/design.md).\n",
		"b/b_test.go":        "package b\n\nfunc f() {\n\t// issue 9\n}\n",
		".git/x/x.go":        "package x // DESIGN §1\n",
		"c/broken_syntax.go": "package c\n\nfunc {{ // issue 3\n",
	})
	var out, errs bytes.Buffer
	if code := run(bad, &out, &errs); code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"a/a.go:3: ", "b/b_test.go:4: ", "c/broken_syntax.go:3: "}
	if len(lines) != len(want) {
		t.Fatalf("got %d findings, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]) {
			t.Errorf("finding %d = %q, want prefix %q", i, l, want[i])
		}
	}

	good := tree(t, map[string]string{
		"docs/design.md": design,
		"a/a.go":         "package a\n\n// Cheapest first (docs/design.md#the-guard-order-and-why).\n",
	})
	out.Reset()
	errs.Reset()
	if code := run(good, &out, &errs); code != 0 || out.Len() != 0 {
		t.Fatalf("clean tree: exit %d, output %q %q", code, out.String(), errs.String())
	}
}

// TestAnchors: GitHub's rule for heading anchors, which is what a link in
// a comment is checked against.
func TestAnchors(t *testing.T) {
	for h, want := range map[string]string{
		"The guard order and why":                    "the-guard-order-and-why",
		"1. Egress guard (`internal/egress`)":        "1-egress-guard-internalegress",
		"Delivery: what a 202 promises":              "delivery-what-a-202-promises",
		"Compile once, serve without parsing":        "compile-once-serve-without-parsing",
		"`state.on_error`: open":                     "stateon_error-open",
		"Ünïcode stays":                              "ünïcode-stays",
		"How the gateway uses it (`state.on_error`)": "how-the-gateway-uses-it-stateon_error",
	} {
		if got := slug(h); got != want {
			t.Errorf("slug(%q) = %q, want %q", h, got, want)
		}
	}
	root := tree(t, map[string]string{"d.md": design + "<a id=\"custom\"></a>\n### Closing hashes ##\n"})
	got := anchors(filepath.Join(root, "d.md"))
	var names []string
	for a := range got {
		names = append(names, a)
	}
	slices.Sort(names)
	want := []string{"closing-hashes", "custom", "design", "edge-rules", "edge-rules-1", "the-guard-order-and-why"}
	if !slices.Equal(names, want) {
		t.Errorf("anchors = %q, want %q", names, want)
	}
}
