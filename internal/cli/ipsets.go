package cli

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/ipset"
)

// Local copies of built-in ip sets live beside the config, one file per
// set, one CIDR a line: ip_sets/github-hooks.txt. serve, check and
// explain read them; a set the config's own ip_sets names wins over both
// the local copy and the built-in list.
const ipsetDir = "ip_sets"

func ipsetFile(configPath, name string) string {
	return filepath.Join(filepath.Dir(configPath), ipsetDir, name+".txt")
}

// runIPSets is `drawbridge ipsets update github-hooks --from FILE [-c CONFIG]`:
// it reads a saved https://api.github.com/meta document and writes its
// "hooks" ranges as the local copy of github-hooks. The gateway never
// fetches anything itself; a SIGHUP (or restart) picks the copy up.
func runIPSets(args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "update" {
		fmt.Fprintln(stderr, "usage: drawbridge ipsets update github-hooks --from FILE [-c CONFIG]")
		return exitError(2)
	}
	name := args[1]
	fs := flag.NewFlagSet("ipsets update", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	from := fs.String("from", "", "saved GitHub /meta JSON `file` (curl -o meta.json https://api.github.com/meta)")
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	if name != ipset.GitHubHooks {
		return fmt.Errorf("ipsets update: only %s is built in; define other sets under ip_sets: in the config", ipset.GitHubHooks)
	}
	if *from == "" {
		return errors.New("ipsets update: --from FILE is required")
	}
	data, err := os.ReadFile(*from)
	if err != nil {
		return fmt.Errorf("ipsets update: %w", err)
	}
	ps, err := ipset.ParseGitHubMeta(data)
	if err != nil {
		return fmt.Errorf("ipsets update: %s: %w", *from, err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# %s: the \"hooks\" ranges of %s, written by drawbridge ipsets update at %s\n",
		name, filepath.Base(*from), time.Now().UTC().Format(time.RFC3339))
	for _, p := range ps {
		fmt.Fprintln(&buf, p)
	}
	out := ipsetFile(*path, name)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("ipsets update: %w", err)
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("ipsets update: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("ipsets update: %w", err)
	}
	fmt.Fprintf(stdout, "%s: %d ranges written to %s (send SIGHUP to a running drawbridge to use them)\n", name, len(ps), out)
	return nil
}

// localIPSets reads the local copies of built-in sets next to the config
// at path. A missing file is normal (the built-in list applies); an
// unreadable or malformed one is logged and ignored, so a bad download
// never takes the gateway down nor empties an allow list.
func localIPSets(path string, log *slog.Logger) map[string][]string {
	out := map[string][]string{}
	for _, name := range []string{ipset.GitHubHooks} {
		entries, err := readIPSetFile(ipsetFile(path, name))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			log.Warn("ignoring local ip set copy; using the built-in list", "set", name, "error", err.Error())
		default:
			out[name] = entries
		}
	}
	return out
}

func readIPSetFile(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseIPSetFile(file, data)
}

// parseIPSetFile reads one CIDR or address a line; blank lines and lines
// starting with # are skipped. Any other line must parse, and at least one
// range must be there: a truncated copy must not empty an allow list.
func parseIPSetFile(file string, data []byte) ([]string, error) {
	var entries []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if _, err := ipset.ParsePrefix(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %q is not a CIDR", file, n, line)
		}
		entries = append(entries, line)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: no ranges", file)
	}
	return entries, nil
}
