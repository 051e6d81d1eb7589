package webhook

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSignStandardVector signs the Standard Webhooks specification's
// published example and gets its published signature.
func TestSignStandardVector(t *testing.T) {
	s, err := NewSigner(SignSpec{Scheme: "standard", Secret: []byte(stdSecret)})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Hub-Signature-256": {"sha256=provider"}}
	s.Sign(h, stdID, []byte(stdBody), time.Unix(stdTS, 0))
	if got := h.Get("Webhook-Signature"); got != stdSig {
		t.Fatalf("webhook-signature %q, want %q", got, stdSig)
	}
	if h.Get("Webhook-Id") != stdID || h.Get("Webhook-Timestamp") != "1614265330" {
		t.Fatalf("id/timestamp: %v", h)
	}
	if h.Get("X-Hub-Signature-256") != "sha256=provider" {
		t.Fatal("the provider's header was not kept")
	}
}

// TestSignVerifies: what a Signer signs, a Verifier with the same
// settings accepts, for both schemes; a wrong secret does not verify.
func TestSignVerifies(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/main"}`)
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		sign SignSpec
		spec Spec
	}{
		{SignSpec{Scheme: "standard", Secret: []byte(stdSecret)}, Spec{Provider: "standard", Secrets: secrets(stdSecret)}},
		{SignSpec{Scheme: "hmac", Secret: []byte("s3cret"), Header: "X-Signature", Algorithm: "sha512", Encoding: "base64", Prefix: "sha512="},
			Spec{Provider: "hmac", Secrets: secrets("s3cret"), Header: "X-Signature", Algorithm: "sha512", Encoding: "base64", Prefix: "sha512="}},
		{SignSpec{Scheme: "hmac", Secret: []byte("s3cret"), Header: "X-Sig"}, Spec{Provider: "hmac", Secrets: secrets("s3cret"), Header: "x-sig"}},
	} {
		s, err := NewSigner(tc.sign)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		s.Sign(h, "01JD8Q1ZP4M6W3C0V7X5N2K9TB", body, now)
		v, err := New(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(h, body, now); err != nil {
			t.Errorf("%s: %v (%v)", tc.sign.Scheme, err, h)
		}
		tc.spec.Secrets = secrets("whsec_" + "b3RoZXI=")
		if w, _ := New(tc.spec); w.Verify(h, body, now) == nil {
			t.Errorf("%s: verified with another secret", tc.sign.Scheme)
		}
	}
}

func TestSignerErrors(t *testing.T) {
	for _, tc := range []struct {
		s    SignSpec
		want string
	}{
		{SignSpec{Scheme: "rsa", Secret: []byte("x")}, "unknown scheme"},
		{SignSpec{Scheme: "hmac", Secret: []byte("x")}, "header is required"},
		{SignSpec{Scheme: "standard", Secret: []byte("whsec_!!")}, "not base64"},
		{SignSpec{Scheme: "standard"}, "empty"},
	} {
		_, err := NewSigner(tc.s)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "webhook: sign: ") {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
}
