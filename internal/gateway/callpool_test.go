package gateway

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// keepHeader is a ResponseWriter that keeps the handler's header map and
// reads it after the handler returned, as any ResponseWriter may.
type keepHeader struct{ discard }

// TestRecycledCallLeavesAnswersAlone: a rejection's call is reused by
// the next requests (callpool.go), but what it put in the answer's header
// map stays as it was: ids and header values are never written again.
func TestRecycledCallLeavesAnswersAlone(t *testing.T) {
	for _, api := range []string{"rest", "http"} {
		t.Run(api, func(t *testing.T) {
			g, _ := buildFor(t, "api: "+api+"\n"+routesYAML, "http://127.0.0.1:1", Deps{}, nil)
			var kept []http.Header
			var snaps []map[string][]string
			for i := range 3 * idsPerSlab {
				w := &keepHeader{discard{h: http.Header{}}}
				r := httptest.NewRequest("GET", fmt.Sprintf("/nope/%d", i), nil)
				g.ServeHTTP(w, r)
				kept = append(kept, w.h)
				snap := map[string][]string{}
				for k, v := range w.h {
					snap[k] = slices.Clone(v)
				}
				snaps = append(snaps, snap)
			}
			seen := map[string]bool{}
			for i, h := range kept {
				if !maps.EqualFunc(map[string][]string(h), snaps[i], slices.Equal) {
					t.Fatalf("answer %d's headers changed after the handler returned:\n%v\nwas\n%v", i, h, snaps[i])
				}
				id := h["x-amzn-RequestId"]
				if api == "http" {
					id = h["apigw-requestid"]
				}
				if len(id) != 1 || seen[id[0]] {
					t.Fatalf("answer %d: request id %q missing or repeated", i, id)
				}
				seen[id[0]] = true
			}
		})
	}
}
