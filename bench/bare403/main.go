// Command bare403 is bench/'s rejection anchor: a bare net/http server that
// answers every request 403 with a small JSON body and keeps the
// connection, the floor for what any Go gateway's rejection can cost.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "host:port")
	flag.Parse()
	body := []byte(`{"message":"Forbidden"}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		w.WriteHeader(http.StatusForbidden)
		w.Write(body)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
