package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/engine"
)

// work reserves deliveries for this node's free delivery slots and POSTs each in a
// goroutine of its own. It looks when a delivery was enqueued here or finished, and every
// pollEvery (deliveries enqueued elsewhere, retries whose backoff ended, deliveries of a node
// that died). It never long-polls: its looks are not waiting reservations, and the queue
// need not exist.
func (s *Service) work() {
	worker := "webhook@" + s.cfg.Node
	slots := make(chan struct{}, s.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for s.ctx.Err() == nil {
		free, got := s.cfg.Workers-len(slots), 0
		if free > 0 {
			res, err := s.eng.Reserve(s.ctx, engine.ReserveRequest{Queues: []string{Queue}, Max: free, Glance: true, Worker: worker})
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("webhook: reserve", "err", err)
			}
			if err == nil {
				for _, r := range res.Jobs {
					slots <- struct{}{}
					got++
					wg.Go(func() {
						defer func() { <-slots; s.poke() }()
						s.deliver(r)
					})
				}
			}
		}
		if got > 0 && got == free {
			continue // there may be more
		}
		select {
		case <-s.ctx.Done():
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// pollEvery is how often the delivery loop looks for deliveries without a wake-up.
const pollEvery = time.Second

// poke wakes the delivery loop.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// deliver POSTs one delivery and reports the outcome to the engine: ack on a 2xx answer,
// fail otherwise (retried with the queue's backoff; buried, dead, when the attempts are
// used up).
func (s *Service) deliver(r engine.Reserved) {
	// The engine calls finish the delivery even while the service stops.
	ctx := context.WithoutCancel(s.ctx)
	var d delivery
	if err := json.Unmarshal(r.Job.Payload, &d); err != nil {
		s.eng.Bury(ctx, r.Job.ID, r.Token, engine.BuryRequest{Reason: "malformed delivery: " + err.Error()})
		return
	}
	secret := s.cbSecret
	if d.Hook != "" {
		h := s.hook(d.Hook)
		if h == nil {
			s.eng.Ack(ctx, r.Job.ID, r.Token, []byte(`{"dropped":"hook deleted"}`))
			return
		}
		secret = []byte(h.Secret)
	}
	status, err := s.post(d, secret)
	if err != nil {
		if _, ferr := s.eng.Fail(ctx, r.Job.ID, r.Token, engine.FailRequest{Error: err.Error()}); ferr != nil {
			s.log.Warn("webhook: fail delivery", "delivery", d.Key, "err", ferr)
		}
		return
	}
	if _, err := s.eng.Ack(ctx, r.Job.ID, r.Token, []byte(`{"status":`+strconv.Itoa(status)+`}`)); err != nil {
		s.log.Warn("webhook: ack delivery", "delivery", d.Key, "err", err)
	}
}

// post sends one attempt of d; an error unless the answer is 2xx.
func (s *Service) post(d delivery, secret []byte) (int, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	body, err := json.Marshal(s.body(ctx, d))
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", d.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "spool-webhook")
	req.Header.Set(spool.WebhookSignatureHeader, spool.SignWebhook(secret, time.Now(), body))
	req.Header.Set(spool.WebhookDeliveryHeader, d.Key)
	req.Header.Set("Idempotency-Key", d.Key)
	req.Header.Set(spool.WebhookEventHeader, string(d.Event.Kind))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("POST %s: no answer within %s", d.URL, s.cfg.Timeout)
		}
		return 0, fmt.Errorf("POST %s: %w", d.URL, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("POST %s: status %d: %s", d.URL, resp.StatusCode, bytes.TrimSpace(snippet))
	}
	return resp.StatusCode, nil
}

// wireJob is the job in a delivery's body: the HTTP API's job fields that matter to a
// receiver (spool.Job decodes it).
type wireJob struct {
	ID          string            `json:"id"`
	Queue       string            `json:"queue"`
	Type        string            `json:"type"`
	State       engine.State      `json:"state"`
	Priority    uint32            `json:"priority"`
	Attempts    int               `json:"attempts"`
	MaxAttempts int               `json:"max_attempts,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	CreatedAt   *time.Time        `json:"created_at,omitempty"`
	FinishedAt  *time.Time        `json:"finished_at,omitempty"`
	LastError   string            `json:"last_error,omitempty"`
	Result      json.RawMessage   `json:"result,omitempty"`
	CallbackURL string            `json:"callback_url,omitempty"`
}

type wireBody struct {
	Delivery string             `json:"delivery"`
	Event    spool.WebhookEvent `json:"event"`
	Job      wireJob            `json:"job"`
}

// body is what a delivery sends: the event, and the job as it is now (its result and last
// error), or as the event tells when its record is gone.
func (s *Service) body(ctx context.Context, d delivery) wireBody {
	ev := d.Event
	b := wireBody{
		Delivery: d.Key,
		Event: spool.WebhookEvent{Pos: strconv.FormatUint(ev.Pos, 10), Kind: string(ev.Kind), Time: ev.Time.UTC(),
			Node: ev.Node, Worker: ev.Worker, Attempt: ev.Attempt, State: spool.State(ev.State), Error: ev.Error},
		Job: wireJob{ID: strconv.FormatUint(ev.JobID, 10), Queue: ev.Queue, Type: ev.Type, State: ev.State,
			Attempts: ev.Attempt, LastError: ev.Error, CallbackURL: ev.Callback},
	}
	if j, err := s.eng.Job(ctx, ev.JobID); err == nil {
		b.Job = wireJob{ID: b.Job.ID, Queue: j.Queue, Type: j.Type, State: j.State, Priority: j.Priority,
			Attempts: j.Attempts, MaxAttempts: j.MaxAttempts, Metadata: j.Metadata, CreatedAt: timeOut(j.CreatedAt),
			FinishedAt: timeOut(j.FinishedAt), LastError: j.LastError, Result: j.Result, CallbackURL: j.CallbackURL}
	}
	return b
}

func timeOut(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// Delivery is a delivery job as Deliveries lists it.
type Delivery struct {
	ID        uint64 // the delivery job's id: Redeliver takes it
	Key       string
	Hook      string // "" for a callback URL
	URL       string
	Event     engine.Event
	State     engine.State
	Attempts  int
	LastError string
	RunAt     time.Time // a delayed delivery's next attempt
}

// Deliveries lists deliveries in state st (buried: dead; delayed: waiting for a retry;
// ready), oldest first, a page at a time (engine cursors).
func (s *Service) Deliveries(ctx context.Context, st engine.State, limit int, after uint64) ([]Delivery, uint64, error) {
	page, err := s.eng.Peek(ctx, engine.PeekRequest{Queue: Queue, State: st, Limit: limit, After: after})
	if errors.Is(err, engine.ErrQueueNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	out := make([]Delivery, 0, len(page.Jobs))
	for _, j := range page.Jobs {
		var d delivery
		json.Unmarshal(j.Payload, &d)
		out = append(out, Delivery{ID: j.ID, Key: d.Key, Hook: d.Hook, URL: d.URL, Event: d.Event, State: j.State,
			Attempts: j.Attempts, LastError: j.LastError, RunAt: j.RunAt})
	}
	return out, page.Next, nil
}

// Redeliver makes a dead (or delayed) delivery ready now, with its attempts back.
func (s *Service) Redeliver(ctx context.Context, id uint64) error {
	j, err := s.eng.Job(ctx, id)
	if errors.Is(err, engine.ErrJobNotFound) || err == nil && j.Queue != Queue {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	_, err = s.eng.Kick(ctx, id)
	return err
}
