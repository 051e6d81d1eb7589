package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/drawbridge/drawbridge/internal/gateway"
)

// headerFlags collects repeated --header 'K: V'.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// runExplain is `drawbridge explain`: one imaginary request through the
// same steps as serve, state read and not consumed, the target never
// called (docs/guards.md#explain).
func runExplain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	method := fs.String("method", "GET", "HTTP `method`")
	target := fs.String("path", "/", "request `path`, with an optional ?query")
	ip := fs.String("ip", "", "client `address` (the TCP peer)")
	apiKey := fs.String("api-key", "", "x-api-key header `value`")
	data := fs.String("data", "", "request `body` (for webhook signatures)")
	var headers headerFlags
	fs.Var(&headers, "header", "request header `'K: V'` (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ip == "" {
		return errors.New("explain: --ip is required (the client address the guards see)")
	}
	addr, err := netip.ParseAddr(*ip)
	if err != nil {
		return fmt.Errorf("explain: --ip %q is not an IP address", *ip)
	}
	r, err := http.NewRequest(strings.ToUpper(*method), "http://drawbridge"+*target, nil)
	if err != nil || !strings.HasPrefix(*target, "/") {
		return fmt.Errorf("explain: --path %q is not a path", *target)
	}
	r.RequestURI = *target
	r.RemoteAddr = net.JoinHostPort(addr.String(), "0")
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("explain: --header %q is not 'Name: value'", h)
		}
		r.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if *apiKey != "" {
		r.Header.Set("X-Api-Key", *apiKey)
	}
	r.ContentLength = int64(len(*data))

	g, done, err := readingGateway(*path, false, stderr)
	if err != nil {
		return err
	}
	defer done()
	e := g.Explain(r, []byte(*data))
	printExplanation(stdout, &e)
	return nil
}

func printExplanation(w io.Writer, e *gateway.Explanation) {
	for _, l := range e.Lines {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w, e.Result())
}

// readingGateway builds the gateway of the config at path over its state
// opened for reading (openStateForReading), for commands that inspect
// rather than serve. done closes both.
func readingGateway(path string, exact bool, stderr io.Writer) (g *gateway.Gateway, done func(), err error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	st, note, err := openStateForReading(cfg, exact)
	if err != nil {
		return nil, nil, err
	}
	if note != "" {
		fmt.Fprintln(stderr, "note:", note)
	}
	g, err = gateway.Build(cfg, gatewayDeps(cfg, wiring{state: st}))
	if err != nil {
		st.close()
		return nil, nil, err
	}
	return g, func() { g.Close(); st.close() }, nil
}
