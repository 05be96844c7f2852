package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/natsd"
	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/webhook"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// node is an engine and a webhook service over a real embedded JetStream.
type node struct {
	eng *engine.Engine
	svc *webhook.Service
}

func start(t *testing.T, cfg webhook.Config) *node {
	t.Helper()
	ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := natsd.Connect(ns, "webhook-test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eng, err := engine.Open(ctx, nc, engine.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = quiet
	svc, err := webhook.Open(ctx, nc, eng, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); eng.Close(); nc.Close() })
	return &node{eng, svc}
}

// receiver is a webhook endpoint that records what it gets; answer decides the status.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	answer atomic.Int32
}

type received struct {
	header http.Header
	body   []byte
	d      spool.WebhookDelivery
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.answer.Store(http.StatusNoContent)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var d spool.WebhookDelivery
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("delivery body %s: %v", b, err)
		}
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), b, d})
		r.mu.Unlock()
		w.WriteHeader(int(r.answer.Load()))
	}))
	t.Cleanup(r.Close)
	return r
}

// wait waits until the receiver has n requests and returns them.
func (r *receiver) wait(t *testing.T, n int) []received {
	t.Helper()
	var out []received
	spooltest.Eventually(t, 20*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.got) < n {
			return fmt.Errorf("%d deliveries, want %d", len(r.got), n)
		}
		out = append([]received(nil), r.got...)
		return nil
	})
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func enqueue(t *testing.T, e *engine.Engine, r engine.EnqueueRequest) uint64 {
	t.Helper()
	res, err := e.Enqueue(ctxT(t), []engine.EnqueueRequest{r})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	return res[0].Job.ID
}

func reserve(t *testing.T, e *engine.Engine, queue string) engine.Reserved {
	t.Helper()
	res, err := e.Reserve(ctxT(t), engine.ReserveRequest{Queues: []string{queue}, Wait: 5 * time.Second})
	if err != nil || len(res.Jobs) != 1 {
		t.Fatalf("reserve %s: %v %v", queue, res, err)
	}
	return res.Jobs[0]
}

// A hook on a queue and kinds gets those events only, signed with its secret, with the
// job's result.
func TestHookDelivers(t *testing.T) {
	t.Parallel()
	n := start(t, webhook.Config{})
	rcv := newReceiver(t)
	h, err := n.svc.Create(ctxT(t), webhook.Hook{URL: rcv.URL + "/spool", Queue: "video", Kinds: []engine.EventKind{engine.EventSucceeded, engine.EventBuried}})
	if err != nil {
		t.Fatal(err)
	}
	if h.Secret == "" || h.ID == "" || len(n.svc.List()) != 1 || n.svc.List()[0].Secret != "" {
		t.Fatalf("hook %+v, list %+v", h, n.svc.List())
	}
	// finish runs one job of queue to success (with a callback URL when cb is set).
	finish := func(queue, cb string) uint64 {
		t.Helper()
		id := enqueue(t, n.eng, engine.EnqueueRequest{Queue: queue, Type: "encode", Metadata: map[string]string{"user": "7"}, CallbackURL: cb})
		r := reserve(t, n.eng, queue)
		if _, err := n.eng.Ack(ctxT(t), id, r.Token, []byte(`{"url":"s3://x.mp4"}`)); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Deliveries enqueued so far: the dispatcher takes the events in order, so once a
	// later event's delivery arrived, an earlier one's would have been enqueued.
	enqueued := func() int64 {
		t.Helper()
		qi, err := n.eng.Queue(ctxT(t), webhook.Queue)
		if err != nil {
			t.Fatal(err)
		}
		return qi.Stats.Enqueued
	}
	finish("other", "") // another queue: not delivered
	id := finish("video", "")
	got := rcv.wait(t, 1)[0]
	if err := spool.VerifyWebhook([]byte(h.Secret), got.header.Get(spool.WebhookSignatureHeader), got.body, 0); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if err := spool.VerifyWebhook([]byte("wrong"), got.header.Get(spool.WebhookSignatureHeader), got.body, 0); err == nil {
		t.Fatal("a wrong secret verifies")
	}
	d := got.d
	if d.Event.Kind != "succeeded" || d.Job.ID != id || d.Job.Queue != "video" || d.Job.Type != "encode" || d.Job.State != spool.StateSucceeded ||
		string(d.Job.Result) != `{"url":"s3://x.mp4"}` || d.Job.Metadata["user"] != "7" || d.Job.Attempts != 1 {
		t.Fatalf("delivery %s", got.body)
	}
	if k := got.header.Get(spool.WebhookDeliveryHeader); k == "" || k != d.Delivery || got.header.Get("Idempotency-Key") != k || got.header.Get(spool.WebhookEventHeader) != "succeeded" {
		t.Fatalf("headers %v", got.header)
	}
	if n := enqueued(); n != 1 {
		t.Fatalf("%d deliveries enqueued for one matching event", n)
	}
	// Deleted: no more deliveries for it. A callback job after it is the barrier.
	if err := n.svc.Delete(ctxT(t), h.ID); err != nil {
		t.Fatal(err)
	}
	if err := n.svc.Delete(ctxT(t), h.ID); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	finish("video", "")
	finish("cb", rcv.URL+"/done")
	all := rcv.wait(t, 2)
	if len(all) != 2 || all[1].d.Job.Queue != "cb" || enqueued() != 2 {
		t.Fatalf("after the delete: %d deliveries received, %d enqueued; want the callback's only", len(all), enqueued())
	}
}

// A job's callback URL hears of its outcome, signed with the callback secret; a failing
// endpoint's delivery is retried with the same key, then dead, listed, and redelivered.
func TestCallbackRetriesDeadRedeliver(t *testing.T) {
	t.Parallel()
	n := start(t, webhook.Config{MaxAttempts: 2, BackoffBase: 50 * time.Millisecond})
	rcv := newReceiver(t)
	rcv.answer.Store(http.StatusInternalServerError)
	id := enqueue(t, n.eng, engine.EnqueueRequest{Queue: "cb", CallbackURL: rcv.URL + "/done"})
	r := reserve(t, n.eng, "cb")
	if _, err := n.eng.Fail(ctxT(t), id, r.Token, engine.FailRequest{Error: "bad input", Bury: true}); err != nil {
		t.Fatal(err)
	}
	got := rcv.wait(t, 2) // two attempts, both refused
	for _, g := range got {
		if err := spool.VerifyWebhook([]byte(n.svc.CallbackSecret()), g.header.Get(spool.WebhookSignatureHeader), g.body, 0); err != nil {
			t.Fatalf("callback signature: %v", err)
		}
		if g.d.Event.Kind != "buried" || g.d.Job.ID != id || g.d.Job.LastError != "bad input" || g.d.Delivery != got[0].d.Delivery {
			t.Fatalf("delivery %s", g.body)
		}
	}
	var dead []webhook.Delivery
	spooltest.Eventually(t, 10*time.Second, func() error {
		var err error
		if dead, _, err = n.svc.Deliveries(ctxT(t), engine.StateBuried, 10, 0); err != nil {
			return err
		}
		if len(dead) != 1 {
			return fmt.Errorf("%d dead deliveries", len(dead))
		}
		return nil
	})
	if d := dead[0]; d.Key != got[0].d.Delivery || d.Attempts != 2 || !strings.Contains(d.LastError, "status 500") || d.Event.JobID != id || d.Hook != "" {
		t.Fatalf("dead delivery %+v", d)
	}
	rcv.answer.Store(http.StatusOK)
	if err := n.svc.Redeliver(ctxT(t), dead[0].ID); err != nil {
		t.Fatal(err)
	}
	if g := rcv.wait(t, 3)[2]; g.d.Delivery != got[0].d.Delivery {
		t.Fatalf("redelivered %s", g.body)
	}
	if err := n.svc.Redeliver(ctxT(t), id); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("redeliver of a job that is no delivery: %v", err)
	}
}

// An endpoint that does not answer holds up its deliveries only: jobs keep finishing.
func TestSlowEndpointDoesNotSlowJobs(t *testing.T) {
	t.Parallel()
	n := start(t, webhook.Config{Workers: 2, Timeout: time.Minute})
	release := make(chan struct{})
	var held atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	if _, err := n.svc.Create(ctxT(t), webhook.Hook{URL: slow.URL, Kinds: []engine.EventKind{engine.EventSucceeded}}); err != nil {
		t.Fatal(err)
	}
	first := enqueue(t, n.eng, engine.EnqueueRequest{Queue: "fast"})
	r := reserve(t, n.eng, "fast")
	n.eng.Ack(ctxT(t), first, r.Token, nil)
	spooltest.Eventually(t, 20*time.Second, func() error {
		if held.Load() == 0 {
			return errors.New("the slow endpoint got nothing yet")
		}
		return nil
	})
	for range 30 {
		id := enqueue(t, n.eng, engine.EnqueueRequest{Queue: "fast"})
		r := reserve(t, n.eng, "fast")
		if _, err := n.eng.Ack(ctxT(t), id, r.Token, nil); err != nil {
			t.Fatal(err)
		}
	}
	if h := held.Load(); h > 2 {
		t.Fatalf("%d requests reached the slow endpoint with 2 workers", h)
	}
	// Every delivery is waiting as a job, none lost.
	spooltest.Eventually(t, 20*time.Second, func() error {
		qi, err := n.eng.Queue(ctxT(t), webhook.Queue)
		if err != nil {
			return err
		}
		if qi.Stats.Enqueued != 31 {
			return fmt.Errorf("%d deliveries enqueued, want 31", qi.Stats.Enqueued)
		}
		return nil
	})
}

func TestHookValidation(t *testing.T) {
	t.Parallel()
	n := start(t, webhook.Config{})
	for _, h := range []webhook.Hook{
		{URL: "ftp://x"},
		{URL: "http://"},
		{URL: "https://ok.example", Queue: "-bad"},
		{URL: "https://ok.example", Kinds: []engine.EventKind{"exploded"}},
		{URL: "https://ok.example", Kinds: []engine.EventKind{"succeeded,failed"}}, // one kind each
		{URL: "https://ok.example", Kinds: []engine.EventKind{" succeeded"}},
		{URL: "https://ok.example", Type: strings.Repeat("t", 300)},
	} {
		var ve *webhook.ValidationError
		if _, err := n.svc.Create(ctxT(t), h); !errors.As(err, &ve) {
			t.Errorf("%+v: %v", h, err)
		}
	}
	h, err := n.svc.Create(ctxT(t), webhook.Hook{URL: "https://ok.example/x"})
	if err != nil || len(h.Kinds) != len(webhook.CallbackKinds) {
		t.Fatalf("default kinds: %+v %v", h, err)
	}
}
