package forward

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"testing"
	"time"
)

// TestViaMatchesReverseProxy: a route through an agent tunnel
// (Options.Transport; here a plain Transport stands in for the tunnel)
// gives the target the same request and the client the same answer on
// the lean path (via.go) as through ReverseProxy.
func TestViaMatchesReverseProxy(t *testing.T) {
	rec := &recorder{}
	backend := httptest.NewServer(rec)
	defer backend.Close()
	tunnel := &http.Transport{DisableCompression: true}
	defer tunnel.CloseIdleConnections()
	for _, c := range diffCorpus {
		t.Run(c.name, func(t *testing.T) {
			rpSeen, rpAns := runCaseWith(t, Options{Transport: tunnel}, backend.URL, rec, c)
			viaSeen, viaAns := runCaseWith(t, Options{Transport: tunnel, Lean: true}, backend.URL, rec, c)
			if len(rpSeen) != 1 || len(viaSeen) != 1 {
				t.Fatalf("backend saw %d (reverseproxy) and %d (via) requests, want 1 each", len(rpSeen), len(viaSeen))
			}
			if d := diff(rpSeen[0], viaSeen[0]); d != "" {
				t.Errorf("backend saw different requests:\n%s", d)
			}
			if d := diff(rpAns, viaAns); d != "" {
				t.Errorf("client saw different answers:\n%s", d)
			}
		})
	}
}

// TestViaRelaysInterimAnswers: a 103 from the target reaches the client
// through a tunnel, as through ReverseProxy, with its own header only.
func TestViaRelaysInterimAnswers(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	}))
	defer backend.Close()
	f, err := New(backend.URL+"/", Options{Transport: &http.Transport{}, Lean: true})
	if err != nil {
		t.Fatal(err)
	}
	fe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f.Forward(w, r, &Request{Deadline: time.Now().Add(5 * time.Second)}); err != nil {
			t.Error(err)
		}
	}))
	defer fe.Close()
	var hints []string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, h.Get("Link"))
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", fe.URL+"/", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if len(hints) != 1 || hints[0] != "</a.css>; rel=preload" || string(body) != "final" || res.Header.Get("Link") != "" {
		t.Fatalf("hints %q, body %q, final Link %q", hints, body, res.Header.Get("Link"))
	}
}
