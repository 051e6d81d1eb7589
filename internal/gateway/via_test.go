package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drawbridge/drawbridge/internal/egress"
	"github.com/drawbridge/drawbridge/internal/forward"
	"github.com/drawbridge/drawbridge/internal/metrics"
)

const viaYAML = `
tls: {cert: c.pem, key: k.pem}
agents:
  listen: 127.0.0.1:0
  tokens: [{name: ci, sha256: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}]
routes:
  - {path: /via, target: 'http://10.0.0.20:8080/', via: ci}
`

// agentsFunc is a Deps.Agents whose RoundTripper fails with err.
type agentsFunc struct{ err error }

func (a agentsFunc) Transport(string) http.RoundTripper { return a }
func (a agentsFunc) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, a.err
}

// A via route's failures have the answers and outcomes of the direct
// path's, and agent_unavailable when no agent is there at all (no
// agents listener: Lambda, check).
func TestViaOutcomes(t *testing.T) {
	for _, c := range []struct {
		name    string
		agents  Agents
		status  int
		outcome metrics.Outcome
	}{
		{"no agents listener", nil, 502, metrics.AgentUnavailable},
		{"no agent connected", agentsFunc{forward.ErrAgentUnavailable}, 502, metrics.AgentUnavailable},
		{"agent egress refused", agentsFunc{&egress.DeniedError{}}, 502, metrics.EgressDenied},
		{"agent failed", agentsFunc{errors.New("tunnel broke")}, 502, metrics.UpstreamError},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, m := buildFor(t, viaYAML, "", Deps{Agents: c.agents}, nil)
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("GET", "/via", nil))
			if w.Code != c.status || strings.TrimSpace(w.Body.String()) != `{"message":"Bad Gateway"}` {
				t.Errorf("got %d %s", w.Code, w.Body)
			}
			if n := testutil.ToFloat64(m.Requests.WithLabelValues("/via", "GET", string(c.outcome))); n != 1 {
				t.Errorf("%s count = %v", c.outcome, n)
			}
		})
	}
}
