package delivery

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkEnqueue: accepted deliveries per second with fsync on (bbolt's
// default), from 32 concurrent callers, with group commit and with one
// commit per call. Report deliveries/s, not ns/op: ns/op is per delivery.
func BenchmarkEnqueue(b *testing.B) {
	for _, mode := range []struct {
		name string
		solo bool
	}{{"group", false}, {"solo", true}} {
		b.Run(mode.name, func(b *testing.B) {
			q, err := Open(openDB(b, ""), Options{NoGroupCommit: mode.solo})
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			b.SetParallelism(16) // × GOMAXPROCS callers
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d := sample("/hooks", "http://127.0.0.1:1/", fmt.Sprint(n.Add(1)))
					if _, _, err := q.Enqueue(ctx, d); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
