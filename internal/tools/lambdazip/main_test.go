package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPackReproducible: the same binary always gives the same zip, whatever
// the file's mtime and mode, and the entry is an executable "bootstrap".
func TestPackReproducible(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("\x7fELF not really a binary "), 1000)
	var zips [][]byte
	for i, mode := range []os.FileMode{0o644, 0o755} {
		p := filepath.Join(dir, "bootstrap")
		os.WriteFile(p, data, mode)
		os.Chmod(p, mode)
		os.Chtimes(p, time.Unix(int64(1e9+i*1e6), 0), time.Unix(int64(1e9+i*1e6), 0))
		out := filepath.Join(dir, "out.zip")
		b, err := pack("bootstrap", mustRead(t, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFile(out, b); err != nil {
			t.Fatal(err)
		}
		zips = append(zips, mustRead(t, out))
	}
	if !bytes.Equal(zips[0], zips[1]) {
		t.Fatal("two packs of the same binary differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(zips[0]), int64(len(zips[0])))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 {
		t.Fatalf("%d entries", len(zr.File))
	}
	f := zr.File[0]
	if f.Name != "bootstrap" || f.Mode().Perm() != 0o755 || !f.Modified.Equal(epoch) || f.Method != zip.Deflate {
		t.Errorf("entry %s mode %v time %v method %d", f.Name, f.Mode(), f.Modified, f.Method)
	}
	rc, _ := f.Open()
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, data) {
		t.Error("content differs")
	}
	if len(zips[0]) >= len(data)/4 {
		t.Errorf("zip %d bytes for %d of repetitive input: not compressed", len(zips[0]), len(data))
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
