package authorizer

import (
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkJWTVerify: one token verified against a key set already in
// memory (keys cached): "first" is a token seen for the first time
// (parse, signature, claims), "again" the same token once more (its hash
// found in the verified-token cache, claims checked again).
func BenchmarkJWTVerify(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA} {
		s := newSigner(b, alg, "k")
		j := newTestJWT(b, 0, s)
		q := authReq(s.sign(b, goodClaims()), &Route{Scopes: []string{"read"}}, t0)
		if d := j.Authorize(*q); d.Outcome != Allow {
			b.Fatalf("%v %s", d.Outcome, d.Reason)
		}
		b.Run(string(alg)+"/first", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				j.verified.clear()
				j.Authorize(*q)
			}
		})
		b.Run(string(alg)+"/again", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				j.Authorize(*q)
			}
		})
	}
}
