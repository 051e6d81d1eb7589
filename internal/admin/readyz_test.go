package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/store/bolt"
	"github.com/prometheus/client_golang/prometheus"
)

// TestReadyzStateFile: /readyz follows the embedded store's Ready: 200
// while its file is in place and commits work, 503 with the reason once a
// commit failed (200 again after one succeeds) and, for good, once the
// file was removed.
func TestReadyzStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(Handler(prometheus.NewRegistry(), st.Ready, nil))
	defer srv.Close()
	readyz := func(wantCode int, wantReason string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v struct{ Status, Reason string }
		if err := json.Unmarshal(b, &v); err != nil || resp.StatusCode != wantCode || !strings.Contains(v.Reason, wantReason) {
			t.Fatalf("/readyz = %d %s, want %d with reason containing %q", resp.StatusCode, b, wantCode, wantReason)
		}
	}
	readyz(http.StatusOK, "")
	st.Committed(os.ErrDeadlineExceeded)
	readyz(http.StatusServiceUnavailable, "latest commit failed: i/o timeout")
	st.Committed(nil)
	readyz(http.StatusOK, "")
	os.Remove(path)
	st.CheckFile()
	readyz(http.StatusServiceUnavailable, "state file lost: "+path+" was removed while in use; restart drawbridge")
	st.Committed(nil)
	readyz(http.StatusServiceUnavailable, "state file lost")
}
