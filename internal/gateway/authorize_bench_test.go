package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkGuardsJWT: the allowed request of BenchmarkGuards (policy, API
// key, throttles, quota, max_concurrent) on a route that also has a JWT
// authorizer, RS256 and ES256, keys cached; compare with
// BenchmarkGuards/allowed, the same chain without it.
func BenchmarkGuardsJWT(b *testing.B) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: rk.Public(), KeyID: "r", Use: "sig"}, {Key: ek.Public(), KeyID: "e", Use: "sig"}}}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(keys)
	}))
	defer jwks.Close()
	yaml := benchYAML + `  - {path: /jwt, methods: [GET], target: "http://127.0.0.1:1/", api_key_required: true, authorizer: corp, scopes: [read]}
authorizers:
  corp: {type: jwt, issuer: "https://login.example/", audience: [api], jwks_uri: "` + jwks.URL + `"}
`
	g, _ := buildFor(b, yaml, "", Deps{}, map[string]string{"GH": "x"})
	w := &discard{h: http.Header{}}
	claims, _ := json.Marshal(map[string]any{"iss": "https://login.example/", "aud": "api", "sub": "u",
		"scope": "read", "exp": time.Now().Add(time.Hour).Unix()})
	for _, k := range []struct {
		name string
		alg  jose.SignatureAlgorithm
		key  any
		kid  string
	}{{"RS256", jose.RS256, rk, "r"}, {"ES256", jose.ES256, ek, "e"}} {
		b.Run("allowed_"+k.name, func(b *testing.B) {
			sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.key}, (&jose.SignerOptions{}).WithHeader("kid", k.kid))
			obj, _ := sg.Sign(claims)
			tok, _ := obj.CompactSerialize()
			r, _ := http.NewRequest("GET", "http://gw/jwt", nil)
			r.RequestURI, r.RemoteAddr = "/jwt", "140.82.112.5:40000"
			r.Header.Set("X-Api-Key", keyA)
			r.Header.Set("User-Agent", "GitHub-Hookshot/abc")
			r.Header.Set("Authorization", "Bearer "+tok)
			w.code = 0
			if g.serve(w, r, noDispatch); w.code != 0 {
				b.Fatalf("allowed request answered %d", w.code)
			}
			b.ReportAllocs()
			for b.Loop() {
				g.serve(w, r, noDispatch)
			}
		})
	}
	b.Run("unauthorized", func(b *testing.B) {
		r, _ := http.NewRequest("GET", "http://gw/jwt", nil)
		r.RequestURI, r.RemoteAddr = "/jwt", "140.82.112.5:40000"
		r.Header.Set("User-Agent", "GitHub-Hookshot/abc")
		if g.ServeHTTP(w, r); w.code != 401 {
			b.Fatalf("answered %d, want 401", w.code)
		}
		b.ReportAllocs()
		for b.Loop() {
			g.ServeHTTP(w, r)
		}
	})
}
