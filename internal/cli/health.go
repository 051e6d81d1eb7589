package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

// runHealth asks a running gateway's admin listener for /healthz: exit 0
// on 200, 1 otherwise. It exists for the container image's HEALTHCHECK,
// which has no shell or curl to run (docs/install.md, "Container image").
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	target := fs.String("url", "", "`URL` to ask instead of the config's admin address, e.g. http://127.0.0.1:9090/readyz")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("health: unexpected argument %q", fs.Arg(0))
	}
	u := *target
	if u == "" {
		cfg, err := loadConfig(*path)
		if err != nil {
			return err
		}
		if u, err = healthURL(cfg.Admin); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	client := &http.Client{
		// The probe goes to this host's own listener: an HTTP_PROXY
		// set for the gateway's backends must not carry it elsewhere.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		// A redirect is not health: the admin listener sends none.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "drawbridge: health: %v\n", err)
		return exitError(1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	line := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "drawbridge: health: %s: %s %s\n", u, resp.Status, line)
		return exitError(1)
	}
	fmt.Fprintln(stdout, line)
	return nil
}

// healthURL is /healthz on the admin address. A listener on every
// address (":9090", "0.0.0.0:9090", "[::]:9090") is asked on loopback:
// the probe runs on the gateway's own host or container.
func healthURL(admin string) (string, error) {
	if admin == config.AdminOff {
		return "", errors.New("health: the config turns the admin listener off (admin: off); give --url")
	}
	host, port, err := net.SplitHostPort(admin)
	if err != nil {
		return "", fmt.Errorf("health: admin address %q: %w", admin, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
