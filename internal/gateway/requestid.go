package gateway

import (
	crand "crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"sync/atomic"

	"github.com/drawbridge/drawbridge/internal/config"
)

// Request ids, in API Gateway's two shapes (docs/deviations.md):
//
//   - REST APIs answer with x-amzn-RequestId, a UUID, and x-amz-apigw-id,
//     a short id such as "Cj1mFHZ3IAMF_Xw=";
//   - HTTP APIs answer with apigw-requestid alone, a short id, which is
//     also their $context.requestId.
//
// A short id is 11 bytes in URL-safe base64 with its padding: 16
// characters ending in "=", as every recorded AWS id is. Ids must be
// unique, not unguessable (they name a request in logs; nothing is
// authorised by them), so none costs a getrandom call: a UUID takes 128
// bits from math/rand/v2's per-thread generator, and a short id is a
// process-wide counter put through a keyed 64-bit bijection (unique within
// the process for 2^64 answers, and not revealing how many requests the
// gateway served between two of a client's own) followed by a 24-bit tag
// of the process. Keys and tag are drawn from crypto/rand once, at start,
// so two processes (Lambda instances, replicas) do not share a sequence.
var shortIDs struct {
	n    atomic.Uint64
	_    [120]byte // n alone on its cache line: the keys are read on every core
	a, d uint64    // xor and add keys
	b, c uint64    // odd multipliers
	tag  [3]byte
}

func init() {
	var seed [35]byte
	crand.Read(seed[:])
	shortIDs.a = binary.LittleEndian.Uint64(seed[0:])
	shortIDs.b = binary.LittleEndian.Uint64(seed[8:]) | 1
	shortIDs.c = binary.LittleEndian.Uint64(seed[16:]) | 1
	shortIDs.d = binary.LittleEndian.Uint64(seed[24:])
	copy(shortIDs.tag[:], seed[32:])
}

// shortIDLen is the length of a short id: base64 of 11 bytes, padded.
const shortIDLen = 16

// putShortID writes the next short id into dst[:shortIDLen].
func putShortID(dst []byte) {
	// Every step is invertible (xor, multiplication by an odd number,
	// xorshift, addition), so distinct counts give distinct ids.
	x := shortIDs.n.Add(1) ^ shortIDs.a
	x *= shortIDs.b
	x ^= x >> 32
	x *= shortIDs.c
	x ^= x >> 29
	x += shortIDs.d
	var raw [11]byte
	binary.BigEndian.PutUint64(raw[:8], x)
	copy(raw[8:], shortIDs.tag[:])
	base64.URLEncoding.Encode(dst[:shortIDLen], raw[:])
}

// putUUID writes a random version 4 UUID into dst[:36].
func putUUID(dst []byte) {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], rand.Uint64())
	binary.BigEndian.PutUint64(u[8:], rand.Uint64())
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10
	hex.Encode(dst[0:8], u[0:4])
	hex.Encode(dst[9:13], u[4:6])
	hex.Encode(dst[14:18], u[6:8])
	hex.Encode(dst[19:23], u[8:10])
	hex.Encode(dst[24:36], u[10:])
	dst[8], dst[13], dst[18], dst[23] = '-', '-', '-', '-'
}

// newRequestID returns a random UUID (version 4), the shape of REST API
// Gateway's request ids.
func newRequestID() string {
	var b [36]byte
	putUUID(b[:])
	return string(b[:])
}

// newShortID returns a fresh short id.
func newShortID() string {
	var b [shortIDLen]byte
	putShortID(b[:])
	return string(b[:])
}

// setIDs gives the call its ids in the API's shapes: the request id (sent
// upstream as X-Request-Id and logged) and, for REST, the short
// x-amz-apigw-id. Both come from one allocation.
func (g *Gateway) setIDs(c *call) {
	if g.api == config.APIHTTP {
		c.id = newShortID()
	} else {
		var b [36 + shortIDLen]byte
		putUUID(b[:36])
		putShortID(b[36:])
		s := string(b[:])
		c.id, c.short[0] = s[:36], s[36:]
	}
	c.idHdr[0] = c.id
}

// idHeaders sets the request-id headers every answer carries, spelled as
// API Gateway spells them (the map bypasses canonicalisation): REST's
// x-amzn-RequestId and x-amz-apigw-id, or HTTP API's apigw-requestid.
func (g *Gateway) idHeaders(h http.Header, c *call) {
	if g.api == config.APIHTTP {
		h["apigw-requestid"] = c.idHdr[:]
		return
	}
	h["x-amzn-RequestId"] = c.idHdr[:]
	h["x-amz-apigw-id"] = c.short[:]
}
