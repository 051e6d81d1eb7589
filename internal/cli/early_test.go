package cli

import (
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEarlyAnswersLikeServed: through the real server, each rejection
// answered below net/http (edge.Early) is, byte for byte, the answer the
// same request gets through net/http and the gateway's handler. The
// served twin carries Pragma, which early does not read (net/http
// rewrites it), and changes nothing else. Only the request ids and the
// Date may differ.
func TestEarlyAnswersLikeServed(t *testing.T) {
	s, logs := startInProcess(t, `
listen: "127.0.0.1:0"
admin: "off"
state: {driver: memory}
resource_policy:
  Version: "2012-10-17"
  Statement:
    - {Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*/*/*"}
    - {Effect: Deny, Principal: "*", Action: execute-api:Invoke, Resource: "execute-api:/*/*/deny/*"}
routes:
  - {path: /key, target: "http://127.0.0.1:1/", api_key_required: true}
  - {path: "/deny/{proxy+}", target: "http://127.0.0.1:1/"}
  - {path: /slow, target: "http://127.0.0.1:1/", throttle: {rate: 0.000001, burst: 0}}
cors: {allow_origins: ["https://app.example.com"]}
`)
	volatile := regexp.MustCompile(`(?m)^(x-amzn-RequestId|x-amz-apigw-id|Date): .*\r$`)
	for _, tc := range []struct{ name, head string }{
		{"no route", "GET /nope HTTP/1.1\r\nHost: gw.test\r\n"},
		{"no key", "GET /key HTTP/1.1\r\nHost: gw.test\r\nUser-Agent: curl/8.5.0\r\n"},
		{"no key, CORS", "POST /key HTTP/1.1\r\nHost: gw.test\r\nOrigin: https://app.example.com\r\n"},
		{"unknown key", "GET /key HTTP/1.1\r\nHost: gw.test\r\nx-api-key: abcdefghijklmnopqrstuvwxyz\r\n"},
		{"policy, a long path (a body past net/http's 2 KiB buffer)", "GET /deny/" + strings.Repeat("a", 3000) + " HTTP/1.1\r\nHost: gw.test\r\n"},
		{"throttled", "DELETE /slow HTTP/1.1\r\nHost: gw.test\r\n"},
	} {
		early := askOnce(t, s.Addr(), tc.head, volatile)
		served := askOnce(t, s.Addr(), tc.head+"Pragma: no-cache\r\n", volatile)
		if early != served {
			t.Errorf("%s:\nearly:  %q\nserved: %q", tc.name, early, served)
		}
		if !strings.Contains(early, "\r\nContent-Length: ") {
			t.Errorf("%s: no Content-Length: %q", tc.name, early)
		}
	}
	if n := strings.Count(logs.String(), `"msg":"request"`); n != 12 {
		t.Errorf("%d access lines for 12 requests", n)
	}
}

var contentLength = regexp.MustCompile(`\r\nContent-Length: (\d+)\r\n`)

// askOnce sends one request on a new connection, reads its one answer
// (up to its Content-Length: the connection stays open) and blanks the
// values volatile matches.
func askOnce(t *testing.T, addr, head string, volatile *regexp.Regexp) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, head+"\r\n")
	var b []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		b = append(b, buf[:n]...)
		if i := strings.Index(string(b), "\r\n\r\n"); i >= 0 {
			if m := contentLength.FindStringSubmatch(string(b[:i+2])); m != nil {
				if want, _ := strconv.Atoi(m[1]); len(b) >= i+4+want {
					break
				}
			}
		}
		if err != nil {
			break
		}
	}
	return volatile.ReplaceAllString(string(b), "$1: -\r")
}
