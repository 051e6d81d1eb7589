package egress

import (
	"context"
	"testing"
)

// BenchmarkControlContextFollowed is the dial-time decision for an
// address a followed target name resolved to (one per new connection,
// never per request on a kept-alive one).
func BenchmarkControlContextFollowed(b *testing.B) {
	g := New(nil, Options{Follow: []Name{{Host: "backend.internal", Port: 443}}})
	ctx := Follow(context.Background(), "backend.internal")
	b.ReportAllocs()
	for b.Loop() {
		if g.ControlContext(ctx, "tcp4", "10.1.2.3:443", nil) != nil {
			b.Fatal("denied")
		}
	}
}
