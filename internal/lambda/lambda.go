// Package lambda serves AWS Lambda events through an ordinary http.Handler,
// so the gateway never knows whether it runs behind net/http or inside a
// Lambda function.
//
// One adapter accepts every event drawbridge can be invoked with: API Gateway
// REST and HTTP API payload 1.0 ("v1"), HTTP API payload 2.0 ("v2"), Lambda
// Function URLs and Application Load Balancer targets, plus EventBridge
// scheduled events, which run Options.OnSchedule instead of the handler. Each
// HTTP event becomes one *http.Request shaped as net/http's server would have
// built it, the handler runs against an in-memory bounded ResponseWriter, and
// the result goes back in the shape of the event that came in.
//
// Trust: only the fields AWS itself fills are trusted for the client address
// (requestContext.identity.sourceIp for v1, requestContext.http.sourceIp for
// v2 and Function URLs). API Gateway's own verdicts, such as
// requestContext.identity.apiKey, are never turned into headers: drawbridge's
// guards run again inside the function and must see only what the client sent.
package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	awslambda "github.com/aws/aws-lambda-go/lambda"
)

// Defaults for Options' zero values. They are AWS's own limits, so a request
// or response that API Gateway would carry is never refused here first.
const (
	// DefaultMaxBody is API Gateway's request payload limit (10 MiB).
	DefaultMaxBody = 10 << 20
	// DefaultMaxResponse is Lambda's synchronous response payload limit
	// (6 MB, counted by AWS as 6 MiB of serialized JSON).
	DefaultMaxResponse = 6 << 20
	// DefaultDeadlineMargin is kept back from the invocation's deadline.
	DefaultDeadlineMargin = 100 * time.Millisecond
)

// Options configure an Adapter. The zero value is ready to use.
type Options struct {
	// MaxBody bounds a request body after base64 decoding; larger bodies are
	// answered 413 {"message":"Request Too Long"} without calling the handler.
	// Zero means DefaultMaxBody.
	MaxBody int64

	// MaxResponse bounds the serialized response document handed back to
	// Lambda (body after base64, plus headers). A bigger one could not be
	// returned by Lambda anyway, so it is replaced by a 502
	// {"message": "Internal server error"}, which is what API Gateway REST
	// answers when a function's response is unusable. Zero means
	// DefaultMaxResponse.
	MaxResponse int

	// ALBPeer is the RemoteAddr given to requests from ALB events, which carry
	// no source address of their own: the client is only named in
	// X-Forwarded-For, which is left in the headers. Empty (the default) leaves
	// RemoteAddr empty, so the client is unknown and IP-restricted routes deny.
	// Set it to an address listed in the gateway's client_ip.trusted_proxies
	// (for example one inside the ALB's subnets) to make the gateway take the
	// right-most untrusted X-Forwarded-For entry, exactly as behind any other
	// trusted proxy. Written as an IP without port; the adapter adds ":0".
	ALBPeer string

	// SingleValueHeaders names headers that carry credentials or signatures
	// and must reach the handler as exactly one value. A v1 or ALB event with
	// several values for one of them, or a v2 event whose value contains a
	// comma (HTTP API joins duplicates with ","), is answered 400 instead of
	// letting the handler pick one part. nil means DefaultSingleValueHeaders;
	// an empty non-nil slice disables the check. List only headers whose
	// legitimate values never contain a comma (Stripe-Signature and
	// Authorization do, so they are not in the default list).
	SingleValueHeaders []string

	// DeadlineMargin is how long before the invocation's deadline the
	// request's context ends. A backend slower than the function's timeout
	// then ends in the gateway's own 504 {"message":"Endpoint request timed
	// out"}, answered while the function still runs, instead of Lambda
	// killing the function and API Gateway answering 502 (the original
	// Python forwarder's behaviour,
	// docs/lambda.md#drop-in-mode-the-original-python-forwarder). Zero means
	// DefaultDeadlineMargin; negative leaves the deadline alone.
	DeadlineMargin time.Duration

	// OnSchedule runs for an EventBridge scheduled event (source aws.events),
	// for instance to drain the async delivery queue. nil answers such events
	// with {"ok":true} and does nothing. Its error becomes the invocation's
	// error, so EventBridge's retry policy applies.
	OnSchedule func(ctx context.Context) error

	// Logger receives decode failures, handler panics and oversize responses.
	// nil means slog.Default().
	Logger *slog.Logger
}

// DefaultSingleValueHeaders are the credential and signature headers whose
// legitimate values never contain a comma.
var DefaultSingleValueHeaders = []string{
	"X-Api-Key",
	"X-Hub-Signature",
	"X-Hub-Signature-256",
	"X-Gitlab-Token",
	"X-Slack-Signature",
	"X-Slack-Request-Timestamp",
}

// ErrUnknownEvent is returned (as the invocation's error) for payloads that
// are not an HTTP event drawbridge serves or a scheduled event. There is no
// response shape to answer in, so Lambda reports a function error instead;
// the function itself keeps serving.
var ErrUnknownEvent = errors.New("lambda: unknown event shape")

// Adapter turns Lambda invocations into calls of an http.Handler. It
// implements lambda.Handler from aws-lambda-go, so the payload reaches it as
// bytes without a reflection-driven decode and the response leaves as bytes.
// An Adapter is safe for concurrent use, though Lambda invokes one at a time.
type Adapter struct {
	h            http.Handler
	opts         Options
	log          *slog.Logger
	singleValues []string // canonical header names
}

// New returns an Adapter serving events through h.
func New(h http.Handler, opts Options) *Adapter {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.MaxResponse <= 0 {
		opts.MaxResponse = DefaultMaxResponse
	}
	if opts.DeadlineMargin == 0 {
		opts.DeadlineMargin = DefaultDeadlineMargin
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	sv := opts.SingleValueHeaders
	if sv == nil {
		sv = DefaultSingleValueHeaders
	}
	canon := make([]string, len(sv))
	for i, name := range sv {
		canon[i] = http.CanonicalHeaderKey(name)
	}
	return &Adapter{h: h, opts: opts, log: log, singleValues: canon}
}

// Handler returns h wrapped as a function of raw JSON, for callers that want
// the plain function form (lambda.Start accepts it, as do tests).
func Handler(h http.Handler, opts Options) func(ctx context.Context, event json.RawMessage) (json.RawMessage, error) {
	a := New(h, opts)
	return func(ctx context.Context, event json.RawMessage) (json.RawMessage, error) {
		return a.Invoke(ctx, event)
	}
}

// Start serves Lambda invocations with h until the process ends. Build the
// binary with -tags lambda.norpc: the provided.al2023 runtime needs no RPC
// shim, and leaving it out saves size and init time.
// It hands aws-lambda-go the Adapter itself (a lambda.Handler), so payloads
// are passed as bytes rather than decoded and re-encoded by reflection.
func Start(h http.Handler, opts Options) {
	awslambda.Start(New(h, opts))
}

// Invoke serves one event. It never panics: a payload that is no event at all
// returns ErrUnknownEvent, a malformed HTTP event gets a 400 or 413 in its own
// shape, and a panicking handler gets a 502, so the execution environment stays
// warm for the next invocation.
func (a *Adapter) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	ev, err := decode(payload)
	if err != nil {
		a.log.ErrorContext(ctx, "lambda: event rejected", "error", err, "bytes", len(payload))
		return nil, err
	}
	if ev.kind == KindSchedule {
		return a.schedule(ctx)
	}
	src := ev.source()
	if dl, ok := ctx.Deadline(); ok && a.opts.DeadlineMargin > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-a.opts.DeadlineMargin))
		defer cancel()
	}
	ctx = context.WithValue(ctx, eventKey{}, payload)
	ctx = context.WithValue(ctx, sourceKey{}, src)
	req, rerr := a.request(ctx, ev)
	if rerr != nil {
		a.log.WarnContext(ctx, "lambda: bad request event", "kind", ev.kind, "status", rerr.status, "error", rerr.cause)
		return a.encode(ctx, ev, rerr.response(requestID(ctx, ev)))
	}
	return a.encode(ctx, ev, a.serve(ctx, req))
}

func (a *Adapter) schedule(ctx context.Context) ([]byte, error) {
	if a.opts.OnSchedule != nil {
		if err := a.opts.OnSchedule(ctx); err != nil {
			a.log.ErrorContext(ctx, "lambda: scheduled run failed", "error", err)
			return nil, fmt.Errorf("scheduled run: %w", err)
		}
	}
	return []byte(`{"ok":true}`), nil
}

type eventKey struct{}
type sourceKey struct{}

// EventFromContext returns the raw event payload a request was built from,
// for code that needs a field the adapter does not map. The bytes must not be
// modified.
func EventFromContext(ctx context.Context) ([]byte, bool) {
	b, ok := ctx.Value(eventKey{}).([]byte)
	return b, ok
}

// SourceFromContext returns what the adapter knows about where a request came
// from. It is present on every request built from an event.
func SourceFromContext(ctx context.Context) (Source, bool) {
	s, ok := ctx.Value(sourceKey{}).(Source)
	return s, ok
}
