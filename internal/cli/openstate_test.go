package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

// TestOpenStateProvides holds openState to what each driver provides for
// each use: the store always, the queue where async routes are served,
// a history where the driver keeps one (redis: pending entries and dead
// letters, for the console, but none for `drawbridge deliveries`), and
// the embedded file
// neither created nor locked by commands that must not touch it.
func TestOpenStateProvides(t *testing.T) {
	type want struct {
		driver              string // opened
		queue, history, dur bool
		poll                time.Duration
		err                 string // substring; "" = success
		fileAfter           bool   // the embedded file exists afterwards
	}
	cases := []struct {
		name     string
		driver   string
		use      stateUse
		makeFile bool // create the embedded file first
		held     bool // another open holds the embedded file
		want     want
	}{
		{"memory serving", "memory", serving, false, false, want{driver: "memory"}},
		{"memory operating", "memory", operating, false, false, want{err: "keeps no delivery queue"}},
		{"embedded serving creates the file", "embedded", serving, false, false, want{driver: "embedded", queue: true, history: true, fileAfter: true}},
		{"embedded in Lambda is per instance", "embedded", servingLambda, false, false, want{driver: "memory"}},
		{"embedded checking never touches the file", "embedded", checking, false, true, want{driver: "memory", fileAfter: true}},
		{"embedded checking creates nothing", "embedded", checking, false, false, want{driver: "memory"}},
		{"embedded reading, no file", "embedded", reading, false, false, want{err: "no state file"}},
		{"embedded reading", "embedded", reading, true, false, want{driver: "embedded", fileAfter: true}},
		{"embedded reading, held", "embedded", reading, true, true, want{err: errStateLocked.Error(), fileAfter: true}},
		{"embedded operating, no file", "embedded", operating, false, false, want{err: "nothing was accepted yet"}},
		{"embedded operating", "embedded", operating, true, false, want{driver: "embedded", queue: true, history: true, fileAfter: true}},
		{"embedded operating, held", "embedded", operating, true, true, want{err: errStateLocked.Error(), fileAfter: true}},
		{"redis serving", "redis", serving, false, false, want{driver: "redis", queue: true, history: true, dur: true, poll: time.Second}},
		{"redis in Lambda is shared", "redis", servingLambda, false, false, want{driver: "redis", queue: true, history: true, dur: true, poll: time.Second}},
		{"redis checking", "redis", checking, false, false, want{driver: "redis", dur: true}},
		{"redis reading", "redis", reading, false, false, want{driver: "redis", dur: true}},
		{"redis operating", "redis", operating, false, false, want{driver: "redis", history: true, dur: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			// Nothing listens on port 1: the redis driver must not dial
			// while opening.
			cfg := &config.Config{File: filepath.Join(dir, "drawbridge.yaml"),
				State: config.State{Driver: c.driver, Path: "state.db", URL: "redis://127.0.0.1:1/0"}}
			file := statePath(cfg)
			if c.makeFile || c.held {
				other, err := openState(&config.Config{File: cfg.File, State: config.State{Driver: "embedded", Path: "state.db"}}, serving)
				if err != nil {
					t.Fatal(err)
				}
				if c.held {
					defer other.close()
				} else {
					other.close()
				}
			}
			st, err := openState(cfg, c.use)
			w := c.want
			if w.err != "" {
				if err == nil || !strings.Contains(err.Error(), w.err) {
					t.Fatalf("err = %v, want %q", err, w.err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer st.close()
				if st.driver != w.driver || st.store == nil || (st.queue != nil) != w.queue || (st.history != nil) != w.history ||
					(st.durability != nil) != w.dur || st.poll != w.poll {
					t.Errorf("opened %q store %v queue %v history %v durability %v poll %v; want %+v",
						st.driver, st.store != nil, st.queue != nil, st.history != nil, st.durability != nil, st.poll, w)
				}
			}
			if _, err := os.Stat(file); (err == nil) != w.fileAfter {
				t.Errorf("state file exists: %v, want %v", err == nil, w.fileAfter)
			}
		})
	}
}

// TestOnePlaceChoosesStateDriver: outside state.go no file of package cli
// imports a state driver or the Redis delivery queue, nor reads
// state.driver; they use what openState returned.
func TestOnePlaceChoosesStateDriver(t *testing.T) {
	drivers := map[string]bool{
		"github.com/drawbridge/drawbridge/internal/store/bolt":       true,
		"github.com/drawbridge/drawbridge/internal/store/memory":     true,
		"github.com/drawbridge/drawbridge/internal/store/redis":      true,
		"github.com/drawbridge/drawbridge/internal/delivery/streams": true,
		"go.etcd.io/bbolt": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "state.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); drivers[p] {
				t.Errorf("%s imports %s: only state.go chooses the state driver", fset.Position(imp.Pos()), p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Driver" {
				if x, ok := sel.X.(*ast.SelectorExpr); ok && x.Sel.Name == "State" {
					t.Errorf("%s reads State.Driver: only state.go chooses the state driver", fset.Position(sel.Pos()))
				}
			}
			return true
		})
	}
	if checked < 10 {
		t.Fatalf("checked only %d files: is the test running in internal/cli?", checked)
	}
}

// TestGatewayDepsQueue: a state without a queue gives the gateway a nil
// Enqueuer interface, not a typed nil (async routes then answer 503
// rather than calling through a nil pointer); one with a queue hands it
// over; metrics are never nil.
func TestGatewayDepsQueue(t *testing.T) {
	cfg := &config.Config{File: filepath.Join(t.TempDir(), "drawbridge.yaml"), State: config.State{Driver: "embedded", Path: "state.db"}}
	for _, use := range []stateUse{servingLambda, serving} {
		st, err := openState(cfg, use)
		if err != nil {
			t.Fatal(err)
		}
		d := gatewayDeps(cfg, wiring{state: st})
		if (d.Queue != nil) != (use == serving) || d.Metrics == nil || d.Store != st.store {
			t.Errorf("%s state: deps queue %v, metrics %v, store %v", st.driver, d.Queue, d.Metrics != nil, d.Store != nil)
		}
		st.close()
	}
}
