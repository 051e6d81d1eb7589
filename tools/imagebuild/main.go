// Command imagebuild builds the repository's Dockerfile into an image
// tarball without Docker, BuildKit or a registry: `docker load -i` or
// `podman load -i` takes the result. It reads the same Dockerfile `docker
// build` reads, so the image internal/installtest runs is the one the file
// describes (docs/install.md, "Container image").
//
// It knows only what that Dockerfile uses. A build stage runs on this
// machine instead of in its base image: its WORKDIR is a scratch
// directory, COPY copies from the build context (less .dockerignore), and
// RUN runs `sh -c` there with the stage's ARG and ENV values, using this
// machine's Go. The last stage must be FROM scratch; its COPY --from=STAGE
// reads a path under that stage's WORKDIR from the scratch directory, and
// any other absolute path (the CA bundle) from this machine. Anything else
// is an error, never silently skipped.
//
//	imagebuild [-f Dockerfile] [-C context] [--build-arg K=V]... [-t drawbridge:dev] -o image.tar
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type buildArgs map[string]string

func (b buildArgs) String() string { return fmt.Sprint(map[string]string(b)) }
func (b buildArgs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("--build-arg %q: want NAME=VALUE", s)
	}
	b[k] = v
	return nil
}

func main() {
	file := flag.String("f", "Dockerfile", "the Dockerfile")
	context := flag.String("C", ".", "the build context")
	tag := flag.String("t", "drawbridge:dev", "the image's name in the tarball")
	out := flag.String("o", "", "the image tarball to write")
	args := buildArgs{}
	flag.Var(args, "build-arg", "NAME=VALUE, as docker build's (repeatable)")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := build(*file, *context, args, *tag, *out); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

// instruction is one Dockerfile line, continuations joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

type stage struct {
	name, base string
	instrs     []instruction
	workdir    string // the WORKDIR of a build stage
	dir        string // where that WORKDIR is on this machine
}

func parse(data []byte) (global []instruction, stages []*stage, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	var cur *instruction
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur == nil) {
			continue
		}
		if cur == nil {
			c, a, _ := strings.Cut(line, " ")
			cur = &instruction{line: n, cmd: strings.ToUpper(c), args: ""}
			line = a
		}
		more := strings.HasSuffix(line, `\`)
		line = strings.TrimSpace(strings.TrimSuffix(line, `\`))
		if cur.args != "" && line != "" {
			cur.args += " "
		}
		cur.args += line
		if more {
			continue
		}
		if cur.cmd == "FROM" {
			f := strings.Fields(cur.args)
			s := &stage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			} else if len(f) != 1 {
				return nil, nil, fmt.Errorf("line %d: FROM %s", cur.line, cur.args)
			}
			stages = append(stages, s)
		} else if len(stages) == 0 {
			if cur.cmd != "ARG" {
				return nil, nil, fmt.Errorf("line %d: %s before FROM", cur.line, cur.cmd)
			}
			global = append(global, *cur)
		} else {
			last := stages[len(stages)-1]
			last.instrs = append(last.instrs, *cur)
		}
		cur = nil
	}
	if len(stages) == 0 {
		return nil, nil, errors.New("no FROM")
	}
	return global, stages, sc.Err()
}

// declare handles ARG NAME[=default]: the value is the --build-arg, else
// the default. BuildKit's TARGETOS and TARGETARCH default to the image's
// platform: linux on this machine's architecture.
func declare(in instruction, args buildArgs, vars map[string]string) {
	k, def, _ := strings.Cut(in.args, "=")
	switch {
	case args[k] != "":
		vars[k] = args[k]
	case k == "TARGETOS" && def == "":
		vars[k] = "linux"
	case k == "TARGETARCH" && def == "":
		vars[k] = targetArch(args)
	default:
		vars[k] = def
	}
}

func targetArch(args buildArgs) string {
	if a := args["TARGETARCH"]; a != "" {
		return a
	}
	return runtime.GOARCH
}

func build(file, context string, args buildArgs, tag, out string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	global, stages, err := parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	globals := map[string]string{}
	for _, in := range global {
		declare(in, args, globals)
	}
	ignore, err := readIgnore(filepath.Join(context, ".dockerignore"))
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	byName := map[string]*stage{}
	for i, s := range stages[:len(stages)-1] {
		s.dir = filepath.Join(tmp, strconv.Itoa(i))
		if err := runStage(s, context, ignore, args); err != nil {
			return fmt.Errorf("%s: stage %q: %w", file, s.name, err)
		}
		byName[s.name] = s
	}
	final := stages[len(stages)-1]
	if final.base != "scratch" {
		return fmt.Errorf("%s: the last stage is FROM %s; only scratch is built here", file, final.base)
	}
	img, err := finalStage(final, byName, args)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, ref, img)
}

// runStage runs a build stage on this machine.
func runStage(s *stage, context string, ignore []string, args buildArgs) error {
	vars := map[string]string{}
	var env []string
	for _, in := range s.instrs {
		switch in.cmd {
		case "ARG":
			declare(in, args, vars)
		case "ENV":
			k, v, ok := strings.Cut(in.args, "=")
			if !ok {
				return fmt.Errorf("line %d: ENV wants NAME=VALUE", in.line)
			}
			env = append(env, k+"="+v)
		case "WORKDIR":
			if s.workdir != "" || !path.IsAbs(in.args) {
				return fmt.Errorf("line %d: one absolute WORKDIR per build stage", in.line)
			}
			s.workdir = in.args
			if err := os.MkdirAll(s.dir, 0o755); err != nil {
				return err
			}
		case "COPY":
			if s.workdir == "" {
				return fmt.Errorf("line %d: COPY before WORKDIR", in.line)
			}
			f := strings.Fields(in.args)
			if len(f) < 2 || strings.HasPrefix(f[0], "--") {
				return fmt.Errorf("line %d: COPY SRC... DEST from the context only", in.line)
			}
			dest, err := s.local(f[len(f)-1])
			if err != nil {
				return fmt.Errorf("line %d: %w", in.line, err)
			}
			for _, src := range f[:len(f)-1] {
				if err := copyContext(context, path.Clean(src), dest, strings.HasSuffix(f[len(f)-1], "/"), ignore); err != nil {
					return fmt.Errorf("line %d: %w", in.line, err)
				}
			}
		case "RUN":
			if s.workdir == "" {
				return fmt.Errorf("line %d: RUN before WORKDIR", in.line)
			}
			cmd := exec.Command("sh", "-c", in.args)
			cmd.Dir = s.dir
			cmd.Env = os.Environ()
			for k, v := range vars {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			cmd.Env = append(cmd.Env, env...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			fmt.Fprintf(os.Stderr, "imagebuild: RUN %s\n", in.args)
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("line %d: RUN: %w", in.line, err)
			}
		default:
			return fmt.Errorf("line %d: %s is not supported in a build stage", in.line, in.cmd)
		}
	}
	return nil
}

// local maps a stage path (absolute or relative to WORKDIR) into the
// stage's directory; a path outside WORKDIR is an error.
func (s *stage) local(p string) (string, error) {
	if !path.IsAbs(p) {
		p = path.Join(s.workdir, p)
	}
	rel, ok := strings.CutPrefix(path.Clean(p), s.workdir)
	if !ok || (rel != "" && rel[0] != '/') {
		return "", fmt.Errorf("%s is outside the stage's WORKDIR %s", p, s.workdir)
	}
	return filepath.Join(s.dir, filepath.FromSlash(rel)), nil
}

// readIgnore reads .dockerignore: one pattern a line, as filepath.Match,
// relative to the context. Exceptions (!) are not supported.
func readIgnore(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var pats []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") {
			return nil, fmt.Errorf(".dockerignore: exceptions (%s) are not supported", l)
		}
		pats = append(pats, path.Clean(strings.TrimPrefix(l, "/")))
	}
	return pats, nil
}

// ignored says whether rel, or a directory above it, matches a pattern.
func ignored(rel string, pats []string) bool {
	for p := rel; p != "." && p != "/"; p = path.Dir(p) {
		for _, pat := range pats {
			if ok, _ := path.Match(pat, p); ok {
				return true
			}
		}
	}
	return false
}

// copyContext copies src (relative to the context) to dest on this machine.
func copyContext(context, src, dest string, intoDir bool, ignore []string) error {
	root := filepath.Join(context, filepath.FromSlash(src))
	info, err := os.Stat(root)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		if intoDir {
			dest = filepath.Join(dest, filepath.Base(root))
		}
		return copyFile(root, dest, info.Mode())
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(context, p)
		if rel != "." && ignored(filepath.ToSlash(rel), ignore) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		sub, _ := filepath.Rel(root, p)
		target := filepath.Join(dest, sub)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode())
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		}
		return fmt.Errorf("%s: not a file, directory or symlink", p)
	})
}

func copyFile(src, dest string, mode fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dest, data, mode.Perm())
}

// finalStage assembles the FROM scratch stage: one layer per COPY, the
// rest into the image config.
func finalStage(s *stage, stages map[string]*stage, args buildArgs) (v1.Image, error) {
	var (
		cfg    v1.Config
		layers []v1.Layer
		vars   = map[string]string{}
		seen   = map[string]bool{} // directories already in a layer
	)
	epoch := time.Unix(0, 0).UTC()
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", e, err)
		}
		epoch = time.Unix(n, 0).UTC()
	}
	for _, in := range s.instrs {
		var err error
		switch in.cmd {
		case "ARG":
			declare(in, args, vars)
		case "COPY":
			var l v1.Layer
			if l, err = copyLayer(in, stages, seen, epoch); err == nil {
				layers = append(layers, l)
			}
		case "USER":
			cfg.User = in.args
		case "WORKDIR":
			if !seen[strings.TrimPrefix(path.Clean(in.args), "/")] {
				err = fmt.Errorf("WORKDIR %s: no earlier COPY made it", in.args)
			}
			cfg.WorkingDir = in.args
		case "VOLUME":
			var vols []string
			if vols, err = jsonOrFields(in.args); err == nil {
				cfg.Volumes = map[string]struct{}{}
				for _, v := range vols {
					cfg.Volumes[v] = struct{}{}
				}
			}
		case "EXPOSE":
			cfg.ExposedPorts = map[string]struct{}{}
			for _, p := range strings.Fields(in.args) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				cfg.ExposedPorts[p] = struct{}{}
			}
		case "ENV":
			k, v, ok := strings.Cut(in.args, "=")
			if !ok {
				err = errors.New("ENV wants NAME=VALUE")
			}
			cfg.Env = append(cfg.Env, k+"="+v)
		case "LABEL":
			k, v, _ := strings.Cut(in.args, "=")
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			cfg.Labels[k] = strings.Trim(v, `"`)
		case "ENTRYPOINT":
			cfg.Entrypoint, err = execForm(in.args)
		case "CMD":
			cfg.Cmd, err = execForm(in.args)
		case "HEALTHCHECK":
			cfg.Healthcheck, err = healthcheck(in.args)
		default:
			err = fmt.Errorf("%s is not supported in the final stage", in.cmd)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", in.line, err)
		}
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.OS = "linux"
	cf.Architecture = targetArch(args)
	cf.Created = v1.Time{Time: epoch}
	return mutate.ConfigFile(img, cf)
}

// execForm reads ENTRYPOINT and CMD: the JSON form only, since the
// shell form needs a shell the image does not have.
func execForm(s string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("%s: only the JSON (exec) form runs without a shell", s)
	}
	return v, nil
}

func jsonOrFields(s string) ([]string, error) {
	if strings.HasPrefix(s, "[") {
		return execForm(s)
	}
	return strings.Fields(s), nil
}

// healthcheck reads HEALTHCHECK [--interval=D --timeout=D --start-period=D
// --retries=N] CMD ["..."].
func healthcheck(s string) (*v1.HealthConfig, error) {
	h := &v1.HealthConfig{}
	for {
		s = strings.TrimSpace(s)
		if !strings.HasPrefix(s, "--") {
			break
		}
		opt, rest, _ := strings.Cut(s, " ")
		s = rest
		k, v, _ := strings.Cut(strings.TrimPrefix(opt, "--"), "=")
		var err error
		switch k {
		case "interval":
			h.Interval, err = time.ParseDuration(v)
		case "timeout":
			h.Timeout, err = time.ParseDuration(v)
		case "start-period":
			h.StartPeriod, err = time.ParseDuration(v)
		case "retries":
			h.Retries, err = strconv.Atoi(v)
		default:
			err = fmt.Errorf("unknown option %s", opt)
		}
		if err != nil {
			return nil, fmt.Errorf("HEALTHCHECK %s: %w", opt, err)
		}
	}
	rest, ok := strings.CutPrefix(s, "CMD ")
	if !ok {
		return nil, fmt.Errorf("HEALTHCHECK %s: want CMD [...]", s)
	}
	cmd, err := execForm(strings.TrimSpace(rest))
	if err != nil {
		return nil, err
	}
	h.Test = append([]string{"CMD"}, cmd...)
	return h, nil
}

// entry is one file of a layer.
type entry struct {
	hdr  tar.Header
	data []byte
}

// copyLayer turns COPY [--from=STAGE] [--chown=U:G] SRC... DEST into a
// layer. As Docker's COPY: a file keeps its permission bits; a directory's
// contents are copied, and the directory made for them gets --chown's
// owner; parent directories made on the way are root's, 0755; without
// --chown everything is 0:0.
func copyLayer(in instruction, stages map[string]*stage, seen map[string]bool, epoch time.Time) (v1.Layer, error) {
	f := strings.Fields(in.args)
	var from *stage
	uid, gid := 0, 0
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		switch k {
		case "from":
			if from = stages[v]; from == nil {
				return nil, fmt.Errorf("COPY --from=%s: no such stage", v)
			}
		case "chown":
			u, g, ok := strings.Cut(v, ":")
			var err1, err2 error
			uid, err1 = strconv.Atoi(u)
			gid, err2 = strconv.Atoi(g)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("COPY --chown=%s: want numeric UID:GID (the image has no user database to look names up in at build time)", v)
			}
		default:
			return nil, fmt.Errorf("COPY: option --%s is not supported", k)
		}
		f = f[1:]
	}
	if from == nil || len(f) < 2 {
		return nil, errors.New("COPY: the final stage copies --from a build stage: COPY --from=STAGE SRC... DEST")
	}
	dest, srcs := f[len(f)-1], f[:len(f)-1]
	if !path.IsAbs(dest) {
		return nil, fmt.Errorf("COPY: destination %s is not absolute", dest)
	}
	if len(srcs) > 1 && !strings.HasSuffix(dest, "/") {
		return nil, fmt.Errorf("COPY: with several sources the destination %s must end in /", dest)
	}
	var entries []entry
	dir := func(p string, u, g int) {
		entries = append(entries, entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755, Uid: u, Gid: g}})
		seen[p] = true
	}
	parents := func(p string) {
		var up []string
		for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
			up = append(up, d)
		}
		for _, d := range slices.Backward(up) {
			if !seen[d] {
				dir(d, 0, 0)
			}
		}
	}
	for _, src := range srcs {
		local := src
		if path.IsAbs(src) && (src == from.workdir || strings.HasPrefix(src, from.workdir+"/")) {
			var err error
			if local, err = from.local(src); err != nil {
				return nil, err
			}
		} else if !path.IsAbs(src) {
			return nil, fmt.Errorf("COPY --from: source %s is not absolute", src)
		}
		info, err := os.Stat(local)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			target := strings.TrimPrefix(dest, "/")
			if strings.HasSuffix(dest, "/") {
				target = path.Join(target, path.Base(src))
			}
			data, err := os.ReadFile(local)
			if err != nil {
				return nil, err
			}
			parents(target)
			entries = append(entries, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: target, Mode: int64(info.Mode().Perm()), Uid: uid, Gid: gid, Size: int64(len(data))}, data: data})
			continue
		}
		top := strings.TrimPrefix(path.Clean(dest), "/")
		parents(top)
		err = filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(local, p)
			target := path.Join(top, filepath.ToSlash(rel))
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				dir(target, uid, gid)
			case info.Mode().IsRegular():
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				entries = append(entries, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: target, Mode: int64(info.Mode().Perm()), Uid: uid, Gid: gid, Size: int64(len(data))}, data: data})
			default:
				return fmt.Errorf("%s: only files and directories are copied", p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		e.hdr.ModTime = epoch
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
