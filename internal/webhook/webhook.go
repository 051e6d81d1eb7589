// Package webhook checks the signatures that webhook providers put on their
// deliveries, so that a route can refuse (401) a request that did not come
// from the holder of the shared secret before any backend work is done.
//
// It returns verdicts and never writes responses: Verify answers nil or one
// of four sentinel errors (ErrMissing, ErrMalformed, ErrMismatch, ErrStale)
// that the gateway maps to 401 and logs. The errors never contain secrets,
// expected signatures or the received signature, only which header and which
// rule failed.
//
// Every scheme authenticates the raw body bytes as received; callers must
// read (and bound) the body first and must not re-serialise it.
//
// A Verifier is built once from a Spec (at config load) and is safe for
// concurrent use. The per-request path does not allocate: HMAC states are
// pooled per Verifier and signatures are decoded into pooled buffers.
//
// Rules chosen where the providers' documents are silent or differ:
//
//   - A signature header sent twice is malformed: a second proxy or the
//     backend might read the other copy.
//   - A signature must decode to exactly one digest (hex in either case;
//     base64 canonical, padding optional). Anything shorter or longer is
//     malformed, never compared as a prefix.
//   - Timestamped schemes check the signature before the time, so ErrStale
//     always means "genuine but too old or too new" (a replay or a skewed
//     clock), and the window applies in both directions.
//   - At most 16 candidate signatures per request are tried (Stripe v1
//     entries, Standard Webhooks v1 entries); further ones are ignored.
//     Parsing is one linear pass over the header.
//   - Stripe: v0 and unknown keys are ignored, a second t= or a field
//     without "=" is malformed, a header without any v1 is malformed.
//   - Standard Webhooks: entries other than "v1,<sig>" (v1a, v2, junk) are
//     skipped; none left is malformed. A secret without "whsec_" is still
//     base64, as in the reference libraries. Svix's spelling of the same
//     headers (svix-id, svix-timestamp, svix-signature) is accepted when
//     webhook-signature is absent; one spelling is used whole, never a mix.
//   - GitLab: secrets starting with "whsec_" are signing tokens, others
//     plain X-Gitlab-Token values. With a signing token configured, a
//     request carrying webhook-signature is judged on that signature alone;
//     otherwise the plain token decides (if one is configured; if not, the
//     unsigned request is ErrMissing).
//   - GitHub never falls back to the SHA-1 X-Hub-Signature header; use
//     provider hmac with algorithm sha1 to accept it deliberately.
package webhook

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"hash"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTolerance is how far a signed timestamp may be from now, in either
// direction, for the schemes that sign one (stripe, slack, standard, and
// gitlab's signing token). Five minutes is what Stripe's, Slack's and the
// Standard Webhooks libraries use.
const DefaultTolerance = 5 * time.Minute

// maxSigs caps how many candidate signatures of one request are tried, so
// that a header listing thousands of signatures costs at most maxSigs×secrets
// HMAC comparisons. Real senders list one or two (two during rotation).
const maxSigs = 16

// Sentinel errors returned (wrapped) by Verify. Branch on them with
// errors.Is; all of them mean 401 to the client, they only differ in the log.
var (
	// ErrMissing: a header the scheme needs is absent or empty.
	ErrMissing = errors.New("webhook: signature header missing")
	// ErrMalformed: the header is present but cannot be parsed (bad
	// prefix, non-hex, wrong length, no usable v1 entry, repeated header,
	// non-numeric timestamp).
	ErrMalformed = errors.New("webhook: signature header malformed")
	// ErrMismatch: well-formed, but no signature matches any secret.
	ErrMismatch = errors.New("webhook: signature mismatch")
	// ErrStale: the signature is genuine but its timestamp is further than
	// the tolerance from now (a replay, or a clock off by minutes). The
	// signature is checked first, so this verdict is never given to a forgery.
	ErrStale = errors.New("webhook: timestamp outside tolerance")
)

// Spec describes one route's verification, as written in the route's
// `verify:` block. The zero values of the optional fields take the defaults
// noted on each field.
type Spec struct {
	// Provider is one of github, gitlab, bitbucket, stripe, slack,
	// standard, hmac (case-insensitive). standard covers Svix too, under
	// either header spelling.
	Provider string
	// Secrets holds one or more secrets; a request is accepted if any
	// matches, so a secret can be rotated by listing new and old together.
	// An empty list or an empty secret is an error: an HMAC with an empty
	// key can be computed by anyone.
	//
	// stripe uses the endpoint secret string as-is (including "whsec_").
	// standard expects "whsec_<base64>" and uses the decoded bytes; a secret
	// without the prefix is base64-decoded as well, as the Standard Webhooks
	// libraries do. gitlab treats a secret starting with "whsec_" as a
	// signing token (verified as standard) and any other as the plain
	// X-Gitlab-Token value.
	Secrets [][]byte
	// Header names the header carrying the signature (hmac only; required).
	Header string
	// Algorithm is sha1, sha256 or sha512 (hmac only; default sha256).
	Algorithm string
	// Encoding is hex or base64 (hmac only; default hex). base64 is the
	// standard alphabet, with or without padding.
	Encoding string
	// Prefix, if set, must start the header value and is stripped before
	// decoding, for example "sha256=" (hmac only; default none).
	Prefix string
	// Tolerance bounds |now - signed timestamp| for stripe, slack, standard
	// and gitlab signing tokens (default DefaultTolerance). It cannot be
	// negative; it is an error for providers whose signature has no time.
	Tolerance time.Duration
}

type provider int

const (
	github provider = iota + 1
	gitlab
	bitbucket
	stripe
	slack
	standard
	generic
)

var providers = map[string]provider{
	"github":    github,
	"gitlab":    gitlab,
	"bitbucket": bitbucket,
	"stripe":    stripe,
	"slack":     slack,
	"standard":  standard,
	"hmac":      generic,
}

type encoding int

const (
	hexEnc encoding = iota
	base64Enc
)

// header is a header name in canonical form (so lookups index the map
// directly, without canonicalising per request) with its ErrMissing error
// built once.
type header struct {
	key     string
	missing error
}

func newHeader(name string) header {
	key := textproto.CanonicalMIMEHeaderKey(name)
	return header{key: key, missing: &reason{ErrMissing, "webhook: missing " + key + " header"}}
}

// reason wraps a sentinel with a fixed, secret-free description. Values are
// built once (package variables or in New), so failing costs no allocation.
type reason struct {
	kind error
	msg  string
}

func (r *reason) Error() string { return r.msg }
func (r *reason) Unwrap() error { return r.kind }

func malformed(msg string) error { return &reason{ErrMalformed, "webhook: " + msg} }

var (
	errRepeated   = malformed("signature header repeated")
	errPrefix     = malformed("signature lacks the expected prefix")
	errEncoding   = malformed("signature is not a well-formed digest")
	errNoV1       = malformed("no v1 signature")
	errTimestamp  = malformed("timestamp is not unix seconds")
	errStripeNoT  = malformed("Stripe-Signature has no t=")
	errStripeDupT = malformed("Stripe-Signature has more than one t=")
	errStripePair = malformed("Stripe-Signature field is not key=value")
	errMismatch   = &reason{ErrMismatch, "webhook: no signature matches any configured secret"}
	errStale      = &reason{ErrStale, "webhook: signed timestamp outside tolerance"}
	errToken      = &reason{ErrMismatch, "webhook: X-Gitlab-Token matches no configured token"}
)

var (
	hdrGitHub    = newHeader("X-Hub-Signature-256")
	hdrBitbucket = newHeader("X-Hub-Signature")
	hdrGitLab    = newHeader("X-Gitlab-Token")
	hdrStripe    = newHeader("Stripe-Signature")
	hdrSlackSig  = newHeader("X-Slack-Signature")
	hdrSlackTime = newHeader("X-Slack-Request-Timestamp")
	hdrStdID     = newHeader("webhook-id")
	hdrStdTime   = newHeader("webhook-timestamp")
	hdrStdSig    = newHeader("webhook-signature")
	hdrSvixSig   = newHeader("svix-signature")

	// stdNames and svixNames are the two spellings of the Standard
	// Webhooks headers: Svix, whose scheme became the standard, sends svix-*
	// (webhook-* only on white-label plans).
	stdNames  = stdSet{hdrStdID, hdrStdTime, hdrStdSig}
	svixNames = stdSet{newHeader("svix-id"), newHeader("svix-timestamp"), hdrSvixSig}
)

// stdSet names the id, timestamp and signature headers of one spelling.
type stdSet struct{ id, time, sig header }

// stdHeaders picks the spelling a request uses: webhook-* when it carries
// webhook-signature, else svix-* when it carries svix-signature, else
// webhook-* (so a request with neither is missing the standard's names).
// One whole set is used, never a mix, as in Svix's own libraries; the
// signature covers the id and timestamp of that set only.
func stdHeaders(h http.Header) *stdSet {
	if len(h[hdrStdSig.key]) == 0 && len(h[hdrSvixSig.key]) > 0 {
		return &svixNames
	}
	return &stdNames
}

const (
	githubPrefix  = "sha256=" // github and bitbucket
	slackPrefix   = "v0="
	standardKeyPx = "whsec_"
)

// Verifier checks requests against one Spec. Build it with New; it is safe
// for concurrent use and must not be copied.
type Verifier struct {
	kind      provider
	keys      [][]byte            // HMAC keys (standard and gitlab signing: decoded)
	tokens    [][sha256.Size]byte // gitlab: SHA-256 of each plain token
	newHash   func() hash.Hash
	size      int // digest size in bytes
	enc       encoding
	prefix    string
	sig       header // the header holding the signature(s)
	tolerance time.Duration
	pool      sync.Pool // *scratch
}

// scratch is the per-request working memory, pooled so Verify does not
// allocate: keyed HMAC states (Reset restores the keyed state cheaply),
// the computed sum, decoded candidate signatures, and a chunk buffer for
// feeding strings to hashes without converting them to []byte.
type scratch struct {
	macs []hash.Hash // one per Verifier.keys entry, same order
	tok  hash.Hash   // gitlab: plain SHA-256 of the received token
	sum  [sha512.Size]byte
	sigs [maxSigs][sha512.Size]byte
	dec  [sha512.Size + 4]byte // ≥ base64 DecodedLen of any accepted length
	buf  [256]byte
}

// New validates s and builds its Verifier. Errors name the field at fault
// and never include secret bytes.
func New(s Spec) (*Verifier, error) {
	kind, ok := providers[strings.ToLower(s.Provider)]
	if !ok {
		if s.Provider == "" {
			return nil, errors.New("webhook: provider is required")
		}
		return nil, errors.New("webhook: unknown provider " + quote(s.Provider) +
			" (want github, gitlab, bitbucket, stripe, slack, standard or hmac)")
	}
	name := strings.ToLower(s.Provider)
	if len(s.Secrets) == 0 {
		return nil, errors.New("webhook: " + name + ": no secret configured")
	}
	for i, sec := range s.Secrets {
		if len(sec) == 0 {
			return nil, errors.New("webhook: " + name + ": secret " + strconv.Itoa(i+1) + " is empty")
		}
	}
	if kind != generic && (s.Header != "" || s.Algorithm != "" || s.Encoding != "" || s.Prefix != "") {
		return nil, errors.New("webhook: " + name + ": header, algorithm, encoding and prefix apply to provider hmac only")
	}
	if s.Tolerance < 0 {
		return nil, errors.New("webhook: " + name + ": tolerance must not be negative")
	}
	switch kind {
	case github, bitbucket, generic:
		if s.Tolerance != 0 {
			return nil, errors.New("webhook: " + name + ": tolerance has no effect, this signature carries no timestamp")
		}
	}

	v := &Verifier{
		kind:      kind,
		newHash:   sha256.New,
		size:      sha256.Size,
		enc:       hexEnc,
		tolerance: s.Tolerance,
	}
	if v.tolerance == 0 {
		v.tolerance = DefaultTolerance
	}
	switch kind {
	case github:
		v.sig, v.prefix = hdrGitHub, githubPrefix
	case bitbucket:
		v.sig, v.prefix = hdrBitbucket, githubPrefix
	case stripe:
		v.sig = hdrStripe
	case slack:
		v.sig, v.prefix = hdrSlackSig, slackPrefix
	case standard:
		v.sig, v.enc = hdrStdSig, base64Enc
	case gitlab:
		v.sig, v.enc = hdrGitLab, base64Enc
	case generic:
		if err := v.generic(s); err != nil {
			return nil, err
		}
	}

	for i, sec := range s.Secrets {
		switch {
		case kind == standard || kind == gitlab && strings.HasPrefix(string(sec), standardKeyPx):
			key, err := standardKey(sec)
			if err != nil {
				return nil, errors.New("webhook: " + name + ": secret " + strconv.Itoa(i+1) + ": " + err.Error())
			}
			v.keys = append(v.keys, key)
		case kind == gitlab:
			v.tokens = append(v.tokens, sha256.Sum256(sec))
		default:
			v.keys = append(v.keys, append([]byte(nil), sec...))
		}
	}

	v.pool.New = func() any {
		sc := &scratch{macs: make([]hash.Hash, len(v.keys))}
		for i, k := range v.keys {
			sc.macs[i] = hmac.New(v.newHash, k)
		}
		if len(v.tokens) > 0 {
			sc.tok = sha256.New()
		}
		return sc
	}
	return v, nil
}

// generic fills the hmac provider's header, algorithm, encoding and prefix.
func (v *Verifier) generic(s Spec) error {
	if s.Header == "" {
		return errors.New("webhook: hmac: header is required")
	}
	if !validHeaderName(s.Header) {
		return errors.New("webhook: hmac: header " + quote(s.Header) + " is not a valid header name")
	}
	v.sig = newHeader(s.Header)
	switch strings.ToLower(s.Algorithm) {
	case "", "sha256":
	case "sha1":
		v.newHash, v.size = sha1.New, sha1.Size
	case "sha512":
		v.newHash, v.size = sha512.New, sha512.Size
	default:
		return errors.New("webhook: hmac: unknown algorithm " + quote(s.Algorithm) + " (want sha1, sha256 or sha512)")
	}
	switch strings.ToLower(s.Encoding) {
	case "", "hex":
	case "base64":
		v.enc = base64Enc
	default:
		return errors.New("webhook: hmac: unknown encoding " + quote(s.Encoding) + " (want hex or base64)")
	}
	v.prefix = s.Prefix
	return nil
}

// standardKey decodes a Standard Webhooks secret. The "whsec_" prefix is
// optional and the rest is base64 in every case, as in the reference
// libraries: taking an unprefixed secret as raw bytes instead would make
// the same pasted string verify differently with and without its prefix.
func standardKey(sec []byte) ([]byte, error) {
	b64 := strings.TrimPrefix(string(sec), standardKeyPx)
	if b64 == "" {
		return nil, errors.New("empty after " + standardKeyPx)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil || len(key) == 0 {
		// Not err.Error(): it quotes an offset into the secret.
		return nil, errors.New("not base64 after the optional " + standardKeyPx + " prefix")
	}
	return key, nil
}

// Verify reports whether the request headers h and raw body carry a valid
// signature at time now: nil if so, otherwise an error wrapping ErrMissing,
// ErrMalformed, ErrMismatch or ErrStale. now is a parameter so that tests
// and replays control the clock.
func (v *Verifier) Verify(h http.Header, body []byte, now time.Time) error {
	s := v.pool.Get().(*scratch)
	defer v.pool.Put(s)
	switch v.kind {
	case github, bitbucket, generic:
		return v.verifyBody(s, h, body)
	case stripe:
		return v.verifyStripe(s, h, body, now)
	case slack:
		return v.verifySlack(s, h, body, now)
	case standard:
		return v.verifyStandard(s, h, body, now, stdHeaders(h))
	case gitlab:
		return v.verifyGitLab(s, h, body, now)
	}
	panic("webhook: Verifier not built by New")
}

// one returns the single value of hd. A repeated signature header is
// malformed: which copy a backend or another proxy would read is
// unknowable, so neither is trusted.
func one(h http.Header, hd header) (string, error) {
	vals := h[hd.key]
	switch {
	case len(vals) == 0 || vals[0] == "":
		return "", hd.missing
	case len(vals) > 1:
		return "", errRepeated
	}
	return vals[0], nil
}

// verifyBody handles the schemes that sign the body alone with one
// signature (github, bitbucket, hmac).
func (v *Verifier) verifyBody(s *scratch, h http.Header, body []byte) error {
	val, err := one(h, v.sig)
	if err != nil {
		return err
	}
	sig, ok := strings.CutPrefix(val, v.prefix)
	if !ok {
		return errPrefix
	}
	if !v.decode(s, 0, sig) {
		return errEncoding
	}
	if !v.match(s, 1, body) {
		return errMismatch
	}
	return nil
}

func (v *Verifier) verifyStripe(s *scratch, h http.Header, body []byte, now time.Time) error {
	val, err := one(h, v.sig)
	if err != nil {
		return err
	}
	p, err := parseStripe(val)
	if err != nil {
		return err
	}
	t, ok := parseUnix(p.t)
	if !ok {
		return errTimestamp
	}
	n := v.decodeAll(s, &p.sigs)
	if n == 0 {
		return errNoV1
	}
	if !v.match(s, n, body, p.t, ".") {
		return errMismatch
	}
	return v.fresh(t, now)
}

func (v *Verifier) verifySlack(s *scratch, h http.Header, body []byte, now time.Time) error {
	val, err := one(h, v.sig)
	if err != nil {
		return err
	}
	ts, err := one(h, hdrSlackTime)
	if err != nil {
		return err
	}
	t, ok := parseUnix(ts)
	if !ok {
		return errTimestamp
	}
	sig, ok := strings.CutPrefix(val, v.prefix)
	if !ok {
		return errPrefix
	}
	if !v.decode(s, 0, sig) {
		return errEncoding
	}
	if !v.match(s, 1, body, "v0:", ts, ":") {
		return errMismatch
	}
	return v.fresh(t, now)
}

func (v *Verifier) verifyStandard(s *scratch, h http.Header, body []byte, now time.Time, names *stdSet) error {
	id, err := one(h, names.id)
	if err != nil {
		return err
	}
	ts, err := one(h, names.time)
	if err != nil {
		return err
	}
	val, err := one(h, names.sig)
	if err != nil {
		return err
	}
	t, ok := parseUnix(ts)
	if !ok {
		return errTimestamp
	}
	sigs := parseStandard(val)
	n := v.decodeAll(s, &sigs)
	if n == 0 {
		return errNoV1
	}
	if !v.match(s, n, body, id, ".", ts, ".") {
		return errMismatch
	}
	return v.fresh(t, now)
}

// verifyGitLab checks GitLab's plain X-Gitlab-Token or, with a "whsec_"
// signing token configured, its Standard Webhooks signature. The choice
// follows the request: if a signing token is configured and the request
// carries webhook-signature, the signature decides alone (a bad signature is
// not rescued by a token); otherwise the plain token decides. A route
// configured only with a signing token therefore rejects unsigned requests.
func (v *Verifier) verifyGitLab(s *scratch, h http.Header, body []byte, now time.Time) error {
	if len(v.keys) > 0 && (len(h[hdrStdSig.key]) > 0 || len(v.tokens) == 0) {
		// GitLab sends only the webhook-* names.
		return v.verifyStandard(s, h, body, now, &stdNames)
	}
	tok, err := one(h, hdrGitLab)
	if err != nil {
		return err
	}
	// Compare fixed-size digests so the time taken does not depend on
	// where, or whether, the lengths of the two tokens differ.
	s.tok.Reset()
	s.writeString(s.tok, tok)
	got := s.tok.Sum(s.sum[:0])
	ok := false
	for i := range v.tokens {
		if hmac.Equal(got, v.tokens[i][:]) {
			ok = true
		}
	}
	if !ok {
		return errToken
	}
	return nil
}

// fresh applies the tolerance in both directions, bounds included: a
// sender whose clock runs ahead is accepted up to the tolerance, and a
// timestamp further in the future is as suspect as an old one (it would
// stretch the replay window). The Standard Webhooks, Svix and slack_sdk
// libraries do the same; stripe-go and Bolt check only the past, so a
// delivery dated more than the tolerance ahead is the one case where
// drawbridge is stricter than those SDKs (docs/guards.md).
func (v *Verifier) fresh(t int64, now time.Time) error {
	d := now.Sub(time.Unix(t, 0))
	if d > v.tolerance || d < -v.tolerance {
		return errStale
	}
	return nil
}

// decodeAll decodes the candidate signatures in l into s.sigs, compacting
// the well-formed ones to the front, and returns how many there are.
func (v *Verifier) decodeAll(s *scratch, l *sigList) int {
	n := 0
	for _, sig := range l.s[:l.n] {
		if v.decode(s, n, sig) {
			n++
		}
	}
	return n
}

// decode decodes sig into s.sigs[i] and reports whether it is exactly one
// digest long. Only the exact encoded length is accepted, so a truncated or
// extended signature is malformed rather than a prefix match.
func (v *Verifier) decode(s *scratch, i int, sig string) bool {
	dst := s.sigs[i][:v.size]
	if v.enc == hexEnc {
		return len(sig) == 2*v.size && decodeHex(dst, sig)
	}
	var e *base64.Encoding
	switch len(sig) {
	case base64.StdEncoding.EncodedLen(v.size):
		e = base64.StdEncoding.Strict()
	case base64.RawStdEncoding.EncodedLen(v.size):
		e = base64.RawStdEncoding.Strict()
	default:
		return false
	}
	// Copy into the pooled buffer: base64 decodes from []byte, and
	// converting the string would allocate. Decode into s.dec, which has
	// room for DecodedLen: a length-matching string without padding holds
	// more bytes than a digest, and Decode panics on a short dst (found by
	// FuzzStandardHeader).
	src := s.buf[:copy(s.buf[:], sig)]
	n, err := e.Decode(s.dec[:], src)
	if err != nil || n != v.size {
		return false
	}
	copy(dst, s.dec[:n])
	return true
}

// match computes, for each secret, HMAC(parts... || body) and compares it in
// constant time with the first n decoded signatures.
func (v *Verifier) match(s *scratch, n int, body []byte, parts ...string) bool {
	for _, m := range s.macs {
		m.Reset()
		for _, p := range parts {
			s.writeString(m, p)
		}
		m.Write(body)
		sum := m.Sum(s.sum[:0])
		for j := range n {
			if hmac.Equal(sum, s.sigs[j][:v.size]) {
				return true
			}
		}
	}
	return false
}

// writeString feeds str to w through the pooled buffer, avoiding the
// allocation a []byte(str) conversion passed to an interface would cost.
func (s *scratch) writeString(w hash.Hash, str string) {
	for len(str) > 0 {
		n := copy(s.buf[:], str)
		w.Write(s.buf[:n])
		str = str[n:]
	}
}

// quote shows a user-supplied config value (never a secret) in an error.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
