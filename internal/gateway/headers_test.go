package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/lambda"
)

// API Gateway's own headers (docs/deviations.md), held by golden header
// lists for both API flavours, behind serve and inside Lambda.

var (
	uuidRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	shortRE = regexp.MustCompile(`^[A-Za-z0-9_-]{14}[AEIMQUYcgkosw048]=$`) // base64url of 11 bytes, padded
)

// headerShape prints h as sorted "name: value" lines with lower-case names,
// ids replaced by their shape (after checking it) and Date by <date>.
func headerShape(t *testing.T, h map[string][]string) string {
	t.Helper()
	var lines []string
	for k, vs := range h {
		name := strings.ToLower(k)
		for _, v := range vs {
			switch name {
			case "date":
				v = "<date>"
			case "x-amzn-requestid":
				if !uuidRE.MatchString(v) {
					t.Errorf("x-amzn-RequestId %q is not a UUID", v)
				}
				v = "<uuid>"
			case "x-amz-apigw-id", "apigw-requestid":
				if !shortRE.MatchString(v) {
					t.Errorf("%s %q is not a short id", k, v)
				}
				v = "<short>"
			}
			lines = append(lines, name+": "+v)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

const headerYAML = `
aws: {region: us-east-1, account_id: "123456789012", api_id: abc123}
stage: prod
resource_policy:
  Version: "2012-10-17"
  Statement:
    - {Effect: Allow, Principal: "*", Action: execute-api:Invoke, Resource: execute-api:/*/*/ok}
routes:
  - {path: /ok, methods: [GET, HEAD], target: "{T}/ok"}
  - {path: /denied, methods: [GET, HEAD], target: "{T}/denied"}
`

// headerBackend answers with a fixed header set, so that the golden lists
// show only what the gateway adds.
func headerBackend(t *testing.T) *backend {
	return newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Date", "Mon, 07 Dec 2026 00:00:00 GMT")
		io.WriteString(w, "ok")
	})
}

type headerCase struct {
	name, method, path string
	status             int
	body               string
	rest, http         string // golden header lists per flavour
}

var headerCases = []headerCase{
	{name: "forwarded", method: "GET", path: "/ok", status: 200, body: "ok",
		rest: "content-length: 2\ncontent-type: text/plain\ndate: <date>\nx-amz-apigw-id: <short>\nx-amzn-requestid: <uuid>",
		http: "apigw-requestid: <short>\ncontent-length: 2\ncontent-type: text/plain\ndate: <date>"},
	{name: "no route", method: "GET", path: "/nope", status: -1, body: "",
		rest: "content-length: 42\ncontent-type: application/json\ndate: <date>\nx-amz-apigw-id: <short>\nx-amzn-errortype: MissingAuthenticationTokenException\nx-amzn-requestid: <uuid>",
		http: "apigw-requestid: <short>\ncontent-length: 23\ncontent-type: application/json\ndate: <date>"},
	{name: "HEAD no route", method: "HEAD", path: "/nope", status: -1, body: "",
		rest: "content-length: 0\ncontent-type: application/json\ndate: <date>\nx-amz-apigw-id: <short>\nx-amzn-errortype: MissingAuthenticationTokenException\nx-amzn-requestid: <uuid>",
		http: "apigw-requestid: <short>\ncontent-length: 0\ncontent-type: application/json\ndate: <date>"},
	{name: "policy denial", method: "GET", path: "/denied", status: 403,
		body: `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:********9012:abc123/prod/GET/denied"}`,
		rest: "content-length: 157\ncontent-type: application/json\ndate: <date>\nx-amz-apigw-id: <short>\nx-amzn-errortype: AccessDeniedException\nx-amzn-requestid: <uuid>",
		http: "apigw-requestid: <short>\ncontent-length: 157\ncontent-type: application/json\ndate: <date>"},
	{name: "HEAD policy denial", method: "HEAD", path: "/denied", status: 403, body: "",
		rest: "content-length: 0\ncontent-type: application/json\ndate: <date>\nx-amz-apigw-id: <short>\nx-amzn-errortype: AccessDeniedException\nx-amzn-requestid: <uuid>",
		http: "apigw-requestid: <short>\ncontent-length: 0\ncontent-type: application/json\ndate: <date>"},
}

// want returns the YAML, golden header list, status and body of the case
// in one API flavour (status -1: the flavour's no-route answer).
func (c headerCase) want(api string) (yaml, golden string, status int, body string) {
	yaml, golden, status, body = headerYAML, c.rest, c.status, c.body
	if api == "http" {
		yaml, golden = "api: http\n"+headerYAML, c.http
	}
	if status == -1 {
		status, body = 403, `{"message":"Missing Authentication Token"}`
		if api == "http" {
			status, body = 404, `{"message":"Not Found"}`
		}
	}
	if c.method == "HEAD" {
		body = ""
	}
	return yaml, golden, status, body
}

func TestAPIGatewayHeadersServe(t *testing.T) {
	for _, api := range []string{"rest", "http"} {
		for _, c := range headerCases {
			t.Run(api+"/"+c.name, func(t *testing.T) {
				yaml, golden, status, body := c.want(api)
				base, _ := gatewayFor(t, yaml, headerBackend(t).URL)
				resp, got := raw(t, base, c.method+" "+c.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
				wantEq(t, "status", resp.StatusCode, status)
				wantEq(t, "body", got, body)
				if shape := headerShape(t, resp.Header); shape != golden {
					t.Errorf("headers:\n%s\nwant:\n%s", shape, golden)
				}
			})
		}
	}
}

// lambdaAnswer is an adapter's response document, either payload format.
type lambdaAnswer struct {
	StatusCode        int                 `json:"statusCode"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Body              string              `json:"body"`
}

func invoke(t *testing.T, a *lambda.Adapter, event string) lambdaAnswer {
	t.Helper()
	out, err := a.Invoke(context.Background(), []byte(event))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var ans lambdaAnswer
	if err := json.Unmarshal(out, &ans); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	return ans
}

func (ans lambdaAnswer) header() map[string][]string {
	h := map[string][]string{}
	for k, vs := range ans.MultiValueHeaders {
		h[k] = vs
	}
	for k, v := range ans.Headers {
		if _, ok := h[k]; !ok {
			h[k] = []string{v}
		}
	}
	return h
}

// v1Event is a REST API event; v2Event an HTTP API payload 2.0 one.
func v1Event(method, path string) string {
	return `{"httpMethod":"` + method + `","path":"` + path + `","headers":{"Host":"abc123.execute-api.us-east-1.amazonaws.com"},` +
		`"requestContext":{"stage":"prod","requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef","identity":{"sourceIp":"203.0.113.7"}}}`
}

func v2Event(method, path string) string {
	return `{"version":"2.0","rawPath":"` + path + `","headers":{"host":"abc123.execute-api.us-east-1.amazonaws.com"},` +
		`"requestContext":{"stage":"$default","requestId":"JKJaXmPLvHcESHA=","domainName":"abc123.execute-api.us-east-1.amazonaws.com",` +
		`"http":{"method":"` + method + `","path":"` + path + `","sourceIp":"203.0.113.7"}}}`
}

func TestAPIGatewayHeadersLambda(t *testing.T) {
	for _, api := range []string{"rest", "http"} {
		for _, c := range headerCases {
			t.Run(api+"/"+c.name, func(t *testing.T) {
				yaml, golden, status, body := c.want(api)
				g, _ := buildFor(t, yaml, headerBackend(t).URL, Deps{}, nil)
				event := v1Event(c.method, c.path)
				if api == "http" {
					event = v2Event(c.method, c.path)
				}
				ans := invoke(t, lambda.New(g, lambda.Options{}), event)
				wantEq(t, "status", ans.StatusCode, status)
				wantEq(t, "body", ans.Body, body)
				if c.method != "HEAD" {
					// AWS frames the answer: the adapter leaves
					// Content-Length out except for HEAD.
					golden = dropLine(golden, "content-length: ")
				}
				if shape := headerShape(t, ans.header()); shape != golden {
					t.Errorf("headers:\n%s\nwant:\n%s", shape, golden)
				}
			})
		}
	}
}

func dropLine(s, prefix string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, prefix) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestLambdaForwardedHeaders: inside Lambda the target learns the
// client's protocol and address from the event, and always gets an
// X-Forwarded-For.
func TestLambdaForwardedHeaders(t *testing.T) {
	b := headerBackend(t)
	g, _ := buildFor(t, headerYAML, b.URL, Deps{}, nil)
	alb := func(headers string) string {
		return `{"httpMethod":"GET","path":"/ok","headers":{` + headers + `},` +
			`"requestContext":{"elb":{"targetGroupArn":"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/lambda/abc"}}}`
	}
	url := `{"version":"2.0","rawPath":"/ok","headers":{"host":"x.lambda-url.us-east-1.on.aws","x-forwarded-proto":"https"},` +
		`"requestContext":{"requestId":"r","domainName":"x.lambda-url.us-east-1.on.aws","http":{"method":"GET","path":"/ok","sourceIp":"198.51.100.9"}}}`
	noSource := strings.Replace(v1Event("GET", "/ok"), `"sourceIp":"203.0.113.7"`, `"sourceIp":"test-invoke-source-ip"`, 1)
	cases := []struct {
		name, event string
		opts        lambda.Options
		proto, xff  string
	}{
		{"REST", v1Event("GET", "/ok"), lambda.Options{}, "https", "203.0.113.7"},
		{"HTTP API 2.0", v2Event("GET", "/ok"), lambda.Options{}, "https", "203.0.113.7"},
		{"Function URL", url, lambda.Options{}, "https", "198.51.100.9"},
		{"ALB HTTPS listener", alb(`"x-forwarded-proto":"https","x-forwarded-for":"192.0.2.1"`), lambda.Options{}, "https", "unknown"},
		{"ALB HTTP listener", alb(`"x-forwarded-proto":"http","x-forwarded-for":"192.0.2.1"`), lambda.Options{}, "http", "unknown"},
		{"console test event: no address", noSource, lambda.Options{}, "https", "unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ans := invoke(t, lambda.New(g, c.opts), c.event)
			wantEq(t, "status", ans.StatusCode, 200)
			got := b.last(t).Header
			wantEq(t, "X-Forwarded-Proto", got.Values("X-Forwarded-Proto"), []string{c.proto})
			wantEq(t, "X-Forwarded-For", got.Values("X-Forwarded-For"), []string{c.xff})
		})
	}
}

// TestShortIDs: short ids are unique, in AWS's shape, and do not count
// up visibly.
func TestShortIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := newShortID()
		if !shortRE.MatchString(id) || seen[id] {
			t.Fatalf("short id %q: bad shape or repeated", id)
		}
		seen[id] = true
	}
	a, b := newShortID(), newShortID()
	if a[:8] == b[:8] {
		t.Errorf("consecutive ids %q and %q share a prefix: the counter shows", a, b)
	}
}

// BenchmarkIDs: the per-request cost of the ids (one allocation per
// request in either flavour).
func BenchmarkIDs(b *testing.B) {
	for _, api := range []config.API{config.APIREST, config.APIHTTP} {
		b.Run(string(api), func(b *testing.B) {
			g := &Gateway{api: api}
			var c call
			b.ReportAllocs()
			for b.Loop() {
				g.setIDs(&c)
			}
		})
	}
}

// TestIDEncodings: the hand-written encoders write what encoding/base64
// and encoding/hex write for the same bytes.
func TestIDEncodings(t *testing.T) {
	for range 1000 {
		var b [shortIDLen]byte
		putShortID(b[:])
		raw, err := base64.URLEncoding.DecodeString(string(b[:]))
		if err != nil || len(raw) != 11 || base64.URLEncoding.EncodeToString(raw) != string(b[:]) || !bytes.Equal(raw[8:], shortIDs.tag[:]) {
			t.Fatalf("short id %q: not the base64 of 8 bytes and the tag %x (%v)", b, shortIDs.tag, err)
		}
		id := newRequestID()
		u, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
		if err != nil || len(u) != 16 || hex.EncodeToString(u) != strings.ReplaceAll(id, "-", "") {
			t.Fatalf("uuid %q: not hex (%v)", id, err)
		}
	}
}
