package edge

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkEarly: the two steps of an early answer that are the edge's
// own, for a browser-like request and API Gateway's 403 (the gateway's
// part is BenchmarkGuards/early/*; the whole server is bench/irserve's).
func BenchmarkEarly(b *testing.B) {
	block := []byte("GET /forward?x=1 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.5.0\r\n" +
		"Accept: */*\r\nx-api-key: abcdefghijklmnopqrstuvwxyz\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n")
	b.Run("parse", func(b *testing.B) {
		h := http.Header{}
		if _, ok := parseEarly(block, h); !ok {
			b.Fatal("refused")
		}
		b.ReportAllocs()
		for b.Loop() {
			clear(h)
			parseEarly(block, h)
		}
	})
	b.Run("wire", func(b *testing.B) {
		a := &earlyAnswer{h: http.Header{}}
		now := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
		body := []byte(`{"message":"Forbidden"}`)
		// The gateway's header values are made once (jsonType, dateOf,
		// the id slabs): so here.
		typ, date := []string{"application/json"}, []string{"Tue, 08 Dec 2026 03:00:00 GMT"}
		id, short := []string{"f59afd8d-6d4c-4cd1-84f9-ac01242d1846"}, []string{"sXBkiD81tryMVK8="}
		errType := []string{"ForbiddenException"}
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			a.reset()
			a.h["Content-Type"], a.h["Date"], a.h["x-amzn-ErrorType"] = typ, date, errType
			a.h["x-amzn-RequestId"], a.h["x-amz-apigw-id"] = id, short
			a.WriteHeader(403)
			a.Write(body)
			buf, _ = a.wire(buf[:0], now)
		}
	})
}
