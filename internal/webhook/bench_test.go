package webhook

import (
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

type benchCase struct {
	name string
	spec Spec
	h    http.Header
	body string
	now  time.Time
}

// benchCases are valid requests, one per provider, on a 1 KiB body (a
// typical small webhook) except for the published vectors' own bodies.
func benchCases() []benchCase {
	body := strings.Repeat(`{"k":"v"},`, 102)
	const gl = "gitlab-token-0123456789abcdef"
	return []benchCase{
		{"github", Spec{Provider: "github", Secrets: secrets(ghSecret)},
			hdr("X-Hub-Signature-256", "sha256="+hexMAC(ghSecret, body)), body, time.Time{}},
		{"bitbucket", Spec{Provider: "bitbucket", Secrets: secrets(ghSecret)},
			hdr("X-Hub-Signature", "sha256="+hexMAC(ghSecret, body)), body, time.Time{}},
		{"gitlab", Spec{Provider: "gitlab", Secrets: secrets(gl)},
			hdr("X-Gitlab-Token", gl), body, time.Time{}},
		{"gitlab-signing", Spec{Provider: "gitlab", Secrets: secrets(stdSecret)},
			hdr("webhook-id", stdID, "webhook-timestamp", strconv.Itoa(stdTS), "webhook-signature", stdSign(stdSecret, stdID, stdTS, body)),
			body, time.Unix(stdTS, 0)},
		{"stripe", Spec{Provider: "stripe", Secrets: secrets(stripeSecret)},
			hdr("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", stripeT, stripeSign(stripeSecret, stripeT, body))),
			body, time.Unix(stripeT, 0)},
		{"slack", Spec{Provider: "slack", Secrets: secrets(slackSecret)},
			hdr("X-Slack-Signature", slackSign(slackSecret, slackTS, body), "X-Slack-Request-Timestamp", strconv.Itoa(slackTS)),
			body, time.Unix(slackTS, 0)},
		{"standard", Spec{Provider: "standard", Secrets: secrets(stdSecret)},
			hdr("webhook-id", stdID, "webhook-timestamp", strconv.Itoa(stdTS), "webhook-signature", stdSign(stdSecret, stdID, stdTS, body)),
			body, time.Unix(stdTS, 0)},
		{"hmac-sha512-base64", Spec{Provider: "hmac", Header: "X-Sig", Algorithm: "sha512", Encoding: "base64", Secrets: secrets("k")},
			hdr("X-Sig", b64MAC512("k", body)), body, time.Time{}},
	}
}

// BenchmarkVerify measures one accepted request per provider; allocs/op
// should be 0 (TestVerifyDoesNotAllocate enforces it).
func BenchmarkVerify(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			v := must(b, bc.spec)
			body := []byte(bc.body)
			if err := v.Verify(bc.h, body, bc.now); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := v.Verify(bc.h, body, bc.now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReject measures the cheapest rejection (no header) and a
// mismatch, the two a flood of forged requests produces.
func BenchmarkReject(b *testing.B) {
	bc := benchCases()[0]
	v := must(b, bc.spec)
	body := []byte(bc.body)
	b.Run("missing", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = v.Verify(http.Header{}, body, bc.now)
		}
	})
	b.Run("mismatch", func(b *testing.B) {
		h := hdr("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
		b.ReportAllocs()
		for b.Loop() {
			_ = v.Verify(h, body, bc.now)
		}
	})
}

func b64MAC512(key, msg string) string {
	return base64.StdEncoding.EncodeToString(mac(sha512.New, []byte(key), msg))
}

// BenchmarkHMACSize is the GitHub check on a 1 KiB and a 64 KiB body: the
// cost of a signature grows with the body, which is why it runs last,
// after every cheaper guard.
func BenchmarkHMACSize(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			body := strings.Repeat("x", size)
			v := must(b, Spec{Provider: "github", Secrets: secrets(ghSecret)})
			h := hdr("X-Hub-Signature-256", "sha256="+hexMAC(ghSecret, body))
			raw := []byte(body)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := v.Verify(h, raw, time.Time{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
