package forward

import (
	"net/http/httptest"
	"testing"
)

// BenchmarkOutbound: the lean path's outbound request, built by the plan
// into pooled memory, for a typical webhook's header set. CPU only: no
// connection, so that a change to the plan shows beside the loopback
// noise of BenchmarkForward.
func BenchmarkOutbound(b *testing.B) {
	f, err := New("http://127.0.0.1:1/base/", Options{Lean: true})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("POST", "http://gw.example/hooks/a?x=1", nil)
	for k, v := range map[string]string{
		"User-Agent": "GitHub-Hookshot/abc", "Accept": "*/*", "Content-Type": "application/json", "Content-Length": "1234",
		"X-Github-Event": "push", "X-Github-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		"X-Hub-Signature-256": "sha256=00", "X-Api-Key": "k", "Accept-Encoding": "gzip",
	} {
		r.Header.Set(k, v)
	}
	fr := &Request{Rest: "/a", Body: make([]byte, 1234), ForwardedFor: "140.82.112.5", RequestID: "id"}
	b.ReportAllocs()
	for b.Loop() {
		o := outbounds.Get().(*outReq)
		f.outbound(o, r, fr)
		o.release()
	}
}
