// Command loadn is bench/irserve's load: exactly -n GET requests over -c
// keep-alive connections, each answer read to the end, then exit. wrk
// runs for a time; counting instructions per request needs a count.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "host:port")
	path := flag.String("path", "/", "request path")
	hdr := flag.String("H", "", "one extra header line, such as 'x-api-key: k'")
	n := flag.Int("n", 1000, "requests in all")
	c := flag.Int("c", 8, "connections")
	flag.Parse()
	head := "GET " + *path + " HTTP/1.1\r\nHost: " + *addr + "\r\nUser-Agent: loadn\r\n"
	if *hdr != "" {
		head += *hdr + "\r\n"
	}
	req := []byte(head + "\r\n")
	var wg sync.WaitGroup
	errs := make(chan error, *c)
	for range *c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", *addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			for range *n / *c {
				if _, err := conn.Write(req); err != nil {
					errs <- err
					return
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintln(os.Stderr, "loadn:", err)
		os.Exit(1)
	}
}
