package tunnel

import (
	"crypto/sha256"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
)

// TestSnapshotFollowsCredentials: every configured name is listed, sorted,
// with no tunnel, whether or not a route's Transport exists for it; a
// reload that drops a name drops it from the snapshot.
func TestSnapshotFollowsCredentials(t *testing.T) {
	e := New(Options{})
	defer e.Close()
	if s := e.Snapshot(); len(s) != 0 {
		t.Fatalf("no credentials: %+v", s)
	}
	a := &config.Agents{Tokens: []config.AgentToken{
		{Name: "ci", Digest: sha256.Sum256([]byte("t1"))},
		{Name: "billing", Digest: sha256.Sum256([]byte("t2"))},
		{Name: "ci", Digest: sha256.Sum256([]byte("t3"))},
	}}
	if err := e.SetCredentials(a); err != nil {
		t.Fatal(err)
	}
	e.Transport("ci") // a via route's RoundTripper: totals start at 0
	s := e.Snapshot()
	if len(s) != 2 || s[0].Name != "billing" || s[1].Name != "ci" {
		t.Fatalf("snapshot: %+v", s)
	}
	for _, x := range s {
		if !x.Configured || len(x.Tunnels) != 0 || x.Connects != 0 || x.Requests != 0 || x.Sent != 0 || x.Received != 0 {
			t.Errorf("%s: %+v", x.Name, x)
		}
	}
	if err := e.SetCredentials(&config.Agents{Tokens: a.Tokens[1:2]}); err != nil {
		t.Fatal(err)
	}
	if s := e.Snapshot(); len(s) != 1 || s[0].Name != "billing" {
		t.Fatalf("after ci was removed: %+v", s)
	}
}
