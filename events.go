package spool

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Event is one transition of a job: its lifecycle event (docs/events.md).
type Event struct {
	// Pos is the event's position in the server's events stream: a feed resumes after it.
	Pos      string    `json:"pos"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"` // enqueued, reserved, touched, succeeded, failed, buried, kicked, released, expired, cancelled
	JobID    uint64    `json:"-"`
	Queue    string    `json:"queue"`
	Type     string    `json:"type"`
	Node     string    `json:"node,omitempty"`
	Worker   string    `json:"worker,omitempty"`
	Attempt  int       `json:"attempt"`
	State    State     `json:"state"` // after the transition
	Error    string    `json:"error,omitempty"`
	RunAt    time.Time `json:"run_at,omitzero"`
	Callback string    `json:"callback_url,omitempty"`
}

// MarshalJSON encodes the wire format of the HTTP API (the job id a decimal string).
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	return json.Marshal(struct {
		plain
		JobID jsonID `json:"job_id"`
	}{plain(e), jsonID(e.JobID)})
}

// UnmarshalJSON decodes the wire format of the HTTP API.
func (e *Event) UnmarshalJSON(data []byte) error {
	type plain Event
	var w struct {
		plain
		JobID jsonID `json:"job_id"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*e = Event(w.plain)
	e.JobID = uint64(w.JobID)
	return nil
}

// JobEvents returns a job's timeline, oldest first, while its record is kept.
func (c *Client) JobEvents(ctx context.Context, id uint64) ([]Event, error) {
	var out struct{ Events []Event }
	if err := c.do(ctx, request{method: http.MethodGet, path: pathJob(id, "events"), out: &out}); err != nil {
		return nil, fmt.Errorf("spool: events of job %d: %w", id, err)
	}
	return out.Events, nil
}

// EventsOptions select the events of FollowEvents. Zero fields select all.
type EventsOptions struct {
	Queues []string
	Types  []string
	Kinds  []string
	// After resumes after this position (an Event.Pos); "0" starts from the oldest event
	// the server keeps; "" from now.
	After string
}

// FollowEvents reads the server's event feed (GET /v1/events) and calls fn for each event,
// until ctx ends (it then returns ctx's error) or fn returns an error (returned). When the
// connection breaks it reconnects, to the next server if there are several, and resumes
// after the last event it handed to fn.
func (c *Client) FollowEvents(ctx context.Context, opts EventsOptions, fn func(Event) error) error {
	last := opts.After
	var fnErr error
	for attempt := 0; ; attempt++ {
		q := url.Values{}
		for name, v := range map[string][]string{"queue": opts.Queues, "type": opts.Types, "kinds": opts.Kinds} {
			if len(v) > 0 {
				q.Set(name, strings.Join(v, ","))
			}
		}
		base := c.servers[(int(c.current.Load())+attempt)%len(c.servers)]
		err := c.followOnce(ctx, base, q, &last, func(ev Event) error {
			attempt = 0
			if err := fn(ev); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
		switch {
		case fnErr != nil:
			return fnErr
		case ctx.Err() != nil:
			return ctx.Err()
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status != http.StatusServiceUnavailable {
			return fmt.Errorf("spool: follow events: %w", err)
		}
		select { // a broken connection: again, after a pause that grows to 5s
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(attempt+1)*200*time.Millisecond, 5*time.Second)):
		}
	}
}

func (c *Client) followOnce(ctx context.Context, base string, q url.Values, last *string, fn func(Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readAPIError(resp)
	}
	return readSSE(resp.Body, func(id, data string) error {
		var ev Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("spool: event %s: %w", id, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
		*last = id
		return nil
	})
}

// readSSE calls fn with the id and data of each server-sent event of r.
func readSSE(r io.Reader, fn func(id, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				if err := fn(id, strings.Join(data, "\n")); err != nil {
					return err
				}
			}
			data = data[:0]
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "data":
				data = append(data, value)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// Webhook is a subscription of an endpoint to lifecycle events (docs/events.md).
type Webhook struct {
	ID    string   `json:"id,omitempty"`
	URL   string   `json:"url"`
	Queue string   `json:"queue,omitempty"` // "" for every queue
	Type  string   `json:"type,omitempty"`  // "" for every job type
	Kinds []string `json:"kinds,omitempty"` // default succeeded, failed, buried, cancelled
	// Secret signs the deliveries (VerifyWebhook). Given or made at creation; only
	// CreateWebhook's answer holds it.
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// CreateWebhook subscribes h.URL and returns the hook with its id and secret.
func (c *Client) CreateWebhook(ctx context.Context, h Webhook) (*Webhook, error) {
	var out Webhook
	if err := c.do(ctx, request{method: http.MethodPost, path: "/v1/webhooks", body: h, out: &out}); err != nil {
		return nil, fmt.Errorf("spool: create webhook: %w", err)
	}
	return &out, nil
}

// Webhooks lists the hooks, without their secrets.
func (c *Client) Webhooks(ctx context.Context) ([]Webhook, error) {
	var out struct{ Webhooks []Webhook }
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/webhooks", out: &out}); err != nil {
		return nil, fmt.Errorf("spool: webhooks: %w", err)
	}
	return out.Webhooks, nil
}

// WebhookCallbackSecret returns the secret that signs deliveries to jobs' callback URLs.
func (c *Client) WebhookCallbackSecret(ctx context.Context) (string, error) {
	var out struct {
		Secret string `json:"callback_secret"`
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/webhooks", out: &out}); err != nil {
		return "", fmt.Errorf("spool: webhooks: %w", err)
	}
	return out.Secret, nil
}

// DeleteWebhook deletes a hook.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	if err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/webhooks/" + url.PathEscape(id)}); err != nil {
		return fmt.Errorf("spool: delete webhook %s: %w", id, err)
	}
	return nil
}

// WebhookDeliveryInfo is a delivery waiting or dead, as WebhookDeliveries lists it.
type WebhookDeliveryInfo struct {
	ID        uint64 `json:"-"` // pass to Redeliver
	Key       string `json:"key"`
	Hook      string `json:"hook,omitempty"` // "" for a job's callback URL
	URL       string `json:"url"`
	Event     Event  `json:"event"`
	State     State  `json:"state"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
}

// WebhookDeliveries lists up to 1,000 deliveries in state st: StateBuried (dead, the
// default), StateDelayed (waiting for a retry) or StateReady.
func (c *Client) WebhookDeliveries(ctx context.Context, st State) ([]WebhookDeliveryInfo, error) {
	q := url.Values{"limit": {"1000"}}
	if st != "" {
		q.Set("state", string(st))
	}
	var out struct {
		Deliveries []struct {
			WebhookDeliveryInfo
			ID jsonID `json:"id"`
		}
	}
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/webhook-deliveries", query: q, out: &out}); err != nil {
		return nil, fmt.Errorf("spool: webhook deliveries: %w", err)
	}
	list := make([]WebhookDeliveryInfo, len(out.Deliveries))
	for i, d := range out.Deliveries {
		list[i] = d.WebhookDeliveryInfo
		list[i].ID = uint64(d.ID)
	}
	return list, nil
}

// Redeliver sends a dead (or delayed) delivery again now, with its attempts back.
func (c *Client) Redeliver(ctx context.Context, id uint64) error {
	if err := c.do(ctx, request{method: http.MethodPost, path: fmt.Sprintf("/v1/webhook-deliveries/%d/redeliver", id)}); err != nil {
		return fmt.Errorf("spool: redeliver %d: %w", id, err)
	}
	return nil
}
