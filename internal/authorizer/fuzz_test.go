package authorizer

import (
	"testing"
)

// FuzzParseToken feeds arbitrary tokens to the parser and, for those that
// parse, their unverified payload to the claims decoder: neither may
// panic, and no algorithm outside RS256, ES256 and EdDSA may parse.
func FuzzParseToken(f *testing.F) {
	rs := newSigner(f, "RS256", "r")
	es := newSigner(f, "ES256", "e")
	for _, s := range []*signer{rs, es} {
		f.Add(s.sign(f, goodClaims()))
	}
	f.Add(b64(`{"alg":"none"}`) + "." + b64(`{"iss":"x"}`) + ".")
	f.Add(b64(`{"alg":"HS256","kid":"r"}`) + "." + b64(`{"exp":1e400}`) + ".c2ln")
	f.Add(b64(`{"alg":"RS256","crit":["exp"],"exp":1}`) + "." + b64(`{"aud":[1,2]}`) + ".AA")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		jws, _, alg, err := parseToken(tok)
		if err != nil {
			return
		}
		if alg != "RS256" && alg != "ES256" && alg != "EdDSA" {
			t.Fatalf("alg %q parsed", alg)
		}
		c, err := decodeClaims(jws.UnsafePayloadWithoutVerification())
		if err != nil {
			return
		}
		c.hasScope([]string{"a"})
		c.headers([]HeaderFrom{{"X-A", "aud"}, {"X-S", "sub"}})
	})
}

// FuzzDecodeAnswer feeds arbitrary authorizer answers to the decoder and
// the decision: no panic, and a decision is always one of the outcomes.
func FuzzDecodeAnswer(f *testing.F) {
	for _, s := range []string{
		`{"isAuthorized": true, "context": {"user": "a", "n": 1}}`,
		`{"isAuthorized": false}`,
		`{"principalId":"p","policyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:*/prod/GET/*"}]},"context":{"k":"v"}}`,
		`{"principalId":"p","policyDocument":{"Statement":{"Effect":"Deny","Action":["*"],"Resource":["*"]}}}`,
		`{"context": {"a": [1]}}`,
		`null`, `[]`, `{"isAuthorized": "yes"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAnswer(b)
		if err != nil {
			return
		}
		d := a.decide(arn)
		if d.Outcome != Allow && d.Outcome != Forbidden {
			t.Fatalf("outcome %v for %s", d.Outcome, b)
		}
		for k, v := range a.context {
			for i := 0; i < len(v); i++ {
				if b := v[i]; b < 0x20 && b != '\t' || b == 0x7f {
					t.Fatalf("context %q = %q is not a header value", k, v)
				}
			}
		}
	})
}
