package streams

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/store/redis"
)

// A delivery's id on the redis driver. A stream entry's ID ("ms-seq") is
// unique only within its stream: two routes' streams, or a route's stream
// and its dead-letter stream, hand out the same ID to entries added in the
// same millisecond. So the id is the entry ID qualified by the stream that
// holds it, "<ms>-<seq>.<p|d><16 hex>": p for the route's stream, d for
// its dead-letter stream, and the FNV-64a hash of the route path. Ids then
// name one entry, and ordering them (newest first, paging by Before) is a
// total order across every stream.

// routeTag is the hex part of the ids of route path's entries.
func routeTag(path string) string {
	h := fnv.New64a()
	h.Write([]byte(path))
	return fmt.Sprintf("%016x", h.Sum64())
}

// publicID qualifies entry, an ID in route tag's stream or (dead) its
// dead-letter stream.
func publicID(entry string, dead bool, tag string) string {
	s := ".p"
	if dead {
		s = ".d"
	}
	return entry + s + tag
}

// parseID splits a delivery id made by publicID; ok is false for anything
// else.
func parseID(id string) (entry string, dead bool, tag string, ok bool) {
	entry, q, found := strings.Cut(id, ".")
	if !found || len(q) != 17 || (q[0] != 'p' && q[0] != 'd') || redis.IDTime(entry).IsZero() {
		return "", false, "", false
	}
	ms, seq, found := strings.Cut(entry, "-")
	if !found || !digits(ms) || !digits(seq) {
		return "", false, "", false
	}
	for _, c := range []byte(q[1:]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false, "", false
		}
	}
	return entry, q[0] == 'd', q[1:], true
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// compareIDs orders delivery ids by their entry IDs' time, then sequence,
// then by stream: a total order, since no two entries share an id.
func compareIDs(a, b string) int {
	ea, qa, _ := strings.Cut(a, ".")
	eb, qb, _ := strings.Cut(b, ".")
	return cmp.Or(compareEntries(ea, eb), cmp.Compare(qa, qb))
}

// compareEntries orders stream entry IDs ("ms-seq") by time, then
// sequence (numerically: the shorter decimal is the smaller).
func compareEntries(a, b string) int {
	ma, sa, _ := strings.Cut(a, "-")
	mb, sb, _ := strings.Cut(b, "-")
	return cmp.Or(cmp.Compare(len(ma), len(mb)), cmp.Compare(ma, mb), cmp.Compare(len(sa), len(sb)), cmp.Compare(sa, sb))
}

// nextEntry is the smallest stream entry ID above entry: listing the
// entries strictly below it includes entry itself.
func nextEntry(entry string) string {
	ms, seq, _ := strings.Cut(entry, "-")
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || n == ^uint64(0) {
		m, _ := strconv.ParseUint(ms, 10, 64)
		return strconv.FormatUint(m+1, 10) + "-0"
	}
	return ms + "-" + strconv.FormatUint(n+1, 10)
}
