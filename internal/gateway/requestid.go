package gateway

import (
	crand "crypto/rand"
	"encoding/binary"
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
	// URL-safe base64 of the 8 bytes of x and the 3 of the tag, padded:
	// what base64.URLEncoding.Encode writes, without its general loop.
	// Every 6 bits of x is one character; x's last 4 bits share one with
	// the tag's first 2.
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	t := uint64(shortIDs.tag[0])<<16 | uint64(shortIDs.tag[1])<<8 | uint64(shortIDs.tag[2])
	_ = dst[shortIDLen-1]
	dst[0] = enc[x>>58]
	dst[1] = enc[x>>52&63]
	dst[2] = enc[x>>46&63]
	dst[3] = enc[x>>40&63]
	dst[4] = enc[x>>34&63]
	dst[5] = enc[x>>28&63]
	dst[6] = enc[x>>22&63]
	dst[7] = enc[x>>16&63]
	dst[8] = enc[x>>10&63]
	dst[9] = enc[x>>4&63]
	dst[10] = enc[(x&15)<<2|t>>22]
	dst[11] = enc[t>>16&63]
	dst[12] = enc[t>>10&63]
	dst[13] = enc[t>>4&63]
	dst[14] = enc[t<<2&63]
	dst[15] = '='
}

// putUUID writes a random version 4 UUID into dst[:36], as hex.Encode
// would write its bytes in groups, unrolled: the general loops cost more
// than the rest of the id.
func putUUID(dst []byte) {
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^0xf000 | 0x4000               // version 4 (byte 6's high nibble)
	lo = lo&^(0xc0<<56) | uint64(0x80)<<56 // variant 10 (byte 8's high bits)
	_ = dst[35]
	put := func(j int, b uint64) {
		p := hexPairs[b&0xff]
		dst[j], dst[j+1] = byte(p>>8), byte(p)
	}
	put(0, hi>>56)
	put(2, hi>>48)
	put(4, hi>>40)
	put(6, hi>>32)
	dst[8] = '-'
	put(9, hi>>24)
	put(11, hi>>16)
	dst[13] = '-'
	put(14, hi>>8)
	put(16, hi)
	dst[18] = '-'
	put(19, lo>>56)
	put(21, lo>>48)
	dst[23] = '-'
	put(24, lo>>40)
	put(26, lo>>32)
	put(28, lo>>24)
	put(30, lo>>16)
	put(32, lo>>8)
	put(34, lo)
}

// hexPairs holds each byte's two lower-case hex digits, the first in the
// high byte.
var hexPairs = func() (t [256]uint16) {
	const digits = "0123456789abcdef"
	for b := range 256 {
		t[b] = uint16(digits[b>>4])<<8 | uint16(digits[b&15])
	}
	return t
}()

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

// Ids are made idsPerSlab at a time, into one string, with their header
// values ([]string of one id each) cut from one array: a request takes
// the next of them with one atomic add and allocates nothing. An id and
// its header values are never written again once made, so they stay
// valid wherever they go (an access line, a ResponseWriter that reads its
// header map after the handler returned) while the call itself is
// recycled (callpool.go). Ids are still unique (the counter) and the
// UUIDs random; made ahead, they reveal nothing more.
const idsPerSlab = 64

type idSlab struct {
	next atomic.Int32
	v    [2 * idsPerSlab]string // v[2i]: id i; v[2i+1]: REST's short id i
}

// slabs are the current slabs of REST and HTTP API ids.
var slabs [2]atomic.Pointer[idSlab]

func newIDSlab(rest bool) *idSlab {
	size := shortIDLen
	if rest {
		size = 36 + shortIDLen
	}
	var buf [idsPerSlab * (36 + shortIDLen)]byte
	for i := range idsPerSlab {
		b := buf[i*size : (i+1)*size]
		if rest {
			putUUID(b[:36])
			putShortID(b[36:])
		} else {
			putShortID(b)
		}
	}
	all := string(buf[:idsPerSlab*size])
	s := &idSlab{}
	for i := range idsPerSlab {
		id := all[i*size : (i+1)*size]
		if rest {
			s.v[2*i], s.v[2*i+1] = id[:36], id[36:]
		} else {
			s.v[2*i] = id
		}
	}
	return s
}

// setIDs gives the call its ids in the API's shapes: the request id (sent
// upstream as X-Request-Id and logged) and, for REST, the short
// x-amz-apigw-id.
func (g *Gateway) setIDs(c *call) {
	rest, k := g.api != config.APIHTTP, 0
	if rest {
		k = 1
	}
	for {
		s := slabs[k].Load()
		if s != nil {
			if i := int(s.next.Add(1)) - 1; i < idsPerSlab {
				c.id = s.v[2*i]
				c.idHdr = s.v[2*i : 2*i+1 : 2*i+1]
				c.short = s.v[2*i+1 : 2*i+2 : 2*i+2]
				return
			}
		}
		n := newIDSlab(rest)
		n.next.Store(1)
		if slabs[k].CompareAndSwap(s, n) {
			c.id, c.idHdr, c.short = n.v[0], n.v[0:1:1], n.v[1:2:2]
			return
		}
	}
}

// idHeaders sets the request-id headers every answer carries, spelled as
// API Gateway spells them (the map bypasses canonicalisation): REST's
// x-amzn-RequestId and x-amz-apigw-id, or HTTP API's apigw-requestid.
func (g *Gateway) idHeaders(h http.Header, c *call) {
	if g.api == config.APIHTTP {
		h["apigw-requestid"] = c.idHdr
		return
	}
	h["x-amzn-RequestId"] = c.idHdr
	h["x-amz-apigw-id"] = c.short
}
