package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Published or independently recomputed vectors: each constant says which.
const (
	// GitHub's documented example.
	ghSecret = "It's a Secret to Everybody"
	ghBody   = "Hello, World!"
	ghSig    = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

	// Computed with openssl (echo -n "$t.$body" | openssl dgst -sha256
	// -hmac $secret); not published by Stripe.
	stripeSecret = "whsec_test_secret"
	stripeT      = 1700000000
	stripeBody   = `{"id":"evt_test","object":"event"}`
	stripeV1     = "8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724"

	// Slack's documented slash-command example.
	slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	slackTS     = 1531420618
	slackBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slackSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

	// The Standard Webhooks specification's published example.
	stdSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	stdID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	stdTS     = 1614265330
	stdBody   = `{"test": 2432232314}`
	stdSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// The signers below are the "independent formula": each scheme written out
// directly with crypto/hmac and encoding/hex|base64, sharing no code with
// the package under test.

func mac(newHash func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(newHash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func hexMAC(key, msg string) string { return hex.EncodeToString(mac(sha256.New, []byte(key), msg)) }

func stripeSign(secret string, t int64, body string) string {
	return hexMAC(secret, strconv.FormatInt(t, 10)+"."+body)
}

func slackSign(secret string, ts int64, body string) string {
	return "v0=" + hexMAC(secret, "v0:"+strconv.FormatInt(ts, 10)+":"+body)
}

func stdSign(secret, id string, ts int64, body string) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(sha256.New, key, id+"."+strconv.FormatInt(ts, 10)+"."+body))
}

// hdr builds a header from name/value pairs; names are canonicalised as
// net/http does on the wire. A name given twice yields two values.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func secrets(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i := range s {
		out[i] = []byte(s[i])
	}
	return out
}

func must(t testing.TB, s Spec) *Verifier {
	t.Helper()
	v, err := New(s)
	if err != nil {
		t.Fatalf("New(%+v): %v", s.Provider, err)
	}
	return v
}

// flip changes one byte of s.
func flip(s string) string {
	b := []byte(s)
	b[len(b)/2] ^= 1
	return string(b)
}

// wantErr checks got against want (nil = valid) by sentinel.
func wantErr(t *testing.T, got, want error) {
	t.Helper()
	if want == nil {
		if got != nil {
			t.Fatalf("Verify = %v, want nil", got)
		}
		return
	}
	if !errors.Is(got, want) {
		t.Fatalf("Verify = %v, want %v", got, want)
	}
}

type verifyCase struct {
	name string
	spec Spec
	h    http.Header
	body string
	now  time.Time
	want error
}

func runCases(t *testing.T, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := must(t, tc.spec)
			wantErr(t, v.Verify(tc.h, []byte(tc.body), tc.now), tc.want)
		})
	}
}

func TestDocumentedVectors(t *testing.T) {
	// The test's own signers must reproduce the published values, or the
	// other tests prove nothing.
	if got := "sha256=" + hexMAC(ghSecret, ghBody); got != ghSig {
		t.Fatalf("github signer = %s", got)
	}
	if got := stripeSign(stripeSecret, stripeT, stripeBody); got != stripeV1 {
		t.Fatalf("stripe signer = %s", got)
	}
	if got := slackSign(slackSecret, slackTS, slackBody); got != slackSig {
		t.Fatalf("slack signer = %s", got)
	}
	if got := stdSign(stdSecret, stdID, stdTS, stdBody); got != stdSig {
		t.Fatalf("standard signer = %s", got)
	}
	runCases(t, []verifyCase{
		{"github", Spec{Provider: "github", Secrets: secrets(ghSecret)},
			hdr("X-Hub-Signature-256", ghSig), ghBody, time.Time{}, nil},
		{"bitbucket", Spec{Provider: "bitbucket", Secrets: secrets(ghSecret)},
			hdr("X-Hub-Signature", ghSig), ghBody, time.Time{}, nil},
		{"stripe", Spec{Provider: "stripe", Secrets: secrets(stripeSecret)},
			hdr("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", stripeT, stripeV1)), stripeBody, time.Unix(stripeT, 0), nil},
		{"slack", Spec{Provider: "slack", Secrets: secrets(slackSecret)},
			hdr("X-Slack-Signature", slackSig, "X-Slack-Request-Timestamp", strconv.Itoa(slackTS)), slackBody, time.Unix(slackTS, 0), nil},
		{"standard", Spec{Provider: "standard", Secrets: secrets(stdSecret)},
			hdr("webhook-id", stdID, "webhook-timestamp", strconv.Itoa(stdTS), "webhook-signature", stdSig), stdBody, time.Unix(stdTS, 0), nil},
		{"gitlab signing token", Spec{Provider: "gitlab", Secrets: secrets(stdSecret)},
			hdr("webhook-id", stdID, "webhook-timestamp", strconv.Itoa(stdTS), "webhook-signature", stdSig), stdBody, time.Unix(stdTS, 0), nil},
	})
}

func TestGitHub(t *testing.T) {
	gh := Spec{Provider: "github", Secrets: secrets(ghSecret)}
	hex := strings.TrimPrefix(ghSig, "sha256=")
	sig := func(v string) http.Header { return hdr("X-Hub-Signature-256", v) }
	runCases(t, []verifyCase{
		{"valid", gh, sig(ghSig), ghBody, time.Time{}, nil},
		{"upper-case hex", gh, sig("sha256=" + strings.ToUpper(hex)), ghBody, time.Time{}, nil},
		{"provider name case-insensitive", Spec{Provider: "GitHub", Secrets: secrets(ghSecret)}, sig(ghSig), ghBody, time.Time{}, nil},
		{"rotation: second secret matches", Spec{Provider: "github", Secrets: secrets("new-secret", ghSecret)}, sig(ghSig), ghBody, time.Time{}, nil},
		{"wrong secret", Spec{Provider: "github", Secrets: secrets("not it")}, sig(ghSig), ghBody, time.Time{}, ErrMismatch},
		{"body changed by one byte", gh, sig(ghSig), flip(ghBody), time.Time{}, ErrMismatch},
		{"body with trailing newline", gh, sig(ghSig), ghBody + "\n", time.Time{}, ErrMismatch},
		{"signature of another body", gh, sig("sha256=" + hexMAC(ghSecret, "Hello")), ghBody, time.Time{}, ErrMismatch},
		{"missing header", gh, hdr(), ghBody, time.Time{}, ErrMissing},
		{"empty header", gh, sig(""), ghBody, time.Time{}, ErrMissing},
		{"only legacy sha1 header: no downgrade", gh,
			hdr("X-Hub-Signature", "sha1="+hex2(mac(sha1.New, []byte(ghSecret), ghBody))), ghBody, time.Time{}, ErrMissing},
		{"sha1 value in the sha256 header", gh,
			sig("sha1=" + hex2(mac(sha1.New, []byte(ghSecret), ghBody))), ghBody, time.Time{}, ErrMalformed},
		{"no sha256= prefix", gh, sig(hex), ghBody, time.Time{}, ErrMalformed},
		{"upper-case prefix", gh, sig("SHA256=" + hex), ghBody, time.Time{}, ErrMalformed},
		{"odd length (63 hex)", gh, sig(ghSig[:len(ghSig)-1]), ghBody, time.Time{}, ErrMalformed},
		{"truncated (62 hex)", gh, sig(ghSig[:len(ghSig)-2]), ghBody, time.Time{}, ErrMalformed},
		{"extra bytes", gh, sig(ghSig + "00"), ghBody, time.Time{}, ErrMalformed},
		{"non-hex", gh, sig("sha256=" + strings.Repeat("zz", 32)), ghBody, time.Time{}, ErrMalformed},
		{"two headers", gh, hdr("X-Hub-Signature-256", ghSig, "X-Hub-Signature-256", ghSig), ghBody, time.Time{}, ErrMalformed},
	})
}

func hex2(b []byte) string { return hex.EncodeToString(b) }

func TestBitbucket(t *testing.T) {
	bb := Spec{Provider: "bitbucket", Secrets: secrets(ghSecret)}
	runCases(t, []verifyCase{
		{"valid", bb, hdr("X-Hub-Signature", ghSig), ghBody, time.Time{}, nil},
		{"rotation", Spec{Provider: "bitbucket", Secrets: secrets("old", ghSecret)}, hdr("X-Hub-Signature", ghSig), ghBody, time.Time{}, nil},
		{"wrong secret", Spec{Provider: "bitbucket", Secrets: secrets("x")}, hdr("X-Hub-Signature", ghSig), ghBody, time.Time{}, ErrMismatch},
		{"body changed", bb, hdr("X-Hub-Signature", ghSig), flip(ghBody), time.Time{}, ErrMismatch},
		{"github's header name is not read", bb, hdr("X-Hub-Signature-256", ghSig), ghBody, time.Time{}, ErrMissing},
		{"sha1 prefix", bb, hdr("X-Hub-Signature", "sha1="+hex2(mac(sha1.New, []byte(ghSecret), ghBody))), ghBody, time.Time{}, ErrMalformed},
		{"non-hex", bb, hdr("X-Hub-Signature", "sha256="+strings.Repeat("g", 64)), ghBody, time.Time{}, ErrMalformed},
	})
}

func TestGitLab(t *testing.T) {
	const token = "gl-token-0123456789"
	gl := Spec{Provider: "gitlab", Secrets: secrets(token)}
	tok := func(v string) http.Header { return hdr("X-Gitlab-Token", v) }
	std := func(sig string) http.Header {
		return hdr("webhook-id", stdID, "webhook-timestamp", strconv.Itoa(stdTS), "webhook-signature", sig)
	}
	both := Spec{Provider: "gitlab", Secrets: secrets(token, stdSecret)}
	signed := std(stdSig)
	signed.Set("X-Gitlab-Token", token)
	forged := std("v1," + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	forged.Set("X-Gitlab-Token", token)
	at := time.Unix(stdTS, 0)
	runCases(t, []verifyCase{
		{"valid token", gl, tok(token), "{}", time.Time{}, nil},
		{"rotation", Spec{Provider: "gitlab", Secrets: secrets("older", token)}, tok(token), "{}", time.Time{}, nil},
		{"wrong token", gl, tok("gl-token-0123456788"), "{}", time.Time{}, ErrMismatch},
		{"prefix of the token", gl, tok(token[:5]), "{}", time.Time{}, ErrMismatch},
		{"token plus suffix", gl, tok(token + "x"), "{}", time.Time{}, ErrMismatch},
		{"empty token", gl, tok(""), "{}", time.Time{}, ErrMissing},
		{"missing token", gl, hdr(), "{}", time.Time{}, ErrMissing},
		{"two tokens", gl, hdr("X-Gitlab-Token", token, "X-Gitlab-Token", token), "{}", time.Time{}, ErrMalformed},
		{"token only: webhook-signature is ignored", gl, signed, stdBody, at, nil},
		{"signing token: valid", Spec{Provider: "gitlab", Secrets: secrets(stdSecret)}, std(stdSig), stdBody, at, nil},
		{"signing token: body changed", Spec{Provider: "gitlab", Secrets: secrets(stdSecret)}, std(stdSig), flip(stdBody), at, ErrMismatch},
		{"signing token: stale", Spec{Provider: "gitlab", Secrets: secrets(stdSecret)}, std(stdSig), stdBody, at.Add(301 * time.Second), ErrStale},
		{"signing token only, unsigned request", Spec{Provider: "gitlab", Secrets: secrets(stdSecret)}, tok(stdSecret), stdBody, at, ErrMissing},
		{"both configured, signed request", both, signed, stdBody, at, nil},
		{"both configured, token-only request", both, tok(token), stdBody, at, nil},
		{"both configured, bad signature not rescued by good token", both, forged, stdBody, at, ErrMismatch},
	})
}

func TestStripe(t *testing.T) {
	st := Spec{Provider: "stripe", Secrets: secrets(stripeSecret)}
	at := time.Unix(stripeT, 0)
	sig := func(v string) http.Header { return hdr("Stripe-Signature", v) }
	valid := fmt.Sprintf("t=%d,v1=%s", stripeT, stripeV1)
	other := stripeSign("whsec_other", stripeT, stripeBody)
	many := fmt.Sprintf("t=%d", stripeT) + strings.Repeat(",v1="+other, maxSigs) + ",v1=" + stripeV1
	runCases(t, []verifyCase{
		{"valid", st, sig(valid), stripeBody, at, nil},
		{"fields in any order, v0 and unknown keys ignored", st,
			sig("v0=" + other + ",v1=" + stripeV1 + ",foo=bar,t=" + strconv.Itoa(stripeT)), stripeBody, at, nil},
		{"rotation: second v1 matches", st, sig(fmt.Sprintf("t=%d,v1=%s,v1=%s", stripeT, other, stripeV1)), stripeBody, at, nil},
		{"rotation: second secret matches", Spec{Provider: "stripe", Secrets: secrets("whsec_new", stripeSecret)}, sig(valid), stripeBody, at, nil},
		{"one malformed v1 beside a valid one", st, sig(fmt.Sprintf("t=%d,v1=zz,v1=%s", stripeT, stripeV1)), stripeBody, at, nil},
		{"300s old: inside", st, sig(valid), stripeBody, at.Add(300 * time.Second), nil},
		{"300s ahead: inside", st, sig(valid), stripeBody, at.Add(-300 * time.Second), nil},
		{"301s old: stale", st, sig(valid), stripeBody, at.Add(301 * time.Second), ErrStale},
		{"301s in the future: stale", st, sig(valid), stripeBody, at.Add(-301 * time.Second), ErrStale},
		{"custom tolerance", Spec{Provider: "stripe", Secrets: secrets(stripeSecret), Tolerance: time.Hour}, sig(valid), stripeBody, at.Add(3000 * time.Second), nil},
		{"wrong secret", Spec{Provider: "stripe", Secrets: secrets("whsec_wrong")}, sig(valid), stripeBody, at, ErrMismatch},
		{"body changed", st, sig(valid), flip(stripeBody), at, ErrMismatch},
		{"t changed (signature bound to t)", st, sig(fmt.Sprintf("t=%d,v1=%s", stripeT+1, stripeV1)), stripeBody, at, ErrMismatch},
		{"forgery with a stale t is a mismatch, not stale", st, sig(fmt.Sprintf("t=%d,v1=%s", stripeT-9999, stripeV1)), stripeBody, at, ErrMismatch},
		{"valid v1 beyond the cap of 16 is not considered", st, sig(many), stripeBody, at, ErrMismatch},
		{"missing header", st, hdr(), stripeBody, at, ErrMissing},
		{"t missing", st, sig("v1=" + stripeV1), stripeBody, at, ErrMalformed},
		{"t non-numeric", st, sig("t=abc,v1=" + stripeV1), stripeBody, at, ErrMalformed},
		{"t negative", st, sig("t=-1700000000,v1=" + stripeV1), stripeBody, at, ErrMalformed},
		{"t empty", st, sig("t=,v1=" + stripeV1), stripeBody, at, ErrMalformed},
		{"t overflowing", st, sig("t=99999999999999999999999,v1=" + stripeV1), stripeBody, at, ErrMalformed},
		{"t twice", st, sig(valid + ",t=1"), stripeBody, at, ErrMalformed},
		{"only v0 (even if it would match)", st,
			sig(fmt.Sprintf("t=%d,v0=%s", stripeT, stripeV1)), stripeBody, at, ErrMalformed},
		{"v1 empty", st, sig(fmt.Sprintf("t=%d,v1=", stripeT)), stripeBody, at, ErrMalformed},
		{"v1 truncated", st, sig(fmt.Sprintf("t=%d,v1=%s", stripeT, stripeV1[:63])), stripeBody, at, ErrMalformed},
		{"field without =", st, sig(valid + ",garbage"), stripeBody, at, ErrMalformed},
		{"two headers", st, hdr("Stripe-Signature", valid, "Stripe-Signature", valid), stripeBody, at, ErrMalformed},
	})
}

func TestSlack(t *testing.T) {
	sl := Spec{Provider: "slack", Secrets: secrets(slackSecret)}
	at := time.Unix(slackTS, 0)
	ts := strconv.Itoa(slackTS)
	h := func(sig, ts string) http.Header {
		return hdr("X-Slack-Signature", sig, "X-Slack-Request-Timestamp", ts)
	}
	pipe := "v0=" + hexMAC(slackSecret, "v0|"+ts+"|"+slackBody)
	runCases(t, []verifyCase{
		{"valid", sl, h(slackSig, ts), slackBody, at, nil},
		{"rotation", Spec{Provider: "slack", Secrets: secrets("other", slackSecret)}, h(slackSig, ts), slackBody, at, nil},
		{"wrong secret", Spec{Provider: "slack", Secrets: secrets("other")}, h(slackSig, ts), slackBody, at, ErrMismatch},
		{"body changed", sl, h(slackSig, ts), flip(slackBody), at, ErrMismatch},
		{"timestamp changed", sl, h(slackSig, strconv.Itoa(slackTS+1)), slackBody, at, ErrMismatch},
		{"basestring with wrong separator", sl, h(pipe, ts), slackBody, at, ErrMismatch},
		{"5 min old: inside", sl, h(slackSig, ts), slackBody, at.Add(5 * time.Minute), nil},
		{"old by 5 min 1 s", sl, h(slackSig, ts), slackBody, at.Add(301 * time.Second), ErrStale},
		{"future by 5 min 1 s", sl, h(slackSig, ts), slackBody, at.Add(-301 * time.Second), ErrStale},
		{"missing signature", sl, hdr("X-Slack-Request-Timestamp", ts), slackBody, at, ErrMissing},
		{"missing timestamp", sl, hdr("X-Slack-Signature", slackSig), slackBody, at, ErrMissing},
		{"v0= missing", sl, h(strings.TrimPrefix(slackSig, "v0="), ts), slackBody, at, ErrMalformed},
		{"timestamp non-numeric", sl, h(slackSig, "1531420618.5"), slackBody, at, ErrMalformed},
		{"non-hex", sl, h("v0="+strings.Repeat("x", 64), ts), slackBody, at, ErrMalformed},
	})
}

func TestStandard(t *testing.T) {
	sw := Spec{Provider: "standard", Secrets: secrets(stdSecret)}
	at := time.Unix(stdTS, 0)
	ts := strconv.Itoa(stdTS)
	h := func(id, ts, sig string) http.Header {
		return hdr("webhook-id", id, "webhook-timestamp", ts, "webhook-signature", sig)
	}
	other := stdSign("whsec_"+base64.StdEncoding.EncodeToString([]byte("another key")), stdID, stdTS, stdBody)
	b64 := strings.TrimPrefix(stdSig, "v1,")
	runCases(t, []verifyCase{
		{"valid", sw, h(stdID, ts, stdSig), stdBody, at, nil},
		{"secret without whsec_ prefix is base64 too", Spec{Provider: "standard", Secrets: secrets(strings.TrimPrefix(stdSecret, "whsec_"))},
			h(stdID, ts, stdSig), stdBody, at, nil},
		{"several signatures, second matches", sw, h(stdID, ts, other+" "+stdSig), stdBody, at, nil},
		{"unknown versions skipped", sw, h(stdID, ts, "v2,abc v1a,xyz "+stdSig), stdBody, at, nil},
		{"extra spaces", sw, h(stdID, ts, "  "+stdSig+"  "), stdBody, at, nil},
		{"unpadded base64", sw, h(stdID, ts, strings.TrimRight(stdSig, "=")), stdBody, at, nil},
		{"rotation: second secret", Spec{Provider: "standard", Secrets: secrets("whsec_"+base64.StdEncoding.EncodeToString([]byte("k")), stdSecret)},
			h(stdID, ts, stdSig), stdBody, at, nil},
		{"only v2", sw, h(stdID, ts, "v2,"+b64), stdBody, at, ErrMalformed},
		{"wrong secret", Spec{Provider: "standard", Secrets: secrets("whsec_" + base64.StdEncoding.EncodeToString([]byte("k")))},
			h(stdID, ts, stdSig), stdBody, at, ErrMismatch},
		{"body changed", sw, h(stdID, ts, stdSig), flip(stdBody), at, ErrMismatch},
		{"id changed", sw, h(flip(stdID), ts, stdSig), stdBody, at, ErrMismatch},
		{"stale", sw, h(stdID, ts, stdSig), stdBody, at.Add(301 * time.Second), ErrStale},
		{"future", sw, h(stdID, ts, stdSig), stdBody, at.Add(-301 * time.Second), ErrStale},
		{"missing id", sw, hdr("webhook-timestamp", ts, "webhook-signature", stdSig), stdBody, at, ErrMissing},
		{"missing timestamp", sw, hdr("webhook-id", stdID, "webhook-signature", stdSig), stdBody, at, ErrMissing},
		{"missing signature", sw, hdr("webhook-id", stdID, "webhook-timestamp", ts), stdBody, at, ErrMissing},
		{"timestamp in milliseconds is not rescued", sw, h(stdID, ts+"000", stdSig), stdBody, at, ErrMismatch},
		{"timestamp non-numeric", sw, h(stdID, "now", stdSig), stdBody, at, ErrMalformed},
		{"no comma", sw, h(stdID, ts, "v1"+b64), stdBody, at, ErrMalformed},
		{"non-canonical base64 (last char's spare bits set)", sw,
			h(stdID, ts, "v1,"+b64[:len(b64)-2]+"F="), stdBody, at, ErrMalformed},
		{"44 base64 chars without padding (33 bytes; once a panic)", sw, h(stdID, ts, "v1,"+strings.Repeat("0", 44)), stdBody, at, ErrMalformed},
		{"hex instead of base64", sw, h(stdID, ts, "v1,"+hex2(make([]byte, 32))), stdBody, at, ErrMalformed},
	})
}

func TestHMAC(t *testing.T) {
	const secret = "generic-secret"
	body := `{"a":1}`
	sha512b64 := base64.StdEncoding.EncodeToString(mac(sha512.New, []byte(secret), body))
	cases := []verifyCase{
		{"default sha256 hex", Spec{Provider: "hmac", Header: "X-Signature", Secrets: secrets(secret)},
			hdr("X-Signature", hexMAC(secret, body)), body, time.Time{}, nil},
		{"header name case-insensitive", Spec{Provider: "hmac", Header: "x-signature", Secrets: secrets(secret)},
			hdr("X-SIGNATURE", hexMAC(secret, body)), body, time.Time{}, nil},
		{"sha1 with prefix", Spec{Provider: "hmac", Header: "X-Hub-Signature", Algorithm: "sha1", Prefix: "sha1=", Secrets: secrets(secret)},
			hdr("X-Hub-Signature", "sha1="+hex2(mac(sha1.New, []byte(secret), body))), body, time.Time{}, nil},
		{"sha512 base64", Spec{Provider: "hmac", Header: "X-Sig", Algorithm: "SHA512", Encoding: "base64", Secrets: secrets(secret)},
			hdr("X-Sig", sha512b64), body, time.Time{}, nil},
		{"sha512 base64 unpadded", Spec{Provider: "hmac", Header: "X-Sig", Algorithm: "sha512", Encoding: "base64", Secrets: secrets(secret)},
			hdr("X-Sig", strings.TrimRight(sha512b64, "=")), body, time.Time{}, nil},
		{"rotation", Spec{Provider: "hmac", Header: "X-Signature", Secrets: secrets("a", secret)},
			hdr("X-Signature", hexMAC(secret, body)), body, time.Time{}, nil},
		{"wrong secret", Spec{Provider: "hmac", Header: "X-Signature", Secrets: secrets("other")},
			hdr("X-Signature", hexMAC(secret, body)), body, time.Time{}, ErrMismatch},
		{"body changed", Spec{Provider: "hmac", Header: "X-Signature", Secrets: secrets(secret)},
			hdr("X-Signature", hexMAC(secret, body)), flip(body), time.Time{}, ErrMismatch},
		{"sha256 digest where sha512 is configured", Spec{Provider: "hmac", Header: "X-Sig", Algorithm: "sha512", Secrets: secrets(secret)},
			hdr("X-Sig", hexMAC(secret, body)), body, time.Time{}, ErrMalformed},
		{"88 base64 chars without padding for sha512", Spec{Provider: "hmac", Header: "X-Sig", Algorithm: "sha512", Encoding: "base64", Secrets: secrets(secret)},
			hdr("X-Sig", strings.Repeat("A", 88)), body, time.Time{}, ErrMalformed},
		{"missing prefix", Spec{Provider: "hmac", Header: "X-Sig", Prefix: "sha256=", Secrets: secrets(secret)},
			hdr("X-Sig", hexMAC(secret, body)), body, time.Time{}, ErrMalformed},
		{"missing header", Spec{Provider: "hmac", Header: "X-Sig", Secrets: secrets(secret)},
			hdr("X-Other", hexMAC(secret, body)), body, time.Time{}, ErrMissing},
	}
	runCases(t, cases)
}

func TestNew(t *testing.T) {
	ok := secrets("s3cr3t-value")
	cases := []struct {
		name string
		spec Spec
		want string // substring of the error; "" = success
	}{
		{"github", Spec{Provider: "github", Secrets: ok}, ""},
		{"no provider", Spec{Secrets: ok}, "provider is required"},
		{"unknown provider", Spec{Provider: "gitea", Secrets: ok}, `unknown provider "gitea"`},
		{"no secrets", Spec{Provider: "github"}, "no secret"},
		{"empty secret", Spec{Provider: "stripe", Secrets: [][]byte{[]byte("a"), {}}}, "secret 2 is empty"},
		{"hmac without header", Spec{Provider: "hmac", Secrets: ok}, "header is required"},
		{"hmac bad header name", Spec{Provider: "hmac", Header: "X Sig", Secrets: ok}, "not a valid header name"},
		{"hmac bad algorithm", Spec{Provider: "hmac", Header: "X", Algorithm: "md5", Secrets: ok}, `unknown algorithm "md5"`},
		{"hmac bad encoding", Spec{Provider: "hmac", Header: "X", Encoding: "base32", Secrets: ok}, `unknown encoding "base32"`},
		{"hmac options on github", Spec{Provider: "github", Header: "X", Secrets: ok}, "apply to provider hmac only"},
		{"negative tolerance", Spec{Provider: "stripe", Tolerance: -time.Second, Secrets: ok}, "must not be negative"},
		{"tolerance on github", Spec{Provider: "github", Tolerance: time.Second, Secrets: ok}, "no timestamp"},
		{"standard secret not base64", Spec{Provider: "standard", Secrets: secrets("whsec_s3cr3t-value!")}, "not base64"},
		{"standard secret empty after prefix", Spec{Provider: "standard", Secrets: secrets("whsec_")}, "empty after whsec_"},
		{"gitlab signing token not base64", Spec{Provider: "gitlab", Secrets: secrets("whsec_s3cr3t-value!")}, "not base64"},
		{"gitlab plain token need not be base64", Spec{Provider: "gitlab", Secrets: secrets("s3cr3t-value!")}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.spec)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New = %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want error containing %q", err, tc.want)
			}
			for _, s := range tc.spec.Secrets {
				if s := strings.TrimPrefix(string(s), "whsec_"); s != "" && strings.Contains(err.Error(), s) {
					t.Fatalf("error %q leaks the secret", err)
				}
			}
		})
	}
}

// TestErrorsHideSecrets: whatever fails, the message shows neither the
// secret, nor the expected signature, nor the one received.
func TestErrorsHideSecrets(t *testing.T) {
	const secret = "hunter2-very-secret"
	body := "payload"
	expected := hexMAC(secret, body)
	near := flip(expected)
	headers := []http.Header{
		hdr(), hdr("X-Hub-Signature-256", "sha256="+near), hdr("X-Hub-Signature-256", near),
		hdr("X-Hub-Signature-256", "sha256="+near[:10]),
	}
	v := must(t, Spec{Provider: "github", Secrets: secrets(secret)})
	for _, h := range headers {
		err := v.Verify(h, []byte(body), time.Time{})
		if err == nil {
			t.Fatalf("Verify(%v) = nil", h)
		}
		msg := err.Error()
		for _, leak := range []string{secret, expected, near, near[:10]} {
			if strings.Contains(msg, leak) {
				t.Fatalf("error %q leaks %q", msg, leak)
			}
		}
	}
}

func TestParseStripeCapsSignatures(t *testing.T) {
	val := "t=1" + strings.Repeat(",v1=ab", 1000)
	p, err := parseStripe(val)
	if err != nil || p.t != "1" || p.sigs.n != maxSigs {
		t.Fatalf("parseStripe = %q, %d sigs, %v; want t=1, %d sigs", p.t, p.sigs.n, err, maxSigs)
	}
}

// TestHugeHeaders: a megabyte of separators is parsed in one pass, without
// allocating, and rejected as malformed.
func TestHugeHeaders(t *testing.T) {
	mb := 1 << 20
	cases := []struct {
		name string
		spec Spec
		h    http.Header
	}{
		{"stripe commas", Spec{Provider: "stripe", Secrets: secrets("s")},
			hdr("Stripe-Signature", "t=1"+strings.Repeat(",", mb))},
		{"stripe empty v1s", Spec{Provider: "stripe", Secrets: secrets("s")},
			hdr("Stripe-Signature", "t=1"+strings.Repeat(",v1=", mb/4))},
		{"standard spaces", Spec{Provider: "standard", Secrets: secrets(stdSecret)},
			hdr("webhook-id", "x", "webhook-timestamp", "1", "webhook-signature", strings.Repeat(" ", mb))},
		{"standard bare commas", Spec{Provider: "standard", Secrets: secrets(stdSecret)},
			hdr("webhook-id", "x", "webhook-timestamp", "1", "webhook-signature", strings.Repeat(",", mb))},
		{"github", Spec{Provider: "github", Secrets: secrets("s")},
			hdr("X-Hub-Signature-256", "sha256="+strings.Repeat("a", mb))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := must(t, tc.spec)
			var err error
			allocs := testing.AllocsPerRun(3, func() { err = v.Verify(tc.h, nil, time.Unix(1, 0)) })
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Verify = %v, want ErrMalformed", err)
			}
			if allocs != 0 && !raceEnabled {
				t.Fatalf("%v allocs per Verify, want 0", allocs)
			}
		})
	}
}

// TestVerifyDoesNotAllocate guards the per-request cost
// (docs/design.md#performance-budgets) on the
// accepting path and on the common rejections.
func TestVerifyDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	for _, bc := range benchCases() {
		t.Run(bc.name, func(t *testing.T) {
			v := must(t, bc.spec)
			body := []byte(bc.body)
			if err := v.Verify(bc.h, body, bc.now); err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if n := testing.AllocsPerRun(100, func() { _ = v.Verify(bc.h, body, bc.now) }); n != 0 {
				t.Errorf("valid: %v allocs, want 0", n)
			}
			if n := testing.AllocsPerRun(100, func() { _ = v.Verify(bc.h, body[1:], bc.now) }); n != 0 {
				t.Errorf("mismatch: %v allocs, want 0", n)
			}
			if n := testing.AllocsPerRun(100, func() { _ = v.Verify(http.Header{}, body, bc.now) }); n != 0 {
				t.Errorf("missing: %v allocs, want 0", n)
			}
		})
	}
}

// TestConcurrentVerify shares one Verifier between goroutines (run with
// -race): pooled HMAC states must never be used by two requests at once.
func TestConcurrentVerify(t *testing.T) {
	v := must(t, Spec{Provider: "stripe", Secrets: secrets("whsec_a", stripeSecret)})
	at := time.Unix(stripeT, 0)
	good := hdr("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", stripeT, stripeV1))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				body := stripeBody
				want := error(nil)
				if (g+i)%2 == 1 {
					body, want = flip(body), ErrMismatch
				}
				if err := v.Verify(good, []byte(body), at); !errors.Is(err, want) && !(want == nil && err == nil) {
					errs <- fmt.Errorf("goroutine %d request %d: %v, want %v", g, i, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestEventID(t *testing.T) {
	cases := []struct {
		name, provider string
		h              http.Header
		body, want     string
	}{
		{"github", "github", hdr("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"), "{}", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{"gitlab idempotency key first", "gitlab", hdr("Idempotency-Key", "k1", "X-Gitlab-Event-UUID", "u1"), "{}", "k1"},
		{"gitlab event uuid fallback", "gitlab", hdr("X-Gitlab-Event-UUID", "u1"), "{}", "u1"},
		{"bitbucket cloud", "bitbucket", hdr("X-Request-UUID", "b1", "X-Request-Id", "b2"), "{}", "b1"},
		{"bitbucket data center", "bitbucket", hdr("X-Request-Id", "b2"), "{}", "b2"},
		{"standard", "standard", hdr("webhook-id", stdID), stdBody, stdID},
		{"stripe body id", "stripe", hdr(), stripeBody, "evt_test"},
		{"stripe ignores headers", "stripe", hdr("Idempotency-Key", "x"), `{"object":"event"}`, ""},
		{"stripe non-json", "stripe", hdr(), "not json", ""},
		{"slack event_id", "slack", hdr(), `{"type":"event_callback","event_id":"Ev123"}`, "Ev123"},
		{"slack form body", "slack", hdr(), slackBody, ""},
		{"hmac has none", "hmac", hdr("X-GitHub-Delivery", "d"), "{}", ""},
		{"over-long id dropped", "github", hdr("X-GitHub-Delivery", strings.Repeat("a", maxEventID+1)), "{}", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := EventID(tc.provider, tc.h, []byte(tc.body)); got != tc.want {
				t.Fatalf("EventID = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSvix: Svix's published vector (the same as the Standard Webhooks
// one) under Svix's own header names, which Svix sends on every plan but
// white-label ones.
func TestSvix(t *testing.T) {
	sw := Spec{Provider: "standard", Secrets: secrets(stdSecret)}
	at := time.Unix(stdTS, 0)
	ts := strconv.Itoa(stdTS)
	svix := func(id, ts, sig string) http.Header {
		return hdr("svix-id", id, "svix-timestamp", ts, "svix-signature", sig)
	}
	mixed := svix(stdID, ts, stdSig)
	mixed.Set("webhook-id", "msg_other")
	mixed.Set("webhook-timestamp", ts)
	mixed.Set("webhook-signature", stdSig)
	gitlab := svix(stdID, ts, stdSig)
	gitlab.Set("X-Gitlab-Token", "plain")
	runCases(t, []verifyCase{
		{"published vector with svix-* headers", sw, svix(stdID, ts, stdSig), stdBody, at, nil},
		{"body changed by one byte", sw, svix(stdID, ts, stdSig), flip(stdBody), at, ErrMismatch},
		{"svix-id changed", sw, svix(flip(stdID), ts, stdSig), stdBody, at, ErrMismatch},
		{"stale", sw, svix(stdID, ts, stdSig), stdBody, at.Add(301 * time.Second), ErrStale},
		{"sender's clock 5 s ahead", sw, svix(stdID, ts, stdSig), stdBody, at.Add(-5 * time.Second), nil},
		{"missing svix-id", sw, hdr("svix-timestamp", ts, "svix-signature", stdSig), stdBody, at, ErrMissing},
		{"missing svix-timestamp", sw, hdr("svix-id", stdID, "svix-signature", stdSig), stdBody, at, ErrMissing},
		{"svix-signature twice", sw, hdr("svix-id", stdID, "svix-timestamp", ts, "svix-signature", stdSig, "svix-signature", stdSig), stdBody, at, ErrMalformed},
		{"webhook-signature present: webhook-* decide, never a mix", sw, mixed, stdBody, at, ErrMismatch},
		{"gitlab reads only webhook-*", Spec{Provider: "gitlab", Secrets: secrets(stdSecret)}, gitlab, stdBody, at, ErrMissing},
	})
	if got := EventID("standard", svix(stdID, ts, stdSig), []byte(stdBody)); got != stdID {
		t.Errorf("EventID(svix-*) = %q, want %q", got, stdID)
	}
	if got := EventID("standard", mixed, []byte(stdBody)); got != "msg_other" {
		t.Errorf("EventID(both spellings) = %q, want webhook-id's", got)
	}
}

// TestClockSkew: a sender whose clock runs a few seconds ahead (or
// behind) is accepted by every timestamped scheme, up to the tolerance
// and no further, in both directions.
func TestClockSkew(t *testing.T) {
	stripeH := hdr("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", stripeT, stripeV1))
	slackH := hdr("X-Slack-Signature", slackSig, "X-Slack-Request-Timestamp", strconv.Itoa(slackTS))
	stdH := hdr("webhook-id", stdID, "webhook-timestamp", strconv.Itoa(stdTS), "webhook-signature", stdSig)
	schemes := []struct {
		name string
		spec Spec
		h    http.Header
		body string
		ts   int64
	}{
		{"stripe", Spec{Provider: "stripe", Secrets: secrets(stripeSecret)}, stripeH, stripeBody, stripeT},
		{"slack", Spec{Provider: "slack", Secrets: secrets(slackSecret)}, slackH, slackBody, slackTS},
		{"standard", Spec{Provider: "standard", Secrets: secrets(stdSecret)}, stdH, stdBody, stdTS},
		{"gitlab signing token", Spec{Provider: "gitlab", Secrets: secrets(stdSecret)}, stdH, stdBody, stdTS},
	}
	skews := []struct {
		skew time.Duration // sender's clock minus ours
		want error
	}{
		{3 * time.Second, nil},
		{-3 * time.Second, nil},
		{300 * time.Second, nil},
		{-300 * time.Second, nil},
		{300*time.Second + time.Millisecond, ErrStale},
		{-300*time.Second - time.Millisecond, ErrStale},
	}
	for _, sc := range schemes {
		v := must(t, sc.spec)
		for _, sk := range skews {
			t.Run(fmt.Sprintf("%s/%v", sc.name, sk.skew), func(t *testing.T) {
				now := time.Unix(sc.ts, 0).Add(-sk.skew)
				wantErr(t, v.Verify(sc.h, []byte(sc.body), now), sk.want)
			})
		}
	}
}
