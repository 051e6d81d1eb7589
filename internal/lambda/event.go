package lambda

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Kind names the shape of an event, which is also the shape of its response.
type Kind string

const (
	// KindV1 is payload format 1.0: API Gateway REST proxy integrations and
	// HTTP APIs configured with payloadFormatVersion "1.0".
	KindV1 Kind = "v1"
	// KindV2 is payload format 2.0, the HTTP API default.
	KindV2 Kind = "v2"
	// KindURL is a Lambda Function URL: the 2.0 shape on a *.lambda-url.* domain.
	KindURL Kind = "url"
	// KindALB is an Application Load Balancer target group event.
	KindALB Kind = "alb"
	// KindSchedule is an EventBridge scheduled event; it reaches
	// Options.OnSchedule, never the http.Handler.
	KindSchedule Kind = "schedule"
)

// Source is what an event says about a request's origin, beyond the
// *http.Request itself.
type Source struct {
	Kind Kind
	// ClientIP is the address AWS saw the request come from (v1:
	// requestContext.identity.sourceIp, v2 and URL: requestContext.http.sourceIp),
	// unmapped from IPv4-in-IPv6. It is the zero Addr when the event carries
	// none: always for ALB (the client is only in X-Forwarded-For, which the
	// gateway reads under its trusted-proxy rules) and for malformed events.
	ClientIP netip.Addr
	// Stage is requestContext.stage ("" for ALB, "$default" for Function URLs).
	Stage string
	// RequestID is API Gateway's requestContext.requestId ("" for ALB).
	RequestID string
	// DomainName is requestContext.domainName ("" for ALB).
	DomainName string
}

// event is the union of the four HTTP event shapes and the scheduled event.
// One struct and one json.Unmarshal keep decoding cheap and let detection look
// at every distinguishing field at once. Pointers mark fields whose absence
// matters.
type event struct {
	Version  string `json:"version"`
	RouteKey string `json:"routeKey"`

	// v1 and ALB
	HTTPMethod                      string              `json:"httpMethod"`
	Path                            *string             `json:"path"`
	Headers                         map[string]string   `json:"headers"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters"`

	// v2 and Function URL
	RawPath        *string  `json:"rawPath"`
	RawQueryString *string  `json:"rawQueryString"`
	Cookies        []string `json:"cookies"`

	Body            *string `json:"body"`
	IsBase64Encoded bool    `json:"isBase64Encoded"`

	RequestContext *requestContext `json:"requestContext"`

	// Authorizer events look like requests but must never be served as one.
	Type      string `json:"type"`
	MethodArn string `json:"methodArn"`
	RouteArn  string `json:"routeArn"`

	// EventBridge
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`

	kind Kind `json:"-"`
	// typeErr is a field of the wrong JSON type in an otherwise recognised
	// event; it turns into a 400 in the event's shape.
	typeErr error `json:"-"`
}

type requestContext struct {
	ELB *struct {
		TargetGroupArn string `json:"targetGroupArn"`
	} `json:"elb"`
	Identity *struct {
		SourceIP string `json:"sourceIp"`
	} `json:"identity"`
	HTTP *struct {
		Method   string `json:"method"`
		Path     string `json:"path"`
		SourceIP string `json:"sourceIp"`
	} `json:"http"`
	Stage      string `json:"stage"`
	RequestID  string `json:"requestId"`
	DomainName string `json:"domainName"`
	EventType  string `json:"eventType"`    // WebSocket APIs
	ConnID     string `json:"connectionId"` // WebSocket APIs
}

// decode parses and classifies a payload. It returns an error only when the
// payload is not a recognisable event; a recognisable event with a field of
// the wrong type is returned with typeErr set so it can be answered 400 in its
// own shape.
func decode(payload []byte) (*event, error) {
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrUnknownEvent)
	}
	ev := new(event)
	if err := json.Unmarshal(payload, ev); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("%w: %v", ErrUnknownEvent, err)
		}
		// encoding/json keeps filling the other fields after a type error,
		// so the shape is usually still known.
		ev.typeErr = err
	}
	ev.kind = ev.detect()
	if ev.kind == "" {
		if ev.typeErr != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnknownEvent, ev.typeErr)
		}
		return nil, ErrUnknownEvent
	}
	return ev, nil
}

// detect tests the most specific marker first: the ALB marker (an ALB
// event also has a method), then payload 2.0 (its version field), then
// anything with an HTTP method (REST and payload 1.0). Authorizer and
// WebSocket events also carry methods and versions; serving them as requests
// would run the gateway on something that is not a client request, so they
// are unknown.
func (ev *event) detect() Kind {
	rc := ev.RequestContext
	switch {
	case ev.Type != "" || ev.MethodArn != "" || ev.RouteArn != "":
		return "" // REQUEST/TOKEN authorizer
	case rc != nil && (rc.EventType != "" || rc.ConnID != ""):
		return "" // WebSocket API
	case rc != nil && rc.ELB != nil:
		return KindALB
	case ev.Version == "2.0":
		if rc != nil && strings.Contains(rc.DomainName, ".lambda-url.") {
			return KindURL
		}
		return KindV2
	case ev.HTTPMethod != "" || ev.Version == "1.0":
		return KindV1
	case ev.Source == "aws.events":
		return KindSchedule
	}
	return ""
}

func (ev *event) source() Source {
	s := Source{Kind: ev.kind}
	rc := ev.RequestContext
	if rc == nil {
		return s
	}
	s.Stage, s.RequestID, s.DomainName = rc.Stage, rc.RequestID, rc.DomainName
	var ip string
	switch ev.kind {
	case KindV1:
		if rc.Identity != nil {
			ip = rc.Identity.SourceIP
		}
	case KindV2, KindURL:
		if rc.HTTP != nil {
			ip = rc.HTTP.SourceIP
		}
	}
	// A zone ("fe80::1%eth0") has no meaning for a client on the internet and
	// would not survive policy matching; such an address counts as unknown.
	if a, err := netip.ParseAddr(ip); err == nil && a.Zone() == "" {
		s.ClientIP = a.Unmap()
	}
	return s
}
