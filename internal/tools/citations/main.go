// Command citations fails when a Go comment points its reader at
// something a clone of the repository does not have. A comment that says
// why by naming a document must name one that is here, so the reason can
// be read by whoever reads the code. Refused, unless the same comment line
// names a file of the repository (docs/design.md, say):
//
//   - a section sign and number after the name of a document kept outside
//     the repository (DESIGN, STYLE, reliability, mission-anchors, ...), or
//     a section sign with no document at all; sections of RFCs are
//     standards anyone can read and pass;
//   - an issue of the project's tracker, by number (the word "issue" and a
//     number, with or without '#') or by name ("the <name> issue"): the
//     tracker is not in the repository, and a comment should carry the
//     reason itself.
//
// And always: a link to a Markdown file of the repository, such as
// docs/hardening.md or docs/design.md#the-guard-order-and-why, must name a
// file that exists, from the repository's root, and a heading of that
// file when it has an anchor, so renaming a page or a heading breaks CI
// instead of the comments that cite it.
//
// Only comments are read (go/scanner), never string literals, in every .go
// file under the root but hidden directories and vendor.
//
//	go run ./internal/tools/citations [ROOT]
//
// prints one FILE:LINE: line per citation that does not resolve and exits
// 1 when there is any; ROOT defaults to the current directory.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"go/scanner"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

func main() {
	root := "."
	switch len(os.Args) {
	case 1:
	case 2:
		root = os.Args[1]
	default:
		fmt.Fprintln(os.Stderr, "usage: citations [ROOT]")
		os.Exit(2)
	}
	os.Exit(run(root, os.Stdout, os.Stderr))
}

// run checks the tree under root and returns the exit status: 0 when
// every citation resolves, 1 when one does not, 2 when the tree could not
// be read.
func run(root string, stdout, stderr io.Writer) int {
	fs, err := check(root)
	if err != nil {
		fmt.Fprintln(stderr, "citations:", err)
		return 2
	}
	for _, f := range fs {
		fmt.Fprintln(stdout, f)
	}
	if len(fs) > 0 {
		fmt.Fprintf(stderr, "citations: %d comment citation(s) name nothing in the repository; "+
			"give the reason itself or link a file of the repository (docs/design.md explains)\n", len(fs))
		return 1
	}
	return 0
}

// finding is one citation that does not resolve.
type finding struct {
	file string // relative to the root, slash-separated
	line int
	msg  string
}

func (f finding) String() string { return fmt.Sprintf("%s:%d: %s", f.file, f.line, f.msg) }

var (
	// docSection is a section of a document that lives outside the
	// repository. The names are those the project's comments used.
	docSection = regexp.MustCompile(`(?i)\b(?:DESIGN|STYLE|DEVELOPERS|reliability(?:-security)?|mission-anchors|reference|lambda-tooling(?:\.md)?)\s*§\s*[0-9a-z.]*`)
	// rfcSection is a section of an RFC, readable by anyone: "RFC 9110
	// §7.6.1", "RFC 9110 §5.5, §5.6.3" (one RFC, several sections).
	rfcSection = regexp.MustCompile(`\bRFC\s*\d+\s*§\s*[0-9.]*[0-9](?:(?:\s*,\s*|\s+and\s+)§\s*[0-9.]*[0-9])*`)
	section    = regexp.MustCompile(`§\s*[0-9a-z.]*`)
	// issueNumber is an issue of the tracker by number. "go.dev/issue/N"
	// is a link anyone can follow, and does not match.
	issueNumber = regexp.MustCompile(`(?i)\bissues?\s*#?\d+`)
	// namedIssue is an issue of the tracker by name: "the" and a name
	// before the word "issue".
	namedIssue = regexp.MustCompile(`(?i)\bthe\s+([a-z0-9][\w/-]*)\s+issue\b`)
	// url spans are links anyone can follow: nothing inside one is checked.
	url = regexp.MustCompile(`\b[a-z][a-z0-9+.-]*://\S+`)
	// mdLink is a Markdown file of the repository, with an optional anchor.
	mdLink = regexp.MustCompile(`[\w./-]*\w\.md(?:#[\w-]+)?`)
	// word is a candidate file name on a line.
	word = regexp.MustCompile(`[\w./-]+`)
)

// generic are the words before "issue" that make an ordinary phrase, not
// an issue's name: "the same issue", "the real issue".
var generic = map[string]bool{
	"same": true, "real": true, "underlying": true, "actual": true, "main": true,
	"known": true, "this": true, "that": true, "other": true, "original": true,
	"whole": true, "first": true, "next": true, "last": true, "only": true,
	"one": true, "related": true, "previous": true, "above": true, "below": true,
	"following": true, "open": true, "reported": true, "upstream": true,
}

// check scans every .go file under root.
func check(root string) ([]finding, error) {
	c := &checker{root: root, anchors: map[string]map[string]bool{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || !d.Type().IsRegular() {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		c.file(filepath.ToSlash(rel), src)
		return nil
	})
	slices.SortFunc(c.found, func(a, b finding) int {
		if n := strings.Compare(a.file, b.file); n != 0 {
			return n
		}
		return a.line - b.line
	})
	return c.found, err
}

type checker struct {
	root    string
	anchors map[string]map[string]bool // Markdown file → its heading anchors
	found   []finding
}

// line is one line of a comment.
type line struct {
	n    int // line number in the file
	text string
}

// file checks the comments of one Go file. Consecutive // comments are
// read as one text, so that a citation split over two lines is found.
func (c *checker) file(name string, src []byte) {
	fset := token.NewFileSet()
	tf := fset.AddFile(name, -1, len(src))
	var s scanner.Scanner
	s.Init(tf, src, nil, scanner.ScanComments) // errors: the comments still come
	var group []line
	last := -1
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok != token.COMMENT {
			continue
		}
		n := tf.Line(pos)
		if strings.HasPrefix(lit, "/*") {
			c.group(name, group)
			group = nil
			var block []line
			for i, l := range strings.Split(strings.TrimSuffix(lit[2:], "*/"), "\n") {
				block = append(block, line{n + i, l})
			}
			c.group(name, block)
			last = -1
			continue
		}
		if n != last+1 {
			c.group(name, group)
			group = nil
		}
		group = append(group, line{n, lit[2:]})
		last = n
	}
	c.group(name, group)
}

// group checks one comment's lines.
func (c *checker) group(name string, lines []line) {
	if len(lines) == 0 {
		return
	}
	var b strings.Builder
	starts := make([]int, len(lines))
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		starts[i] = b.Len()
		b.WriteString(l.text)
	}
	text := []byte(b.String())
	blank(text, url)
	// lineOf is the index in lines of byte offset off.
	lineOf := func(off int) int {
		i, found := slices.BinarySearch(starts, off)
		if !found {
			i--
		}
		return i
	}
	report := func(loc []int, format string, args ...any) {
		first, last := lineOf(loc[0]), lineOf(loc[1]-1)
		for i := first; i <= last; i++ {
			if c.namesFile(string(text[starts[i] : starts[i]+len(lines[i].text)])) {
				return
			}
		}
		c.found = append(c.found, finding{name, lines[first].n, fmt.Sprintf(format, args...)})
	}
	quote := func(loc []int) string {
		return strings.Join(strings.Fields(string(text[loc[0]:loc[1]])), " ")
	}

	// Links to the repository's Markdown files must resolve, whatever
	// else the comment says.
	for _, loc := range mdLink.FindAllIndex(text, -1) {
		if msg := c.resolve(string(text[loc[0]:loc[1]])); msg != "" {
			c.found = append(c.found, finding{name, lines[lineOf(loc[0])].n, msg})
		}
	}
	for _, loc := range docSection.FindAllIndex(text, -1) {
		report(loc, "%q cites a document that is not in the repository", quote(loc))
	}
	blank(text, docSection)
	blank(text, rfcSection)
	for _, loc := range section.FindAllIndex(text, -1) {
		report(loc, "%q: a section of no document in the repository", quote(loc))
	}
	for _, loc := range issueNumber.FindAllIndex(text, -1) {
		report(loc, "%q cites an issue; the tracker is not in the repository", quote(loc))
	}
	for _, m := range namedIssue.FindAllSubmatchIndex(text, -1) {
		if generic[strings.ToLower(string(text[m[2]:m[3]]))] {
			continue
		}
		report(m[:2], "%q cites an issue; the tracker is not in the repository", quote(m[:2]))
	}
}

// blank overwrites re's matches in text with spaces, keeping offsets.
func blank(text []byte, re *regexp.Regexp) {
	for _, loc := range re.FindAllIndex(text, -1) {
		for i := loc[0]; i < loc[1]; i++ {
			text[i] = ' '
		}
	}
}

// namesFile reports whether a comment line names a file of the repository
// that resolves (path from the root; a Markdown anchor, if any, a heading
// of that file).
func (c *checker) namesFile(l string) bool {
	for _, w := range word.FindAllString(l, -1) {
		w = strings.TrimRight(w, ".")
		if w == "" || !strings.ContainsAny(w, "./") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(w))); err == nil && fi.Mode().IsRegular() {
			if !strings.HasSuffix(w, ".md") || c.resolve(w) == "" {
				return true
			}
		}
	}
	for _, w := range mdLink.FindAllString(l, -1) {
		if strings.Contains(w, "#") && c.resolve(w) == "" {
			return true
		}
	}
	return false
}

// resolve checks a link to a Markdown file of the repository: "" when it
// resolves, else why not.
func (c *checker) resolve(link string) string {
	file, anchor, _ := strings.Cut(link, "#")
	p := filepath.Join(c.root, filepath.FromSlash(file))
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return fmt.Sprintf("%s: no such file in the repository (paths are from its root)", file)
	}
	if anchor == "" {
		return ""
	}
	as, ok := c.anchors[file]
	if !ok {
		as = anchors(p)
		c.anchors[file] = as
	}
	if !as[anchor] {
		return fmt.Sprintf("%s: no heading of %s has the anchor #%s", link, file, anchor)
	}
	return ""
}

// anchors returns the anchors of a Markdown file's headings, as GitHub
// makes them (slug, then -1, -2... for repeats), and any <a id=...>.
func anchors(path string) map[string]bool {
	as := map[string]bool{}
	src, err := os.ReadFile(path)
	if err != nil {
		return as
	}
	seen := map[string]int{}
	fence := ""
	explicit := regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		l := sc.Text()
		t := strings.TrimSpace(l)
		if fence != "" {
			if strings.HasPrefix(t, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fence = t[:3]
			continue
		}
		for _, m := range explicit.FindAllStringSubmatch(l, -1) {
			as[m[1]] = true
		}
		level := len(l) - len(strings.TrimLeft(l, "#"))
		if level == 0 || level > 6 || (len(l) > level && l[level] != ' ') {
			continue
		}
		s := slug(strings.TrimRight(strings.TrimSpace(l[level:]), "#"))
		if n := seen[s]; n > 0 {
			as[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			as[s] = true
		}
		seen[s]++
	}
	return as
}

// slug is GitHub's anchor for a heading: lower case, letters, digits,
// '-' and '_' kept, spaces turned into '-', everything else dropped.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
