package licenses

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const root = "../../.."

// apacheSHA256 is the SHA-256 of the Apache License 2.0 as published at
// https://www.apache.org/licenses/LICENSE-2.0.txt (Debian's
// /usr/share/common-licenses/Apache-2.0 is the same file).
const apacheSHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"

const copyright = "Copyright 2026 The drawbridge authors"

// TestLicense: LICENSE is the Apache License 2.0 word for word, with the
// project's copyright line in its appendix's placeholder.
func TestLicense(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	line := "   " + copyright + "\n"
	if !bytes.Contains(data, []byte(line)) {
		t.Fatalf("LICENSE lacks %q", line)
	}
	canonical := bytes.Replace(data, []byte(line), []byte("   Copyright [yyyy] [name of copyright owner]\n"), 1)
	if sum := sha256.Sum256(canonical); hex.EncodeToString(sum[:]) != apacheSHA256 {
		t.Errorf("LICENSE differs from the Apache License 2.0 text (sha256 %x without the copyright line)", sum)
	}
}

type module struct {
	Path, Version, Dir string
	Indirect           bool
}

// required lists go.mod's requirements, direct and indirect, each with
// its directory in the module cache (downloaded if it is missing).
func required(t *testing.T) []module {
	t.Helper()
	var gomod struct{ Require []module }
	if err := json.Unmarshal(goCmd(t, "mod", "edit", "-json"), &gomod); err != nil {
		t.Fatal(err)
	}
	args := []string{"mod", "download", "-json"}
	for _, m := range gomod.Require {
		args = append(args, m.Path+"@"+m.Version)
	}
	dec := json.NewDecoder(bytes.NewReader(goCmd(t, args...)))
	dirs := map[string]string{}
	for {
		var m struct{ Path, Dir, Error string }
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if m.Error != "" {
			t.Fatalf("go mod download %s: %s", m.Path, m.Error)
		}
		dirs[m.Path] = m.Dir
	}
	for i := range gomod.Require {
		gomod.Require[i].Dir = dirs[gomod.Require[i].Path]
	}
	return gomod.Require
}

func goCmd(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// spdx names the license of a module from its LICENSE file: the four
// kinds drawbridge's dependencies use. Anything else must be looked at by
// a person and added here.
func spdx(dir string) string {
	var text []byte
	for _, name := range []string{"LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			text = b
			break
		}
	}
	s := strings.Join(strings.Fields(string(text)), " ")
	switch {
	case strings.Contains(s, "Apache License Version 2.0, January 2004"):
		return "Apache-2.0"
	case strings.Contains(s, "Permission is hereby granted, free of charge, to any person obtaining a copy"):
		return "MIT"
	case strings.Contains(s, "Redistribution and use in source and binary forms") && strings.Contains(s, "endorse or promote"):
		return "BSD-3-Clause"
	case strings.Contains(s, "Redistribution and use in source and binary forms"):
		return "BSD-2-Clause"
	}
	return ""
}

// TestDependencies: docs/dependencies.md has a line for each module in
// go.mod, and no other, naming the license its LICENSE file holds; NOTICE
// reproduces the NOTICE file of each module that has one (Apache License
// 2.0, section 4(d)).
func TestDependencies(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs", "dependencies.md"))
	if err != nil {
		t.Fatal(err)
	}
	notice, err := os.ReadFile(filepath.Join(root, "NOTICE"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(notice, []byte("drawbridge\n"+copyright+"\n")) {
		t.Errorf("NOTICE does not begin with drawbridge's name and %q", copyright)
	}
	// the module lines of the "## Direct" and "## Indirect" sections;
	// "## Removed" and "## Not used" name modules go.mod does not require
	lines := map[string]string{}
	for _, sec := range strings.Split(string(doc), "\n## ") {
		if !strings.HasPrefix(sec, "Direct") && !strings.HasPrefix(sec, "Indirect") {
			continue
		}
		for _, m := range regexp.MustCompile("(?m)^- `([^`]+)`.*$").FindAllStringSubmatch(sec, -1) {
			lines[m[1]] = m[0]
		}
	}
	inGoMod := map[string]bool{}
	for _, m := range required(t) {
		inGoMod[m.Path] = true
		line, ok := lines[m.Path]
		if !ok {
			t.Errorf("docs/dependencies.md has no line \"- `%s` (license ...\"", m.Path)
			continue
		}
		id := spdx(m.Dir)
		if id == "" {
			t.Errorf("%s: no license recognised in %s; read it and teach spdx", m.Path, m.Dir)
		} else if !strings.Contains(line, "license "+id) {
			t.Errorf("docs/dependencies.md: %s's line does not say \"license %s\":\n%s", m.Path, id, line)
		}
		if n, err := os.ReadFile(filepath.Join(m.Dir, "NOTICE")); err == nil && !bytes.Contains(notice, n) {
			t.Errorf("NOTICE does not reproduce %s's NOTICE file:\n%s", m.Path, n)
		}
	}
	for path := range lines {
		if !inGoMod[path] {
			t.Errorf("docs/dependencies.md lists %s, which go.mod does not require", path)
		}
	}
}
