// Command backend is bench/'s private backend: keep-alive HTTP on loopback
// answering /small with 100 bytes and /large with 16 KiB, and anything else
// (webhook deliveries) with 204, so every proxy under test forwards to the
// same thing.
package main

import (
	"bytes"
	"flag"
	"io"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "host:port")
	flag.Parse()
	small := bytes.Repeat([]byte("s"), 100)
	large := bytes.Repeat([]byte("L"), 16<<10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		var b []byte
		switch r.URL.Path {
		case "/small":
			b = small
		case "/large":
			b = large
		default:
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header()["Content-Type"] = []string{"text/plain"}
		w.Write(b)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
