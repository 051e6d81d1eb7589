package gateway

import (
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/bolt"
	"github.com/drawbridge/drawbridge/internal/store/redis"
	"github.com/drawbridge/drawbridge/internal/store/redis/redistest"
)

// blogStore is one driver the blog's guard chain is measured on, with
// the Redis servers whose INFO counts its round trips.
type blogStore struct {
	name  string
	store store.Store
	nodes []string // host:port; none for embedded
}

// blogStores are the embedded (bbolt) driver and the redis driver on real
// local servers: one redis-server, a primary found through three
// sentinels (with its replica), and a 3-primary Cluster.
func blogStores(tb testing.TB) []blogStore {
	tb.Helper()
	emb, err := bolt.Open(filepath.Join(tb.TempDir(), "state.db"), bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { emb.Close() })
	srv := redistest.Start(tb, redistest.Options{})
	ss := redistest.StartSentinel(tb, redistest.Options{})
	cl := redistest.StartCluster(tb, 3, 0, redistest.Options{})
	stores := []blogStore{{name: "embedded", store: emb}}
	for _, r := range []struct {
		name, url string
		nodes     []string
	}{
		{"redis", srv.URL(), []string{srv.Addr}},
		{"redis_sentinel", ss.URL(), []string{ss.Primary.Addr}},
		{"redis_cluster", cl.URL(), cl.Addrs()},
	} {
		rs, err := redis.New(redis.Options{URL: r.url})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { rs.Close() })
		stores = append(stores, blogStore{r.name, rs, r.nodes})
	}
	return stores
}

// blogRequest is the blog's allowed request: GitHub's address, key a.
func blogRequest() *http.Request {
	r, _ := http.NewRequest("GET", "http://gw/forward", nil)
	r.RequestURI = "/forward"
	r.RemoteAddr = "140.82.112.5:40000"
	r.Header.Set("X-Api-Key", keyA)
	return r
}

// BenchmarkGuardsRedis: one allowed request through the blog's guard
// chain (policy, key, three throttle levels, quota, max_concurrent) on
// each driver, one at a time and from GOMAXPROCS goroutines. 1e9/ns_op is
// the requests/s one gateway process gets from its guards.
func BenchmarkGuardsRedis(b *testing.B) {
	for _, st := range blogStores(b) {
		g, _ := buildFor(b, benchYAML, "", Deps{Store: st.store}, map[string]string{"GH": "x"})
		b.Run(st.name, func(b *testing.B) {
			w := &discard{h: http.Header{}}
			r := blogRequest()
			// The first request dials and loads the script within the
			// 100 ms budget: on a loaded machine it may need another try.
			for try := 0; ; try++ {
				w.code = 0
				if g.serve(w, r, noDispatch); w.code == 0 {
					break
				} else if try == 5 {
					b.Fatalf("allowed request answered %d", w.code)
				}
				time.Sleep(100 * time.Millisecond)
			}
			before := nodeRoundTrips(b, st.nodes)
			b.ReportAllocs()
			for b.Loop() {
				g.serve(w, r, noDispatch)
			}
			if st.nodes != nil {
				b.ReportMetric(float64(nodeRoundTrips(b, st.nodes)-before)/float64(b.N), "rt/op")
			}
		})
		b.Run(st.name+"_parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := &discard{h: http.Header{}}
				r := blogRequest()
				for pb.Next() {
					g.serve(w, r, noDispatch)
				}
			})
		})
	}
}

// nodeRoundTrips sums roundTrips over the servers at addrs.
func nodeRoundTrips(tb testing.TB, addrs []string) int64 {
	var n int64
	for _, a := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: a})
		n += roundTrips(tb, c)
		c.Close()
	}
	return n
}

// roundTrips reads from INFO commandstats how many commands the driver's
// hot path sent: EVALSHA/EVAL (one per script call) and ZREM (Release).
// The commands a script runs are counted by Redis too, but not sent:
// they are left out.
func roundTrips(t testing.TB, c *goredis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, m := range regexp.MustCompile(`cmdstat_(evalsha|eval|zrem):calls=(\d+)`).FindAllStringSubmatch(info, -1) {
		v, _ := strconv.ParseInt(m[2], 10, 64)
		n += v
	}
	return n
}

// TestRedisRoundTripsPerRequest counts, on the server, the round trips one
// allowed blog request costs with the redis driver: steps 4-6 are one
// Admit (one EVALSHA: three throttle levels, the quota, the lease) and the
// lease's Release at the end of the request is one ZREM: 2. Without
// max_concurrent there is nothing to release: 1, one round trip per
// guarded request (docs/redis.md#one-call-one-round-trip). A
// change here changes the hot path's cost: update docs/redis.md with it.
func TestRedisRoundTripsPerRequest(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rs, err := redis.New(redis.Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer c.Close()
	noConc := strings.Replace(benchYAML, ", max_concurrent: 50", "", 1)
	if noConc == benchYAML {
		t.Fatal("benchYAML has no stage max_concurrent to take out")
	}
	for _, tc := range []struct {
		name, yaml string
		want       float64
	}{
		{"blog chain with max_concurrent: Admit, Release", benchYAML, 2},
		{"without max_concurrent: Admit", noConc, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := buildFor(t, tc.yaml, "", Deps{Store: rs}, map[string]string{"GH": "x"})
			w := &discard{h: http.Header{}}
			g.serve(w, blogRequest(), noDispatch) // loads the script (EVALSHA miss, EVAL)
			const n = 50
			before := roundTrips(t, c)
			for range n {
				w.code = 0
				if g.serve(w, blogRequest(), noDispatch); w.code != 0 {
					t.Fatalf("allowed request answered %d", w.code)
				}
			}
			if per := float64(roundTrips(t, c)-before) / n; per != tc.want {
				t.Errorf("%.2f Redis round trips per guarded request, want %v", per, tc.want)
			}
		})
	}
}
