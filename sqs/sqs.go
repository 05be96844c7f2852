// Package sqs is spool's Amazon SQS-compatible front: an http.Handler that speaks both wire
// protocols of the SQS API (AWS JSON 1.0, `X-Amz-Target: AmazonSQS.<Action>`, and the older
// form-encoded query protocol with XML answers) and translates every action into engine
// calls on spool's queues and jobs, the same ones the HTTP API and the beanstalkd front
// serve. It holds no job rules: a receipt handle is a lease, a visibility timeout the
// lease's length, a redrive policy the queue's dead-letter queue and attempts.
//
// Queue URLs are http://<host>/<account>/<queue> with the fixed account id Account
// (000000000000); the host is the one the client called. docs/sqs.md lists the actions and
// the mapping.
package sqs

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/budget"
)

// Account is the account id in every queue URL and ARN.
const Account = "000000000000"

// Engine is what the front needs of spool's engine (*engine.Engine).
type Engine interface {
	Enqueue(ctx context.Context, reqs []engine.EnqueueRequest) ([]engine.EnqueueResult, error)
	Reserve(ctx context.Context, req engine.ReserveRequest) (*engine.ReserveResult, error)
	AckBatch(ctx context.Context, reqs []engine.AckRequest) ([]engine.AckResult, error)
	Touch(ctx context.Context, id uint64, token string, lease time.Duration) (*engine.Job, error)
	Fail(ctx context.Context, id uint64, token string, req engine.FailRequest) (*engine.Job, error)
	Queue(ctx context.Context, name string) (*engine.QueueInfo, error)
	QueueConfig(ctx context.Context, name string) (*engine.QueueInfo, error)
	QueueNames() []string
	PutQueue(ctx context.Context, name string, s engine.QueueSettings) (*engine.QueueInfo, error)
	DeleteQueue(ctx context.Context, name string) error
	Purge(ctx context.Context, name string, st engine.State) (int, error)
	SetDeadLetter(ctx context.Context, name, target string) (*engine.QueueInfo, error)
	DeadLetterSources(name string) []string
	SetQueueAttributes(ctx context.Context, name string, set map[string]string, remove []string) (*engine.QueueInfo, error)
}

// Credentials maps an access key id to its secret key, for SigV4 verification.
type Credentials interface {
	SecretKey(accessKeyID string) (secret string, ok bool)
}

// StaticCredentials is a fixed set of access keys: access key id -> secret key.
type StaticCredentials map[string]string

// SecretKey returns the secret of accessKeyID.
func (c StaticCredentials) SecretKey(accessKeyID string) (string, bool) {
	s, ok := c[accessKeyID]
	return s, ok
}

// Options configure a Handler. Zero values take the defaults noted.
type Options struct {
	// Region appears in queue ARNs. Default "us-east-1".
	Region string
	// Credentials, when set, make every request carry a valid SigV4 signature by one of
	// its keys; when nil, requests are accepted without checking their signature.
	Credentials Credentials
	// MaxMessageSize caps a message (body and attributes) in bytes; a queue's
	// MaximumMessageSize may only lower it. Default 262144, as SQS; at most the engine's
	// payload limit is useful.
	MaxMessageSize int
	// Logger receives the front's logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Budget, when set, bounds the memory that request bodies hold at once (shared with
	// the other fronts): their bytes are charged as they arrive, and a request over it gets
	// a retryable 503 ServiceUnavailable.
	Budget *budget.Budget
}

// bodyCost is what a byte of a request body costs until the request is answered: the body
// and its decoded form.
const bodyCost = 2

// Handler serves the SQS API.
type Handler struct {
	eng  Engine
	opt  Options
	log  *slog.Logger
	move *moveTasks

	// draining is closed by Drain: long polls answer at once.
	draining  chan struct{}
	drainOnce sync.Once
}

// New returns a Handler over eng.
func New(eng Engine, opt Options) *Handler {
	if opt.Region == "" {
		opt.Region = "us-east-1"
	}
	if opt.MaxMessageSize <= 0 {
		opt.MaxMessageSize = defaultMaxMessageSize
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	h := &Handler{eng: eng, opt: opt, log: opt.Logger, draining: make(chan struct{})}
	h.move = newMoveTasks(h)
	return h
}

// Drain ends waiting ReceiveMessage calls (they answer with what they have) and makes new
// ones answer at once; call it before shutting the HTTP server down.
func (h *Handler) Drain() {
	h.drainOnce.Do(func() { close(h.draining) })
}

// Close stops the running message move tasks and waits for them.
func (h *Handler) Close() { h.move.close() }

// ServeHTTP answers one SQS request in the protocol it came in.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.opt.Budget != nil && r.Body != nil {
		defer budget.ChargeBody(h.opt.Budget, r, bodyCost)()
	}
	req, p, err := h.decode(w, r)
	if err != nil {
		h.writeErr(w, p, err)
		return
	}
	out, err := h.do(r.Context(), req)
	if err != nil {
		if e := asAPIError(err); e.status >= 500 && r.Context().Err() == nil {
			h.log.Warn("sqs request failed", "action", req.action, "err", err)
		}
		h.writeErr(w, p, err)
		return
	}
	p.write(w, req.action, out)
}

// do runs one action.
func (h *Handler) do(ctx context.Context, req *request) (any, error) {
	switch req.action {
	case "CreateQueue":
		return h.createQueue(ctx, req)
	case "GetQueueUrl":
		return h.getQueueURL(ctx, req)
	case "ListQueues":
		return h.listQueues(ctx, req)
	case "DeleteQueue":
		return h.deleteQueue(ctx, req)
	case "PurgeQueue":
		return h.purgeQueue(ctx, req)
	case "GetQueueAttributes":
		return h.getQueueAttributes(ctx, req)
	case "SetQueueAttributes":
		return h.setQueueAttributes(ctx, req)
	case "ListDeadLetterSourceQueues":
		return h.listDeadLetterSourceQueues(ctx, req)
	case "TagQueue":
		return h.tagQueue(ctx, req)
	case "UntagQueue":
		return h.untagQueue(ctx, req)
	case "ListQueueTags":
		return h.listQueueTags(ctx, req)
	case "SendMessage":
		return h.sendMessage(ctx, req)
	case "SendMessageBatch":
		return h.sendMessageBatch(ctx, req)
	case "ReceiveMessage":
		return h.receiveMessage(ctx, req)
	case "DeleteMessage":
		return h.deleteMessage(ctx, req)
	case "DeleteMessageBatch":
		return h.deleteMessageBatch(ctx, req)
	case "ChangeMessageVisibility":
		return h.changeMessageVisibility(ctx, req)
	case "ChangeMessageVisibilityBatch":
		return h.changeMessageVisibilityBatch(ctx, req)
	case "StartMessageMoveTask":
		return h.startMessageMoveTask(ctx, req)
	case "ListMessageMoveTasks":
		return h.listMessageMoveTasks(ctx, req)
	case "CancelMessageMoveTask":
		return h.cancelMessageMoveTask(ctx, req)
	case "AddPermission", "RemovePermission":
		return nil, errorf(errUnsupported, "%s is not supported: spool has no queue policies", req.action)
	}
	return nil, errorf(errInvalidAction, "unknown action %q", req.action)
}
