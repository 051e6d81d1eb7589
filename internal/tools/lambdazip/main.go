// Command lambdazip packs a Lambda bootstrap into a deployment zip that is
// the same, byte for byte, every time it is built from the same binary:
// the entry's time is fixed, its mode is 0755 whatever the file's, and
// nothing of the build machine (owner, mtime, path) gets in. `zip` records
// the file's mtime and the builder's uid, so two identical builds gave two
// different zips (and two different CodeSha256 values in Lambda).
//
//	go run ./internal/tools/lambdazip -o dist/bootstrap-arm64.zip dist/arm64/bootstrap
package main

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// epoch is the entry time: the earliest a zip (MS-DOS) date can hold.
var epoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	out := flag.String("o", "", "output zip `file`")
	name := flag.String("name", "bootstrap", "entry `name` in the zip (provided.al2023 runs \"bootstrap\")")
	flag.Parse()
	if *out == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: lambdazip -o OUT.zip [-name bootstrap] BINARY")
		os.Exit(2)
	}
	bin, err := os.ReadFile(flag.Arg(0))
	if err == nil {
		var zipped []byte
		if zipped, err = pack(*name, bin); err == nil {
			err = writeFile(*out, zipped)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lambdazip:", err)
		os.Exit(1)
	}
}

// pack returns a zip holding one executable entry.
func pack(name string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: epoch}
	h.SetMode(0o755) // Lambda runs the bootstrap only if it is executable
	w, err := zw.CreateHeader(h)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeFile replaces path atomically, so an interrupted build leaves no
// half-written zip behind for a deploy to pick up.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".lambdazip-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
