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
	inbox := e.nc.NewRespInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("direct batch: %w", err)
	}
	defer sub.Unsubscribe()
	if err := e.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return nil, fmt.Errorf("direct batch: %w", err)
	}
	var out []storedMsg
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("direct batch: %w", err)
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
	Seq       uint64   `json:"seq,omitempty"`
	NextFor   string   `json:"next_by_subj,omitempty"`
	Batch     int      `json:"batch,omitempty"`
	MultiLast []string `json:"multi_last,omitempty"`
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

// directSeq reads the message at a stream sequence.
func (e *Engine) directSeq(ctx context.Context, stream string, seq uint64) (*storedMsg, error) {
	body, _ := json.Marshal(directRequest{Seq: seq})
	m, err := e.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, body)
	if err != nil {
		return nil, fmt.Errorf("direct get seq %d: %w", seq, err)
	}
	return parseDirect(m)
}
