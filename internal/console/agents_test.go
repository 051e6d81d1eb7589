package console

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

type fakeAgents []Agent

func (f fakeAgents) Agents() []Agent { return f }

const agentsConfig = `listen: 127.0.0.1:0
agents:
  listen: 127.0.0.1:0
  tls: {cert: cert.pem, key: key.pem}
  tokens:
    - {name: ci, sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae}
    - {name: billing, sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9}
state: {driver: memory}
routes:
  - {path: /hooks/ci, target: "http://10.0.0.20:8080/ci", via: ci}
  - {path: /hooks/ci2, target: "http://10.0.0.20:8080/ci2", via: ci}
  - {path: /direct, target: "http://127.0.0.1:1/"}
`

// agentsFixture serves the console with src as its agent registry (nil:
// no agents listener) over the config yaml.
func agentsFixture(t *testing.T, yaml string, src AgentSource) *fixture {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "drawbridge.yaml"), []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{cfg: cfg, c: New(Deps{Admin: http.NotFoundHandler(), Config: func() *config.Config { return cfg },
		Agents: src, Now: func() time.Time { return t0 }})}
}

// agentCells is the agents table's row of name: the tunnel count and the
// routes cell.
func agentCells(t *testing.T, page, name string) (tunnels, routes string) {
	t.Helper()
	re := regexp.MustCompile(`<th scope="row">` + regexp.QuoteMeta(name) + `(?: <span[^<]*</span>)?</th><td data-label="Tunnels" class="tunnels">(\d+)</td>.*?<td data-label="Routes">(.*?)</td></tr>`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no agents row for %q in:\n%s", name, page)
	}
	return m[1], m[2]
}

// TestAgentsPageLists: each agent name with its tunnels, totals and via
// routes, in a captioned table with headers; each tunnel with its
// address, age and last round trip.
func TestAgentsPageLists(t *testing.T) {
	f := agentsFixture(t, agentsConfig, fakeAgents{
		{Name: "billing", Configured: true},
		{Name: "ci", Configured: true, Connects: 3, Requests: 42, Sent: 2048, Received: 3 << 30, Tunnels: []AgentTunnel{
			{ID: 7, Remote: "10.1.2.3:50000", Since: t0.Add(-90 * time.Second), Streams: 2, Requests: 40, RTT: 1500 * time.Microsecond},
			{ID: 9, Remote: "10.1.2.4:50001", Since: t0.Add(-5 * time.Second), Streams: 1, Requests: 2},
		}},
	})
	resp := f.do(t, "GET", "/console/agents", nil)
	page := text(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != CSP {
		t.Fatalf("agents page: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	if strings.Contains(page, "No agents configured") {
		t.Error("the page says no agents are configured")
	}
	for _, want := range []string{
		`<table id="agents" class="stack">`, `<caption>Agents by name`, `<th scope="col">Tunnels</th>`,
		`<table id="tunnels" class="stack">`, `<caption>Connected tunnels`, `<th scope="col">Remote address</th>`,
		`<td data-label="In flight">3</td>`, `<td data-label="Requests">42</td>`, `<td data-label="Sent to it">2.0 KiB</td>`,
		`<td data-label="Received">3.0 GiB</td>`, `<td data-label="Connects">3</td>`,
		`<td data-label="Remote address">10.1.2.3:50000</td>`, `2026-12-07 20:58:30Z (1 min ago)`, `<td data-label="Round trip">1.5 ms</td>`,
		`<td data-label="Remote address">10.1.2.4:50001</td>`, `(5 s ago)`, `<td data-label="Round trip">not measured yet</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("agents page lacks %q", want)
		}
	}
	if n, routes := agentCells(t, page, "ci"); n != "2" || routes != "<code>/hooks/ci</code>, <code>/hooks/ci2</code>" {
		t.Errorf("ci: %s tunnels, routes %q", n, routes)
	}
	if n, routes := agentCells(t, page, "billing"); n != "0" || routes != "none" {
		t.Errorf("billing: %s tunnels, routes %q", n, routes)
	}
	if strings.Index(page, `<th scope="row">billing`) > strings.Index(page, `<th scope="row">ci`) {
		t.Error("agents are not in the order the registry gave (by name)")
	}
	for _, secret := range []string{"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9", "sha256"} {
		if strings.Contains(page, secret) {
			t.Errorf("the agents page shows %q", secret)
		}
	}
}

// TestAgentsPageNoneConnected: configured names are listed with 0
// tunnels and the page says none is connected.
func TestAgentsPageNoneConnected(t *testing.T) {
	f := agentsFixture(t, agentsConfig, fakeAgents{{Name: "billing", Configured: true}, {Name: "ci", Configured: true}})
	page := text(t, f.do(t, "GET", "/console/agents", nil))
	for _, name := range []string{"billing", "ci"} {
		if n, _ := agentCells(t, page, name); n != "0" {
			t.Errorf("%s: %s tunnels", name, n)
		}
	}
	if !strings.Contains(page, `id="tunnels-none"`) || strings.Contains(page, `<table id="tunnels"`) {
		t.Error("the page does not say that no agent is connected")
	}
}

// TestAgentsPageEscapes: what the registry reports is text, never markup
// (a name or address is an agent's claim, and the page must hold even if
// a future check let one through).
func TestAgentsPageEscapes(t *testing.T) {
	evil := `<script>alert("x")</script>`
	f := agentsFixture(t, agentsConfig, fakeAgents{{Name: evil, Tunnels: []AgentTunnel{{ID: 1, Remote: evil, Since: t0}}}})
	page := text(t, f.do(t, "GET", "/console/agents", nil))
	if strings.Contains(page, "<script>") {
		t.Fatalf("unescaped markup on the agents page:\n%s", page)
	}
	if strings.Count(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") != 3 {
		t.Errorf("the name and address are not shown escaped (name twice, address once):\n%s", page)
	}
	if !strings.Contains(page, "no longer configured") {
		t.Error("an unconfigured name is not marked")
	}
}

// TestAgentsPageWithoutListener: no agents: block, no registry: the page
// says none are configured; a block but no registry (it came with a
// reload) lists the names with 0 tunnels and says a restart is needed,
// without their digests.
func TestAgentsPageWithoutListener(t *testing.T) {
	f := agentsFixture(t, "listen: 127.0.0.1:0\nstate: {driver: memory}\nroutes:\n  - {path: /a, target: \"http://127.0.0.1:1/\"}\n", nil)
	page := text(t, f.do(t, "GET", "/console/agents", nil))
	if !strings.Contains(page, `<p id="agents-none">No agents configured.`) || strings.Contains(page, "<table") {
		t.Errorf("without agents:\n%s", page)
	}
	f = agentsFixture(t, agentsConfig, nil)
	page = text(t, f.do(t, "GET", "/console/agents", nil))
	for _, name := range []string{"billing", "ci"} {
		if n, _ := agentCells(t, page, name); n != "0" {
			t.Errorf("%s: %s tunnels", name, n)
		}
	}
	if !strings.Contains(page, "takes effect after a restart") {
		t.Error("the page does not say the agents listener needs a restart")
	}
	if strings.Contains(page, "2c26b46b") || strings.Contains(page, "fcde2b2e") {
		t.Error("the agents page shows a token digest")
	}
}
