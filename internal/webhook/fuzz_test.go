package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// knownReason reports whether err is one of the four documented verdicts.
func knownReason(err error) bool {
	return errors.Is(err, ErrMissing) || errors.Is(err, ErrMalformed) ||
		errors.Is(err, ErrMismatch) || errors.Is(err, ErrStale)
}

// checkList asserts the parser's bounds: at most maxSigs entries, each a
// piece of the input.
func checkList(t *testing.T, l *sigList, val string) {
	t.Helper()
	if l.n < 0 || l.n > maxSigs {
		t.Fatalf("%d signatures kept, cap is %d", l.n, maxSigs)
	}
	for _, s := range l.s[:l.n] {
		if !strings.Contains(val, s) {
			t.Fatalf("signature %q is not part of the header", s)
		}
	}
}

func FuzzStripeHeader(f *testing.F) {
	f.Add(fmt.Sprintf("t=%d,v1=%s", stripeT, stripeV1), []byte(stripeBody))
	f.Add(fmt.Sprintf("t=%d,v1=%s,v1=%s,v0=%s", stripeT, stripeV1, stripeV1, stripeV1), []byte(stripeBody))
	f.Add("v1=,t=,,,=,", []byte{})
	f.Add("t=1,t=2", []byte("x"))
	f.Add(strings.Repeat(",v1=", 40)+"t=1700000000", []byte(stripeBody))
	v := must(f, Spec{Provider: "stripe", Secrets: secrets(stripeSecret)})
	now := time.Unix(stripeT, 0)
	f.Fuzz(func(t *testing.T, val string, body []byte) {
		p, err := parseStripe(val)
		checkList(t, &p.sigs, val)
		if err == nil && !strings.Contains(val, "t="+p.t) {
			t.Fatalf("t %q is not part of the header", p.t)
		}
		err = v.Verify(hdr("Stripe-Signature", val), body, now)
		if err != nil {
			if !knownReason(err) {
				t.Fatalf("Verify = %v, not a documented reason", err)
			}
			return
		}
		// Accepted: the header must hold t and a v1 the independent
		// signer agrees with.
		tv, ok := parseUnix(p.t)
		if !ok {
			t.Fatalf("accepted with t=%q", p.t)
		}
		want := "v1=" + stripeSign(stripeSecret, tv, string(body))
		if !strings.Contains(strings.ToLower(val), want) {
			t.Fatalf("accepted %q without %s", val, want)
		}
	})
}

func FuzzStandardHeader(f *testing.F) {
	f.Add(stdSig, stdID, strconv.Itoa(stdTS), []byte(stdBody))
	f.Add("v2,x v1a,y  "+stdSig, stdID, strconv.Itoa(stdTS), []byte(stdBody))
	f.Add("v1, v1,, ,", "", "", []byte{})
	f.Add(strings.Repeat("v1,a ", 40), "id", "0", []byte("{}"))
	v := must(f, Spec{Provider: "standard", Secrets: secrets(stdSecret)})
	now := time.Unix(stdTS, 0)
	f.Fuzz(func(t *testing.T, sig, id, ts string, body []byte) {
		l := parseStandard(sig)
		checkList(t, &l, sig)
		h := http.Header{}
		h["Webhook-Id"] = []string{id}
		h["Webhook-Timestamp"] = []string{ts}
		h["Webhook-Signature"] = []string{sig}
		err := v.Verify(h, body, now)
		if err != nil {
			if !knownReason(err) {
				t.Fatalf("Verify = %v, not a documented reason", err)
			}
			return
		}
		tv, ok := parseUnix(ts)
		if !ok {
			t.Fatalf("accepted timestamp %q", ts)
		}
		want := strings.TrimRight(stdSign(stdSecret, id, tv, string(body)), "=")
		if !strings.Contains(sig, want) {
			t.Fatalf("accepted %q without %s", sig, want)
		}
	})
}

// fuzzProvider describes, for one provider, how a fuzzed value is placed in
// a request, what an accepted request must contain, and a correctly signed
// request for any body.
type fuzzProvider struct {
	spec   Spec
	now    time.Time
	with   func(val string) http.Header // val as the signature header
	expect func(body string) string     // must appear (case-folded) in val if accepted
	signed func(body string) http.Header
}

func fuzzProviders() []fuzzProvider {
	const gl = "gitlab-token"
	ts := strconv.Itoa(stdTS)
	std := func(sig string) http.Header {
		return hdr("webhook-id", stdID, "webhook-timestamp", ts, "webhook-signature", sig)
	}
	svix := func(sig string) http.Header {
		return hdr("svix-id", stdID, "svix-timestamp", ts, "svix-signature", sig)
	}
	slackH := func(sig string) http.Header {
		return hdr("X-Slack-Signature", sig, "X-Slack-Request-Timestamp", strconv.Itoa(slackTS))
	}
	stdExpect := func(body string) string {
		return strings.TrimRight(stdSign(stdSecret, stdID, stdTS, body), "=")
	}
	return []fuzzProvider{
		{Spec{Provider: "github", Secrets: secrets(ghSecret)}, time.Time{},
			func(v string) http.Header { return hdr("X-Hub-Signature-256", v) },
			func(b string) string { return "sha256=" + hexMAC(ghSecret, b) },
			func(b string) http.Header { return hdr("X-Hub-Signature-256", "sha256="+hexMAC(ghSecret, b)) }},
		{Spec{Provider: "bitbucket", Secrets: secrets(ghSecret)}, time.Time{},
			func(v string) http.Header { return hdr("X-Hub-Signature", v) },
			func(b string) string { return "sha256=" + hexMAC(ghSecret, b) },
			func(b string) http.Header { return hdr("X-Hub-Signature", "sha256="+hexMAC(ghSecret, b)) }},
		{Spec{Provider: "gitlab", Secrets: secrets(gl)}, time.Time{},
			func(v string) http.Header { return hdr("X-Gitlab-Token", v) },
			func(string) string { return gl },
			func(string) http.Header { return hdr("X-Gitlab-Token", gl) }},
		{Spec{Provider: "gitlab", Secrets: secrets(gl, stdSecret)}, time.Unix(stdTS, 0),
			std, stdExpect,
			func(b string) http.Header { return std(stdSign(stdSecret, stdID, stdTS, b)) }},
		{Spec{Provider: "stripe", Secrets: secrets(stripeSecret)}, time.Unix(stripeT, 0),
			func(v string) http.Header { return hdr("Stripe-Signature", v) },
			func(b string) string { return "v1=" + stripeSign(stripeSecret, stripeT, b) },
			func(b string) http.Header {
				return hdr("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", stripeT, stripeSign(stripeSecret, stripeT, b)))
			}},
		{Spec{Provider: "slack", Secrets: secrets(slackSecret)}, time.Unix(slackTS, 0),
			slackH,
			func(b string) string { return slackSign(slackSecret, slackTS, b) },
			func(b string) http.Header { return slackH(slackSign(slackSecret, slackTS, b)) }},
		{Spec{Provider: "standard", Secrets: secrets(stdSecret)}, time.Unix(stdTS, 0),
			std, stdExpect,
			func(b string) http.Header { return std(stdSign(stdSecret, stdID, stdTS, b)) }},
		{Spec{Provider: "hmac", Header: "X-Sig", Algorithm: "sha512", Encoding: "base64", Prefix: "s=", Secrets: secrets("k")}, time.Time{},
			func(v string) http.Header { return hdr("X-Sig", v) },
			func(b string) string { return "s=" + strings.TrimRight(b64MAC512("k", b), "=") },
			func(b string) http.Header { return hdr("X-Sig", "s="+b64MAC512("k", b)) }},
		{Spec{Provider: "standard", Secrets: secrets(stdSecret)}, time.Unix(stdTS, 0),
			svix, stdExpect,
			func(b string) http.Header { return svix(stdSign(stdSecret, stdID, stdTS, b)) }},
	}
}

// FuzzVerify runs every provider over fuzzed signature values and bodies:
// no panic, only documented errors, an accepted value contains the
// independently computed signature, and a correctly signed request for the
// same body is always accepted.
func FuzzVerify(f *testing.F) {
	ps := fuzzProviders()
	for i := range ps {
		f.Add(uint8(i), "", []byte("{}"))
		f.Add(uint8(i), "sha256=00", []byte("x"))
	}
	f.Add(uint8(0), ghSig, []byte(ghBody))
	f.Add(uint8(1), ghSig, []byte(ghBody))
	f.Add(uint8(4), fmt.Sprintf("t=%d,v1=%s", stripeT, stripeV1), []byte(stripeBody))
	f.Add(uint8(5), slackSig, []byte(slackBody))
	f.Add(uint8(6), stdSig, []byte(stdBody))
	f.Add(uint8(3), stdSig, []byte(stdBody))
	f.Add(uint8(8), stdSig, []byte(stdBody)) // Svix's names
	f.Add(uint8(7), "s="+base64.RawStdEncoding.EncodeToString(make([]byte, 64)), []byte{})
	vs := make([]*Verifier, len(ps))
	for i, p := range ps {
		vs[i] = must(f, p.spec)
	}
	f.Fuzz(func(t *testing.T, which uint8, val string, body []byte) {
		i := int(which) % len(ps)
		p, v := ps[i], vs[i]
		err := v.Verify(p.with(val), body, p.now)
		if err != nil && !knownReason(err) {
			t.Fatalf("%s: Verify = %v, not a documented reason", p.spec.Provider, err)
		}
		if err == nil {
			want := p.expect(string(body))
			got := val
			switch p.spec.Provider {
			case "github", "bitbucket", "stripe", "slack": // hex, either case
				got, want = strings.ToLower(got), strings.ToLower(want)
			}
			if !strings.Contains(got, want) {
				t.Fatalf("%s: accepted %q, which lacks %q", p.spec.Provider, val, want)
			}
		}
		if err := v.Verify(p.signed(string(body)), body, p.now); err != nil {
			t.Fatalf("%s: correctly signed request rejected: %v", p.spec.Provider, err)
		}
	})
}
