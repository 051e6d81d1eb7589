package webhook

import "strings"

// sigList holds up to maxSigs candidate signatures (still encoded) taken
// from one header, in order. A fixed array keeps parsing allocation-free.
type sigList struct {
	n int
	s [maxSigs]string
}

func (l *sigList) add(sig string) {
	if l.n < maxSigs {
		l.s[l.n] = sig
		l.n++
	}
}

// stripeHeader is a parsed Stripe-Signature value.
type stripeHeader struct {
	t    string  // the t= value, unparsed ("" if absent)
	sigs sigList // the v1= values; v0 and unknown keys are ignored
}

// parseStripe splits "t=<unix>,v1=<hex>,v1=…,v0=…" in one left-to-right
// pass (linear in the header length, whatever it contains). Empty fields
// are skipped; a field without "=" or a second t= is malformed; v1 values
// beyond maxSigs are ignored; v0 (Stripe's legacy test-mode scheme) and
// unknown keys are ignored so that additions by Stripe do not break us.
func parseStripe(val string) (stripeHeader, error) {
	var p stripeHeader
	haveT := false
	for val != "" {
		var field string
		field, val, _ = strings.Cut(val, ",")
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return p, errStripePair
		}
		switch k {
		case "t":
			if haveT {
				return p, errStripeDupT
			}
			p.t, haveT = v, true
		case "v1":
			p.sigs.add(v)
		}
	}
	if !haveT {
		return p, errStripeNoT
	}
	return p, nil
}

// parseStandard takes the "v1,<base64>" entries of a space-separated
// webhook-signature value, at most maxSigs of them, in one linear pass.
// Entries of other versions (v1a is asymmetric ed25519) and entries that
// are not "version,signature" are skipped: a sender may add schemes we do
// not know alongside v1.
func parseStandard(val string) sigList {
	var l sigList
	for val != "" && l.n < maxSigs {
		var entry string
		entry, val, _ = strings.Cut(val, " ")
		if sig, ok := strings.CutPrefix(entry, "v1,"); ok {
			l.add(sig)
		}
	}
	return l
}

// parseUnix parses a timestamp of unix seconds: ASCII digits only (no sign,
// space or exponent), at most 18 of them so the value cannot overflow.
func parseUnix(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var t int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		t = t*10 + int64(c-'0')
	}
	return t, true
}

// decodeHex decodes src into dst (len(src) == 2*len(dst)), either case,
// without the []byte conversion encoding/hex would need.
func decodeHex(dst []byte, src string) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHex(src[2*i])
		lo, ok2 := fromHex(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
