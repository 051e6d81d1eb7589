package lambda

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// seen is what a recording handler observed of one request.
type seen struct {
	Method, Path, RawPath, RawQuery, RequestURI, Host, RemoteAddr string
	Header                                                        http.Header
	Body                                                          string
	ContentLength                                                 int64
	Source                                                        Source
	HasSource, HasEvent                                           bool
	TLS                                                           bool // the request is marked as having come over HTTPS
}

// recorder returns a handler that records each request and answers with
// reply (or a fixed small response when reply is nil).
func recorder(got *seen, reply http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			panic(err)
		}
		*got = seen{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery,
			RequestURI: r.RequestURI, Host: r.Host, RemoteAddr: r.RemoteAddr,
			Header: r.Header.Clone(), Body: string(b), ContentLength: r.ContentLength,
			TLS: r.TLS != nil,
		}
		got.Source, got.HasSource = SourceFromContext(r.Context())
		_, got.HasEvent = EventFromContext(r.Context())
		if reply != nil {
			reply(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header()["X-Multi"] = []string{"a", "b"}
		w.Header()["Set-Cookie"] = []string{"a=1; Path=/", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "created")
	})
}

func quietOptions() Options {
	return Options{Logger: slog.New(slog.DiscardHandler)}
}

func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutate loads a sample event, lets edit change it as a generic map, and
// re-encodes it: variants stay tied to the real AWS captures.
func mutate(t testing.TB, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readEvent(t, name), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

// keys returns the top-level keys of a JSON object, sorted.
func keys(t testing.TB, doc []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, doc)
	}
	return slices.Sorted(maps.Keys(m))
}

// anyResponse holds the union of the response shapes.
type anyResponse struct {
	StatusCode        int                 `json:"statusCode"`
	StatusDescription string              `json:"statusDescription"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Cookies           []string            `json:"cookies"`
	Body              string              `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

func invoke(t testing.TB, a *Adapter, event []byte) (anyResponse, []byte) {
	t.Helper()
	out, err := a.Invoke(context.Background(), event)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var r anyResponse
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("response: %v\n%s", err, out)
	}
	return r, out
}

func (r anyResponse) body(t testing.TB) []byte {
	t.Helper()
	if !r.IsBase64Encoded {
		return []byte(r.Body)
	}
	b, err := base64.StdEncoding.DecodeString(r.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return b
}

func TestSampleEvents(t *testing.T) {
	tests := []struct {
		name  string
		event string
		want  seen
		// header values the handler must have seen (canonical names)
		header map[string]string
		// headers the handler must not have seen
		absent []string
		// response document
		keys  []string
		check func(t *testing.T, r anyResponse)
	}{
		{
			name:  "REST v1",
			event: "apigw-request.json",
			want: seen{Method: "POST", Path: "/hello/world", RawQuery: "name=me", RequestURI: "/hello/world?name=me",
				Host: "gy415nuibc.execute-api.us-east-1.amazonaws.com", RemoteAddr: "192.168.196.186:0",
				Body: "{\r\n\t\"a\": 1\r\n}", ContentLength: 13, TLS: true},
			header: map[string]string{"Headername": "headerValue", "Content-Type": "application/json",
				"X-Forwarded-For": "54.240.196.186, 54.182.214.83", "Content-Length": "13"},
			absent: []string{"X-Api-Key", "Host"}, // identity.apiKey is API Gateway's verdict, not the client's header
			keys:   []string{"body", "headers", "isBase64Encoded", "multiValueHeaders", "statusCode"},
			check: func(t *testing.T, r anyResponse) {
				if got := r.MultiValueHeaders["Set-Cookie"]; len(got) != 2 {
					t.Errorf("multiValueHeaders Set-Cookie = %q, want 2 values", got)
				}
				if got := r.MultiValueHeaders["X-Multi"]; !slices.Equal(got, []string{"a", "b"}) {
					t.Errorf("multiValueHeaders X-Multi = %q", got)
				}
				if _, ok := r.Headers["Set-Cookie"]; ok {
					t.Errorf("headers repeats a multi-valued Set-Cookie: API Gateway would merge it twice")
				}
				if r.Headers["Content-Type"] != "text/plain; charset=utf-8" {
					t.Errorf("headers Content-Type = %q", r.Headers["Content-Type"])
				}
			},
		},
		{
			name:  "HTTP API v2",
			event: "apigw-v2-request-no-authorizer.json",
			want: seen{Method: "GET", Path: "/", RawQuery: "", RequestURI: "/",
				Host: "aaaaaaaaaa.execute-api.us-west-2.amazonaws.com", RemoteAddr: "1.2.3.4:0", ContentLength: 0, TLS: true},
			header: map[string]string{"User-Agent": "curl/7.58.0", "X-Forwarded-For": "1.2.3.4", "Content-Length": "0"},
			keys:   []string{"body", "cookies", "headers", "isBase64Encoded", "statusCode"},
			check:  checkV2Response,
		},
		{
			name:  "Function URL",
			event: "lambda-urls-request.json",
			want: seen{Method: "POST", Path: "/my/path", RawQuery: "parameter1=value1&parameter1=value2&parameter2=value",
				RequestURI: "/my/path?parameter1=value1&parameter1=value2&parameter2=value",
				Host:       "<url-id>.lambda-url.us-west-2.on.aws", RemoteAddr: "123.123.123.123:0",
				Body: "Hello from client!", ContentLength: 18, TLS: true},
			header: map[string]string{"Cookie": "cookie1; cookie2", "Header2": "value1,value2", "Content-Length": "18"},
			keys:   []string{"body", "cookies", "headers", "isBase64Encoded", "statusCode"},
			check:  checkV2Response,
		},
		{
			name:  "Function URL base64 body",
			event: "function-url-domain-only-request-with-base64-encoded-body.json",
			want: seen{Method: "POST", Path: "/", RequestURI: "/", Host: "lambda-url-id.lambda-url.us-west-2.on.aws",
				RemoteAddr: "127.0.0.1:0", Body: "<idk/>", ContentLength: 6, TLS: true},
			header: map[string]string{"Content-Length": "6", "Content-Type": "idk"},
			keys:   []string{"body", "cookies", "headers", "isBase64Encoded", "statusCode"},
			check:  checkV2Response,
		},
		{
			name:  "ALB headers only",
			event: "alb-lambda-target-request-headers-only.json",
			want: seen{Method: "GET", Path: "/", RawQuery: "key=hello", RequestURI: "/?key=hello",
				Host: "lambda-test-alb-1334523864.us-east-1.elb.amazonaws.com", RemoteAddr: ""},
			header: map[string]string{"X-Forwarded-For": "25.12.198.67", "X-Myheader": "123"},
			keys:   []string{"body", "headers", "isBase64Encoded", "statusCode", "statusDescription"},
			check: func(t *testing.T, r anyResponse) {
				if r.StatusDescription != "201 Created" {
					t.Errorf("statusDescription = %q", r.StatusDescription)
				}
				if r.Headers["Set-Cookie"] != "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT" {
					t.Errorf("headers Set-Cookie = %q, want the last cookie whole", r.Headers["Set-Cookie"])
				}
				if r.Headers["X-Multi"] != "a,b" {
					t.Errorf("headers X-Multi = %q", r.Headers["X-Multi"])
				}
			},
		},
		{
			name:  "ALB multi-value headers",
			event: "alb-lambda-target-request-multivalue-headers.json",
			want: seen{Method: "GET", Path: "/", RawQuery: "key=hello", RequestURI: "/?key=hello",
				Host: "lambda-test-alb-1234567.us-east-1.elb.amazonaws.com", RemoteAddr: ""},
			header: map[string]string{"X-Forwarded-For": "72.21.198.67"},
			keys:   []string{"body", "isBase64Encoded", "multiValueHeaders", "statusCode", "statusDescription"},
			check: func(t *testing.T, r anyResponse) {
				if got := r.MultiValueHeaders["Set-Cookie"]; len(got) != 2 {
					t.Errorf("multiValueHeaders Set-Cookie = %q", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got seen
			a := New(recorder(&got, nil), quietOptions())
			r, doc := invoke(t, a, readEvent(t, tt.event))

			if !got.HasSource || !got.HasEvent {
				t.Fatalf("context: source %v, event %v", got.HasSource, got.HasEvent)
			}
			want := tt.want
			want.Header, want.Source, want.HasSource, want.HasEvent = got.Header, got.Source, true, true
			if !equalSeen(got, want) {
				t.Errorf("handler saw\n%+v\nwant\n%+v", got, want)
			}
			for k, v := range tt.header {
				if g := strings.Join(got.Header[k], "|"); g != v {
					t.Errorf("header %s = %q, want %q", k, g, v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := got.Header[k]; ok {
					t.Errorf("header %s present: %q", k, got.Header[k])
				}
			}
			if !slices.Equal(keys(t, doc), tt.keys) {
				t.Errorf("response keys = %v, want %v\n%s", keys(t, doc), tt.keys, doc)
			}
			if r.StatusCode != http.StatusCreated || r.Body != "created" || r.IsBase64Encoded {
				t.Errorf("response = %d %q base64=%v", r.StatusCode, r.Body, r.IsBase64Encoded)
			}
			tt.check(t, r)
		})
	}
}

func equalSeen(a, b seen) bool {
	a.Header, b.Header = nil, nil
	return reflect.DeepEqual(a, b)
}

func checkV2Response(t *testing.T, r anyResponse) {
	if !slices.Equal(r.Cookies, []string{"a=1; Path=/", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"}) {
		t.Errorf("cookies = %q", r.Cookies)
	}
	if _, ok := r.Headers["Set-Cookie"]; ok {
		t.Errorf("headers has Set-Cookie")
	}
	if r.Headers["X-Multi"] != "a,b" {
		t.Errorf("headers X-Multi = %q, want comma-joined", r.Headers["X-Multi"])
	}
	if r.MultiValueHeaders != nil {
		t.Errorf("v2 response has multiValueHeaders")
	}
}

func TestSource(t *testing.T) {
	tests := []struct {
		name       string
		event      []byte
		opts       Options
		kind       Kind
		ip         string // "" = unknown
		remoteAddr string
		stage      string
	}{
		{name: "v1 identity", event: readEvent(t, "apigw-request.json"), kind: KindV1, ip: "192.168.196.186", remoteAddr: "192.168.196.186:0", stage: "testStage"},
		{name: "v2 http", event: readEvent(t, "apigw-v2-request-no-authorizer.json"), kind: KindV2, ip: "1.2.3.4", remoteAddr: "1.2.3.4:0", stage: "$default"},
		{name: "url", event: readEvent(t, "lambda-urls-request.json"), kind: KindURL, ip: "123.123.123.123", remoteAddr: "123.123.123.123:0"},
		{name: "v2 IPv6", event: mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			obj(obj(m, "requestContext"), "http")["sourceIp"] = "2001:db8::1"
		}), kind: KindV2, ip: "2001:db8::1", remoteAddr: "[2001:db8::1]:0", stage: "$default"},
		{name: "v4-mapped unmapped", event: mutate(t, "apigw-request.json", func(m map[string]any) {
			obj(obj(m, "requestContext"), "identity")["sourceIp"] = "::ffff:198.51.100.7"
		}), kind: KindV1, ip: "198.51.100.7", remoteAddr: "198.51.100.7:0", stage: "testStage"},
		{name: "v1 sourceIp missing", event: mutate(t, "apigw-request.json", func(m map[string]any) {
			delete(obj(obj(m, "requestContext"), "identity"), "sourceIp")
		}), kind: KindV1, stage: "testStage"},
		{name: "v1 sourceIp garbage", event: mutate(t, "apigw-request.json", func(m map[string]any) {
			obj(obj(m, "requestContext"), "identity")["sourceIp"] = "1.2.3.4, 5.6.7.8"
		}), kind: KindV1, stage: "testStage"},
		{name: "v1 no requestContext ignores XFF", event: mutate(t, "apigw-request.json", func(m map[string]any) {
			delete(m, "requestContext")
		}), kind: KindV1},
		{name: "ALB unknown by default", event: readEvent(t, "alb-lambda-target-request-headers-only.json"), kind: KindALB},
		{name: "ALB with configured peer", event: readEvent(t, "alb-lambda-target-request-headers-only.json"),
			opts: Options{ALBPeer: "10.0.0.1"}, kind: KindALB, remoteAddr: "10.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got seen
			opts := tt.opts
			opts.Logger = slog.New(slog.DiscardHandler)
			invoke(t, New(recorder(&got, nil), opts), tt.event)
			if got.Source.Kind != tt.kind || got.Source.Stage != tt.stage {
				t.Errorf("source = %+v, want kind %s stage %q", got.Source, tt.kind, tt.stage)
			}
			ip := ""
			if got.Source.ClientIP.IsValid() {
				ip = got.Source.ClientIP.String()
			}
			if ip != tt.ip || got.RemoteAddr != tt.remoteAddr {
				t.Errorf("client = %q RemoteAddr %q, want %q %q", ip, got.RemoteAddr, tt.ip, tt.remoteAddr)
			}
		})
	}
}

func TestRequestMapping(t *testing.T) {
	tests := []struct {
		name  string
		event []byte
		want  func(s seen) string // "" when fine, else what is wrong
	}{
		{"v1 multi-value query preferred and escaped", mutate(t, "apigw-request.json", func(m map[string]any) {
			m["queryStringParameters"] = map[string]any{"q": "last"}
			m["multiValueQueryStringParameters"] = map[string]any{"q": []any{"a b&c", "last"}, "z": []any{"1"}, "é": []any{"ü"}}
		}), func(s seen) string {
			return expect(s.RawQuery, "q=a+b%26c&q=last&z=1&%C3%A9=%C3%BC")
		}},
		{"v1 single-value query when no multi", mutate(t, "apigw-request.json", func(m map[string]any) {
			m["queryStringParameters"] = map[string]any{"b": "2", "a": "1=1"}
			m["multiValueQueryStringParameters"] = nil
		}), func(s seen) string { return expect(s.RawQuery, "a=1%3D1&b=2") }},
		{"ALB query kept as sent", mutate(t, "alb-lambda-target-request-multivalue-headers.json", func(m map[string]any) {
			m["multiValueQueryStringParameters"] = map[string]any{"q": []any{"a%20b", "c+d"}, "x": []any{"1 2"}}
		}), func(s seen) string { return expect(s.RawQuery, "q=a%20b&q=c+d&x=1%202") }},
		{"v2 raw query byte for byte", mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			m["rawQueryString"] = "b=2&a=%2F;c&a=1"
			m["queryStringParameters"] = map[string]any{"a": "ignored"}
		}), func(s seen) string { return expect(s.RawQuery, "b=2&a=%2F;c&a=1") }},
		{"v2 named stage stripped", mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			m["rawPath"] = "/prod/items/a%2Fb"
			obj(m, "requestContext")["stage"] = "prod"
		}), func(s seen) string {
			return expect(s.Path+" "+s.RawPath+" "+s.RequestURI, "/items/a/b /items/a%2Fb /items/a%2Fb")
		}},
		{"v2 stage root", mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			m["rawPath"] = "/prod"
			obj(m, "requestContext")["stage"] = "prod"
		}), func(s seen) string { return expect(s.Path, "/") }},
		{"v2 $default stage kept", mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			m["rawPath"] = "/$default/x"
		}), func(s seen) string { return expect(s.Path, "/$default/x") }},
		{"v2 stage only as whole segment", mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			m["rawPath"] = "/production/x"
			obj(m, "requestContext")["stage"] = "prod"
		}), func(s seen) string { return expect(s.Path, "/production/x") }},
		{"v1 dot segments reach the gateway unchanged", mutate(t, "apigw-request.json", func(m map[string]any) {
			m["path"] = "/a/../b"
		}), func(s seen) string { return expect(s.Path+" "+s.RequestURI, "/a/../b /a/../b?name=me") }},
		{"v1 decoded path with space re-escaped", mutate(t, "apigw-request.json", func(m map[string]any) {
			m["path"] = "/hello world"
		}), func(s seen) string { return expect(s.RequestURI, "/hello%20world?name=me") }},
		{"v1 multi-value headers preferred", mutate(t, "apigw-request.json", func(m map[string]any) {
			obj(m, "multiValueHeaders")["Accept"] = []any{"a/b", "c/d"}
			obj(m, "headers")["Accept"] = "c/d"
		}), func(s seen) string { return expect(strings.Join(s.Header["Accept"], "|"), "a/b|c/d") }},
		{"v1 transfer-encoding dropped", mutate(t, "apigw-request.json", func(m map[string]any) {
			obj(m, "multiValueHeaders")["Transfer-Encoding"] = []any{"chunked"}
			obj(m, "headers")["Transfer-Encoding"] = "chunked"
		}), func(s seen) string {
			return expect(strings.Join(s.Header["Transfer-Encoding"], "")+"|"+s.Header.Get("Content-Length"), "|13")
		}},
		{"v1 null maps", mutate(t, "apigw-request.json", func(m map[string]any) {
			m["headers"], m["multiValueHeaders"], m["body"] = nil, nil, nil
			m["queryStringParameters"], m["multiValueQueryStringParameters"] = nil, nil
		}), func(s seen) string {
			return expect(s.RequestURI+" "+s.Body+"|"+s.Host, "/hello/world |gy415nuibc.execute-api.us-east-2.amazonaws.com")
		}},
		{"v2 cookies replace a cookie header", mutate(t, "lambda-urls-request.json", func(m map[string]any) {
			obj(m, "headers")["cookie"] = "stale=1"
		}), func(s seen) string { return expect(strings.Join(s.Header["Cookie"], "|"), "cookie1; cookie2") }},
		{"v2 path falls back to requestContext.http.path", mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			delete(m, "rawPath")
			obj(obj(m, "requestContext"), "http")["path"] = "/from/context"
		}), func(s seen) string { return expect(s.Path, "/from/context") }},
		{"HTTP API payload 1.0", mutate(t, "apigw-request.json", func(m map[string]any) {
			m["version"] = "1.0"
		}), func(s seen) string { return expect(s.Source.Kind, KindV1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got seen
			r, doc := invoke(t, New(recorder(&got, nil), quietOptions()), tt.event)
			if r.StatusCode != http.StatusCreated {
				t.Fatalf("status %d, handler not reached: %s", r.StatusCode, doc)
			}
			if msg := tt.want(got); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func expect[T comparable](got, want T) string {
	if got != want {
		b, _ := json.Marshal(struct{ Got, Want T }{got, want})
		return string(b)
	}
	return ""
}

// TestBadEvents: every malformed or unsupported event (docs/lambda.md#events) gets a clean
// answer, never a panic, and the adapter serves the next event normally.
func TestBadEvents(t *testing.T) {
	big := strings.Repeat("x", 7<<20)
	tests := []struct {
		name    string
		event   []byte
		opts    Options
		wantErr bool   // no shape known: an invocation error
		status  int    // else the status in the event's shape
		body    string // and its body
		alb     bool   // and the ALB statusDescription
	}{
		{name: "L1 unknown shape", event: []byte(`{"foo":1}`), wantErr: true},
		{name: "L1 non-object JSON array", event: []byte(`[1,2,3]`), wantErr: true},
		{name: "L1 JSON string", event: []byte(`"GET /"`), wantErr: true},
		{name: "L1 null", event: []byte(`null`), wantErr: true},
		{name: "L1 empty", event: []byte(``), wantErr: true},
		{name: "L1 truncated JSON", event: readEvent(t, "apigw-request.json")[:500], wantErr: true},
		{name: "L1 trailing garbage", event: append(readEvent(t, "apigw-request.json"), "}x"...), wantErr: true},
		{name: "L1 REQUEST authorizer event", event: readEvent(t, "apigw-custom-auth-request-type-request.json"), wantErr: true},
		{name: "L1 v2 authorizer event", event: readEvent(t, "apigw-v2-custom-authorizer-v2-request.json"), wantErr: true},
		{name: "L1 WebSocket event", event: readEvent(t, "apigw-websocket-request.json"), wantErr: true},
		{name: "L1 v1 without path", event: mutate(t, "apigw-request.json", func(m map[string]any) { delete(m, "path") }),
			status: 400, body: bodyBadRequest},
		{name: "L1 v1 invalid method", event: mutate(t, "apigw-request.json", func(m map[string]any) { m["httpMethod"] = "GET /x" }),
			status: 400, body: bodyBadRequest},
		{name: "L1 v1 version 1.0 without method", event: []byte(`{"version":"1.0","path":"/"}`),
			status: 400, body: bodyBadRequest},
		{name: "L1 v2 without requestContext.http", event: mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			delete(obj(m, "requestContext"), "http")
		}), status: 400, body: bodyBadRequest},
		{name: "L1 wrong field type", event: mutate(t, "apigw-request.json", func(m map[string]any) { m["headers"] = 5 }),
			status: 400, body: bodyBadRequest},
		{name: "L1 relative path", event: mutate(t, "apigw-request.json", func(m map[string]any) { m["path"] = "hello" }),
			status: 400, body: bodyBadRequest},
		{name: "L1 bad escape in path", event: mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) { m["rawPath"] = "/a%zz" }),
			status: 400, body: bodyBadRequest},
		{name: "L1 CRLF in header value", event: mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			obj(m, "headers")["x-a"] = "1\r\nX-Injected: 1"
		}), status: 400, body: bodyBadRequest},
		{name: "L1 invalid header name", event: mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			obj(m, "headers")["x a"] = "1"
		}), status: 400, body: bodyBadRequest},
		{name: "L3 invalid base64", event: mutate(t, "apigw-request.json", func(m map[string]any) {
			m["isBase64Encoded"], m["body"] = true, "not base64!"
		}), status: 400, body: bodyBadRequest},
		{name: "L3 URL-safe alphabet", event: mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			m["isBase64Encoded"], m["body"] = true, "-_-_"
		}), status: 400, body: bodyBadRequest},
		{name: "L3 missing padding", event: mutate(t, "lambda-urls-request.json", func(m map[string]any) {
			m["isBase64Encoded"], m["body"] = true, "YWI"
		}), status: 400, body: bodyBadRequest},
		{name: "L3 isBase64Encoded not a bool", event: mutate(t, "apigw-request.json", func(m map[string]any) {
			m["isBase64Encoded"] = "true"
		}), status: 400, body: bodyBadRequest},
		{name: "L5 headers disagree with multiValueHeaders", event: mutate(t, "apigw-request.json", func(m map[string]any) {
			obj(m, "headers")["X-Api-Key"] = "trusted-looking"
			obj(m, "multiValueHeaders")["X-Api-Key"] = []any{"other"}
		}), status: 400, body: bodyBadRequest},
		{name: "L5 name only in headers", event: mutate(t, "apigw-request.json", func(m map[string]any) {
			obj(m, "headers")["X-Hub-Signature-256"] = "sha256=00"
		}), status: 400, body: bodyBadRequest},
		{name: "L5 API key twice", event: mutate(t, "apigw-request.json", func(m map[string]any) {
			obj(m, "multiValueHeaders")["x-api-key"] = []any{"k1", "k2"}
			obj(m, "headers")["x-api-key"] = "k2"
		}), status: 400, body: bodyBadRequest},
		{name: "L5 ALB with both header forms", event: mutate(t, "alb-lambda-target-request-headers-only.json", func(m map[string]any) {
			m["multiValueHeaders"] = map[string]any{"x-api-key": []any{"k"}}
		}), status: 400, body: bodyBadRequest, alb: true},
		{name: "L6 v2 signature with comma", event: mutate(t, "apigw-v2-request-no-authorizer.json", func(m map[string]any) {
			obj(m, "headers")["x-hub-signature-256"] = "sha256=00,sha256=11"
		}), status: 400, body: bodyBadRequest},
		{name: "L9 7 MB body over MaxBody", event: mutate(t, "apigw-request.json", func(m map[string]any) { m["body"] = big }),
			opts: Options{MaxBody: 6 << 20}, status: 413, body: bodyTooLong},
		{name: "L9 base64 body over MaxBody after decoding", event: mutate(t, "lambda-urls-request.json", func(m map[string]any) {
			m["isBase64Encoded"], m["body"] = true, base64.StdEncoding.EncodeToString(make([]byte, 1001))
		}), opts: Options{MaxBody: 1000}, status: 413, body: bodyTooLong},
		{name: "L9 ALB body over MaxBody", event: mutate(t, "alb-lambda-target-request-multivalue-headers.json", func(m map[string]any) {
			m["body"] = strings.Repeat("y", 101)
		}), opts: Options{MaxBody: 100}, status: 413, body: bodyTooLong, alb: true},
	}
	good := readEvent(t, "apigw-v2-request-no-authorizer.json")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got seen
			opts := tt.opts
			opts.Logger = slog.New(slog.DiscardHandler)
			a := New(recorder(&got, nil), opts)
			out, err := a.Invoke(context.Background(), tt.event)
			switch {
			case tt.wantErr:
				if !errors.Is(err, ErrUnknownEvent) {
					t.Fatalf("err = %v (out %.200s), want ErrUnknownEvent", err, out)
				}
			case err != nil:
				t.Fatalf("Invoke: %v", err)
			default:
				var r anyResponse
				if err := json.Unmarshal(out, &r); err != nil {
					t.Fatalf("response: %v: %.300s", err, out)
				}
				if r.StatusCode != tt.status || r.Body != tt.body {
					t.Errorf("response %d %s, want %d %s", r.StatusCode, r.Body, tt.status, tt.body)
				}
				ct := r.Headers["Content-Type"]
				if ct == "" && len(r.MultiValueHeaders["Content-Type"]) == 1 {
					ct = r.MultiValueHeaders["Content-Type"][0]
				}
				if ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				et := r.Headers["x-amzn-ErrorType"]
				if et == "" && len(r.MultiValueHeaders["x-amzn-ErrorType"]) == 1 {
					et = r.MultiValueHeaders["x-amzn-ErrorType"][0]
				}
				if et != "BadRequestException" {
					t.Errorf("x-amzn-ErrorType = %q", et)
				}
				if tt.alb != (r.StatusDescription != "") {
					t.Errorf("statusDescription = %q, ALB shape %v", r.StatusDescription, tt.alb)
				}
			}
			if got.Method != "" {
				t.Fatalf("handler was called with %s %s", got.Method, got.RequestURI)
			}
			// The function keeps serving.
			if r, _ := invoke(t, a, good); r.StatusCode != http.StatusCreated || got.Path != "/" {
				t.Errorf("next invoke: %d, handler saw %q", r.StatusCode, got.Path)
			}
		})
	}
}

func TestResponses(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	tests := []struct {
		name    string
		event   string
		method  string // override the event's method (v1 only)
		opts    Options
		handler http.HandlerFunc
		status  int
		body    []byte
		base64  bool
		header  map[string]string // from multiValueHeaders (v1) or headers; "" = absent
	}{
		{name: "nothing written", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {},
			status: 200, body: []byte{}, header: map[string]string{"Content-Type": ""}},
		{name: "content type sniffed", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<html><body>hi</body></html>")
		}, status: 200, body: []byte("<html><body>hi</body></html>"), header: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "binary by content type", event: "apigw-v2-request-no-authorizer.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "image/png")
			w.Write(png)
		}, status: 200, body: png, base64: true},
		{name: "valid UTF-8 but octet-stream", event: "lambda-urls-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			io.WriteString(w, "abc")
		}, status: 200, body: []byte("abc"), base64: true},
		{name: "invalid UTF-8 labelled text", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte{'a', 0xff, 'b'})
		}, status: 200, body: []byte{'a', 0xff, 'b'}, base64: true},
		{name: "gzip encoded JSON", event: "alb-lambda-target-request-multivalue-headers.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte("\x1f\x8b\x08"))
		}, status: 200, body: []byte("\x1f\x8b\x08"), base64: true, header: map[string]string{"Content-Encoding": "gzip"}},
		{name: "JSON with HTML characters stays text", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.api+json")
			io.WriteString(w, `{"a":"<b>&"}`)
		}, status: 200, body: []byte(`{"a":"<b>&"}`)},
		{name: "1xx dropped", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusAccepted)
		}, status: 202, body: []byte{}},
		{name: "header changes after WriteHeader ignored", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Before", "1")
			w.WriteHeader(http.StatusOK)
			w.Header().Set("X-After", "1")
		}, status: 200, body: []byte{}, header: map[string]string{"X-Before": "1", "X-After": ""}},
		{name: "hop-by-hop headers dropped", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close, X-Secret")
			w.Header().Set("X-Secret", "1")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("Transfer-Encoding", "chunked")
			w.Header().Set("Content-Length", "3")
			io.WriteString(w, "abc")
		}, status: 200, body: []byte("abc"), header: map[string]string{"Connection": "", "X-Secret": "", "Keep-Alive": "", "Transfer-Encoding": "", "Content-Length": ""}},
		{name: "204 refuses a body", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
			if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic("want ErrBodyNotAllowed")
			}
		}, status: 204, body: []byte{}},
		{name: "HEAD discards the body, keeps the length", event: "apigw-request.json", method: http.MethodHead, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}, status: 200, body: []byte{}, header: map[string]string{"Content-Length": "5"}},
		{name: "Flush buffers", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: 1\n\n")
			if err := http.NewResponseController(w).Flush(); err != nil {
				panic(err)
			}
			io.WriteString(w, "data: 2\n\n")
		}, status: 200, body: []byte("data: 1\n\ndata: 2\n\n")},
		{name: "L10 body over MaxResponse", event: "apigw-request.json", opts: Options{MaxResponse: 1024}, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write(make([]byte, 600))
			if _, err := w.Write(make([]byte, 600)); err == nil {
				panic("second write should fail")
			}
		}, status: 502, body: []byte(bodyInternalServer), header: map[string]string{"x-amzn-ErrorType": "InternalServerErrorException", "x-amzn-RequestId": "deef4878-7910-11e6-8f14-25afc3e9ae33"}},
		{name: "L10 document over MaxResponse after base64", event: "apigw-v2-request-no-authorizer.json", opts: Options{MaxResponse: 1024}, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "image/png")
			w.Write(make([]byte, 900)) // 1200 bytes once base64-encoded
		}, status: 502, body: []byte(bodyInternalServer)},
		{name: "default limit is 6 MiB", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write(bytes.Repeat([]byte("a"), 6<<20+1))
		}, status: 502, body: []byte(bodyInternalServer)},
		{name: "panic", event: "lambda-urls-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			panic("boom")
		}, status: 502, body: []byte(bodyInternalServer)},
		{name: "ErrAbortHandler", event: "alb-lambda-target-request-headers-only.json", handler: func(w http.ResponseWriter, r *http.Request) {
			panic(http.ErrAbortHandler)
		}, status: 502, body: []byte(bodyInternalServer)},
		{name: "invalid status code", event: "apigw-request.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(42)
		}, status: 502, body: []byte(bodyInternalServer)},
		{name: "ALB unknown status", event: "alb-lambda-target-request-headers-only.json", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(599)
		}, status: 599, body: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Logger = slog.New(slog.DiscardHandler)
			a := New(tt.handler, opts)
			ev := readEvent(t, tt.event)
			if tt.method != "" {
				ev = mutate(t, tt.event, func(m map[string]any) { m["httpMethod"] = tt.method })
			}
			r, doc := invoke(t, a, ev)
			if r.StatusCode != tt.status {
				t.Errorf("status = %d, want %d\n%.300s", r.StatusCode, tt.status, doc)
			}
			if got := r.body(t); !bytes.Equal(got, tt.body) {
				t.Errorf("body = %.100q, want %.100q", got, tt.body)
			}
			if r.IsBase64Encoded != tt.base64 {
				t.Errorf("isBase64Encoded = %v, want %v", r.IsBase64Encoded, tt.base64)
			}
			for k, want := range tt.header {
				got := strings.Join(r.MultiValueHeaders[k], ",")
				if got == "" {
					got = r.Headers[k]
				}
				if got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if len(doc) > a.opts.MaxResponse {
				t.Errorf("document is %d bytes, over %d", len(doc), a.opts.MaxResponse)
			}
			if tt.event == "alb-lambda-target-request-headers-only.json" && r.StatusDescription != statusDescription(tt.status) {
				t.Errorf("statusDescription = %q", r.StatusDescription)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	// The event from aws-lambda-go's cloudwatch_events_test.go (there is no
	// file for it in events/testdata).
	event := []byte(`{"version":"0","id":"fae0433b-7a0e-e383-7849-7e10153eaa47","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2023-06-16T10:30:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/drain"],"detail":{}}`)
	tests := []struct {
		name    string
		hook    func(context.Context) error
		wantErr bool
		runs    int
	}{
		{name: "no hook", runs: 0},
		{name: "hook runs", hook: func(context.Context) error { return nil }, runs: 1},
		{name: "hook error is the invocation error", hook: func(context.Context) error { return errors.New("redis down") }, wantErr: true, runs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := 0
			opts := quietOptions()
			if tt.hook != nil {
				opts.OnSchedule = func(ctx context.Context) error { runs++; return tt.hook(ctx) }
			}
			called := false
			a := New(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }), opts)
			out, err := a.Invoke(context.Background(), event)
			if (err != nil) != tt.wantErr || runs != tt.runs || called {
				t.Fatalf("out %s err %v runs %d handler called %v", out, err, runs, called)
			}
			if err == nil && string(out) != `{"ok":true}` {
				t.Errorf("out = %s", out)
			}
		})
	}
}

// TestReverseProxyBackend runs the samples through a real ReverseProxy to a
// loopback backend, asserting at both ends as Go's own proxy tests do.
func TestReverseProxyBackend(t *testing.T) {
	type hit struct {
		method, uri, xff, body, host string
	}
	hits := make(chan hit, 1)
	png := []byte("\x89PNG\r\n\x1a\nbinary\xff")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hits <- hit{r.Method, r.RequestURI, r.Header.Get("X-Forwarded-For"), string(b), r.Host}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Add("Set-Cookie", "s=1")
		w.Header().Add("Set-Cookie", "t=2")
		w.WriteHeader(http.StatusAccepted)
		w.Write(png)
	}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.URL.RawQuery = pr.In.URL.RawQuery // forwarded byte for byte
		pr.SetXForwarded()                       // X-Forwarded-For: RemoteAddr's IP only
	}}
	tests := []struct {
		event string
		want  hit
	}{
		{"apigw-request.json", hit{"POST", "/hello/world?name=me", "192.168.196.186", "{\r\n\t\"a\": 1\r\n}", ""}},
		{"apigw-v2-request-no-authorizer.json", hit{"GET", "/", "1.2.3.4", "", ""}},
		{"lambda-urls-request.json", hit{"POST", "/my/path?parameter1=value1&parameter1=value2&parameter2=value", "123.123.123.123", "Hello from client!", ""}},
		{"alb-lambda-target-request-headers-only.json", hit{"GET", "/?key=hello", "", "", ""}},
		{"alb-lambda-target-request-multivalue-headers.json", hit{"GET", "/?key=hello", "", "", ""}},
	}
	a := New(proxy, quietOptions())
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			r, doc := invoke(t, a, readEvent(t, tt.event))
			var got hit
			select {
			case got = <-hits:
			default:
				t.Fatalf("backend not reached: %s", doc)
			}
			tt.want.host = target.Host
			if got != tt.want {
				t.Errorf("backend saw %+v\nwant %+v", got, tt.want)
			}
			if r.StatusCode != http.StatusAccepted || !r.IsBase64Encoded || !bytes.Equal(r.body(t), png) {
				t.Errorf("response %d base64=%v %q", r.StatusCode, r.IsBase64Encoded, r.body(t))
			}
			cookies := r.Cookies
			if cookies == nil {
				cookies = r.MultiValueHeaders["Set-Cookie"]
			}
			if cookies == nil {
				cookies = []string{r.Headers["Set-Cookie"]}
			}
			if len(cookies) == 0 || cookies[len(cookies)-1] != "t=2" {
				t.Errorf("cookies = %q", cookies)
			}
		})
	}
}

func TestHandlerFunc(t *testing.T) {
	var got seen
	f := Handler(recorder(&got, nil), quietOptions())
	out, err := f(context.Background(), readEvent(t, "apigw-request.json"))
	if err != nil || !bytes.Contains(out, []byte(`"statusCode":201`)) || got.Path != "/hello/world" {
		t.Fatalf("out %s err %v path %q", out, err, got.Path)
	}
	if _, err := f(context.Background(), json.RawMessage(`{}`)); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("err = %v", err)
	}
}

func TestErrorRequestID(t *testing.T) {
	bad := func(name string) []byte {
		return mutate(t, name, func(m map[string]any) { m["httpMethod"] = "NOT A METHOD" })
	}
	tests := []struct {
		name  string
		event []byte
		want  string
	}{
		{"API Gateway id preferred", bad("apigw-request.json"), "deef4878-7910-11e6-8f14-25afc3e9ae33"},
		{"ALB falls back to the invocation id", bad("alb-lambda-target-request-headers-only.json"), "invocation-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "invocation-1"})
			out, err := New(http.NotFoundHandler(), quietOptions()).Invoke(ctx, tt.event)
			if err != nil {
				t.Fatal(err)
			}
			var r anyResponse
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatal(err)
			}
			if r.StatusCode != 400 || r.Headers["x-amzn-RequestId"] != tt.want {
				t.Errorf("got %d %q, want 400 %q", r.StatusCode, r.Headers["x-amzn-RequestId"], tt.want)
			}
		})
	}
}

// TestDeadlineMargin: the handler's context ends DeadlineMargin before the
// invocation's deadline, so a slow backend is answered by the gateway (504)
// while Lambda still waits for the function, rather than by a kill.
func TestDeadlineMargin(t *testing.T) {
	deadline := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		margin time.Duration
		ctxDL  bool
		want   time.Time // zero: no deadline
	}{
		{"default margin", 0, true, deadline.Add(-DefaultDeadlineMargin)},
		{"own margin", time.Second, true, deadline.Add(-time.Second)},
		{"negative leaves it", -1, true, deadline},
		{"no deadline, none added", 0, false, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got time.Time
			var ok bool
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got, ok = r.Context().Deadline() })
			opts := quietOptions()
			opts.DeadlineMargin = tt.margin
			ctx := context.Background()
			if tt.ctxDL {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, deadline)
				defer cancel()
			}
			if _, err := New(h, opts).Invoke(ctx, readEvent(t, "apigw-request.json")); err != nil {
				t.Fatal(err)
			}
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("deadline %v (%v), want %v", got, ok, tt.want)
			}
		})
	}
}
