package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// storedMsg is a message read back from a stream.
type storedMsg struct {
	Subject string
	Seq     uint64
	Time    time.Time
	Data    []byte
}

var errNoMsg = errors.New("no message")

// requestTimeout bounds a JetStream request that has no deadline of its own.
const requestTimeout = 10 * time.Second

// maxDirectBatch is JetStream's cap on the responses of one batched direct get.
const maxDirectBatch = 1024

// directLast reads the last message on a subject (wildcards allowed) with a Direct Get, which
// any replica answers without going through the stream leader's API queue.
func (e *Engine) directLast(ctx context.Context, stream, subject string) (*storedMsg, error) {
	m, err := e.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream+"."+subject, nil)
	if err != nil {
		return nil, fmt.Errorf("direct get %s: %w", subject, err)
	}
	return parseDirect(m)
}

// directBatch runs a batched Direct Get (next_by_subj with batch, or multi_last) and collects
// the answers up to the end-of-batch marker.
func (e *Engine) directBatch(ctx context.Context, stream string, req directRequest) ([]storedMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	n := max(req.Batch, len(req.MultiLast), 1)
	reply, replies, done, err := e.replies(n + 1) // the messages and the end-of-batch marker
	if err != nil {
		return nil, fmt.Errorf("direct batch: %w", err)
	}
	defer done()
	if err := e.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, reply, body); err != nil {
		return nil, fmt.Errorf("direct batch: %w", err)
	}
	timeout := time.NewTimer(requestTimeout)
	defer timeout.Stop()
	var out []storedMsg
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return nil, fmt.Errorf("direct batch: %w", ctx.Err())
		case <-timeout.C:
			return nil, fmt.Errorf("direct batch: %w", nats.ErrTimeout)
		}
		sm, err := parseDirect(m)
		switch {
		case errors.Is(err, errNoMsg):
			return out, nil // 404 no results, or 204 end of batch
		case err != nil:
			return nil, err
		}
		out = append(out, *sm)
	}
}

type directRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	Batch     int        `json:"batch,omitempty"`
	MultiLast []string   `json:"multi_last,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	UpToTime  *time.Time `json:"up_to_time,omitempty"`
}

func parseDirect(m *nats.Msg) (*storedMsg, error) {
	if st := m.Header.Get("Status"); st != "" {
		switch st {
		case "404", "204":
			return nil, errNoMsg
		default:
			return nil, fmt.Errorf("direct get: status %s %s", st, m.Header.Get("Description"))
		}
	}
	seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("direct get: bad sequence header: %w", err)
	}
	ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
	return &storedMsg{Subject: m.Header.Get("Nats-Subject"), Seq: seq, Time: ts, Data: m.Data}, nil
}

// replies subscribes a fresh inbox whose messages arrive on a channel of the given capacity,
// which must cover every reply the request can get (nats.go would otherwise size the channel
// for 64k messages, an allocation that dominated the reservation path's profile).
func (e *Engine) replies(capacity int) (inbox string, ch <-chan *nats.Msg, done func(), err error) {
	inbox = e.nc.NewInbox()
	c := make(chan *nats.Msg, capacity)
	sub, err := e.nc.ChanSubscribe(inbox, c)
	if err != nil {
		return "", nil, nil, err
	}
	return inbox, c, func() { sub.Unsubscribe() }, nil
}

// directSeq reads the message at a stream sequence.
func (e *Engine) directSeq(ctx context.Context, stream string, seq uint64) (*storedMsg, error) {
	body, _ := json.Marshal(directRequest{Seq: seq})
	m, err := e.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, body)
	if err != nil {
		return nil, fmt.Errorf("direct get seq %d: %w", seq, err)
	}
	return parseDirect(m)
}
