package authorizer

import (
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkJWTVerify: one token verified against a key set already in
// memory (the steady state: keys cached), parse, signature and claims.
func BenchmarkJWTVerify(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			s := newSigner(b, alg, "k")
			j := newTestJWT(b, 0, s)
			q := authReq(s.sign(b, goodClaims()), &Route{Scopes: []string{"read"}}, t0)
			if d := j.Authorize(q); d.Outcome != Allow {
				b.Fatalf("%v %s", d.Outcome, d.Reason)
			}
			b.ReportAllocs()
			for b.Loop() {
				j.Authorize(q)
			}
		})
	}
}
