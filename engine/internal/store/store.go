// Package store is the engine's way to JetStream for the job lifecycle: reads of stored
// messages (Direct Get, single and batched), publishes (plain, compare-and-set, schedules),
// deletes, pulls from consumers, and the replies that ack, nak or terminate a delivery. The
// engine states job rules; how each step reaches JetStream is here, in one place, and a
// test can make any step fail (Faults) to check what a crash between two steps leaves.
//
// Setting up streams, consumers and the queue bucket stays with the engine: those are
// configuration, not lifecycle steps.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Op names a kind of storage step, for Faults.
type Op string

// The storage steps.
const (
	OpRead    Op = "read"    // Direct Get, single or batched
	OpPublish Op = "publish" // a message stored (job message, record, counter)
	OpDelete  Op = "delete"  // a message removed by sequence
	OpPull    Op = "pull"    // deliveries requested from a consumer
	OpReply   Op = "reply"   // +ACK, -NAK, +TERM of a delivery
)

// Faults, when set, is asked before every step; a non-nil answer fails the step with that
// error without reaching JetStream. subject is the step's subject (or stream, for reads,
// deletes and pulls).
type Faults func(op Op, subject string) error

// ErrNoMsg: no stored message matches.
var ErrNoMsg = errors.New("no message")

// MaxBatch is JetStream's cap on the answers of one batched Direct Get.
const MaxBatch = 1024

// Msg is a message read back from a stream.
type Msg struct {
	Subject string
	Seq     uint64
	Time    time.Time
	Data    []byte
}

// Request is a Direct Get: by sequence, the next message on a subject from a sequence or a
// time, or the last message of each of several subjects (multi_last), up to Batch answers.
type Request struct {
	Seq       uint64     `json:"seq,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	Batch     int        `json:"batch,omitempty"`
	MultiLast []string   `json:"multi_last,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	UpToTime  *time.Time `json:"up_to_time,omitempty"`
	UpToSeq   uint64     `json:"up_to_seq,omitempty"`
}

// Store runs the storage steps over one NATS connection. It is safe for concurrent use.
type Store struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	timeout time.Duration
	faults  atomic.Pointer[Faults]
}

// New returns a Store over nc and its JetStream context js. A step whose context has no
// deadline gives up after timeout (JetStream unreachable): an error for which Transient is
// true. js should be made with jetstream.WithPublishAsyncTimeout(timeout), so that an
// unacknowledged publish ends too.
func New(nc *nats.Conn, js jetstream.JetStream, timeout time.Duration) *Store {
	return &Store{nc: nc, js: js, timeout: timeout}
}

// bound gives ctx the store's timeout when it has no deadline.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// Transient reports whether err is a failure to reach JetStream, or JetStream's own
// temporary unavailability, rather than an answer: the step may succeed if tried again.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	for _, t := range []error{
		nats.ErrTimeout, nats.ErrConnectionClosed, nats.ErrConnectionDraining,
		nats.ErrConnectionReconnecting, nats.ErrNoResponders, nats.ErrDisconnected,
		jetstream.ErrAsyncPublishTimeout, jetstream.ErrNoStreamResponse,
		jetstream.ErrJetStreamNotEnabled, context.DeadlineExceeded,
	} {
		if errors.Is(err, t) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 503: JetStream temporarily unavailable (no leader, not ready); 10008: the
		// same as an error code.
		return apiErr.Code == 503 || apiErr.ErrorCode == 10008
	}
	return false
}

// SetFaults installs f (nil removes it). For tests.
func (s *Store) SetFaults(f Faults) {
	if f == nil {
		s.faults.Store(nil)
		return
	}
	s.faults.Store(&f)
}

func (s *Store) fault(op Op, subject string) error {
	if f := s.faults.Load(); f != nil {
		return (*f)(op, subject)
	}
	return nil
}

// Last reads the last message on a subject (wildcards allowed) of a stream. Any replica
// answers a Direct Get, without the stream leader's API queue.
func (s *Store) Last(ctx context.Context, stream, subject string) (*Msg, error) {
	if err := s.fault(OpRead, stream); err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	m, err := s.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream+"."+subject, nil)
	if err != nil {
		return nil, fmt.Errorf("direct get %s: %w", subject, err)
	}
	return parse(m)
}

// At reads the message at a stream sequence.
func (s *Store) At(ctx context.Context, stream string, seq uint64) (*Msg, error) {
	if err := s.fault(OpRead, stream); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(Request{Seq: seq})
	ctx, cancel := s.bound(ctx)
	defer cancel()
	m, err := s.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, body)
	if err != nil {
		return nil, fmt.Errorf("direct get seq %d: %w", seq, err)
	}
	return parse(m)
}

// Batch runs a batched Direct Get and collects the answers up to the end-of-batch marker.
func (s *Store) Batch(ctx context.Context, stream string, req Request) ([]Msg, error) {
	if err := s.fault(OpRead, stream); err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	n := max(req.Batch, len(req.MultiLast), 1)
	reply, replies, done, err := s.replies(n+1, "") // the messages and the end-of-batch marker
	if err != nil {
		return nil, fmt.Errorf("direct batch: %w", err)
	}
	defer done()
	if err := s.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, reply, body); err != nil {
		return nil, fmt.Errorf("direct batch: %w", err)
	}
	timeout := time.NewTimer(s.timeout)
	defer timeout.Stop()
	var out []Msg
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return nil, fmt.Errorf("direct batch: %w", ctx.Err())
		case <-timeout.C:
			return nil, fmt.Errorf("direct batch: %w", nats.ErrTimeout)
		}
		sm, err := parse(m)
		switch {
		case errors.Is(err, ErrNoMsg):
			return out, nil // 404 no results, or 204 end of batch
		case err != nil:
			return nil, err
		}
		out = append(out, *sm)
	}
}

func parse(m *nats.Msg) (*Msg, error) {
	if st := m.Header.Get("Status"); st != "" {
		switch st {
		case "404", "204":
			return nil, ErrNoMsg
		default:
			return nil, fmt.Errorf("direct get: status %s %s", st, m.Header.Get("Description"))
		}
	}
	seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("direct get: bad sequence header: %w", err)
	}
	ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
	return &Msg{Subject: m.Header.Get("Nats-Subject"), Seq: seq, Time: ts, Data: m.Data}, nil
}

// replies subscribes a fresh inbox (followed by tail: ".*" for the replies of several
// requests) whose messages arrive on a channel of the given capacity, which must cover
// every reply the requests can get (nats.go would otherwise size the channel for 64k
// messages, an allocation that dominated the reservation path's profile).
func (s *Store) replies(capacity int, tail string) (inbox string, ch <-chan *nats.Msg, done func(), err error) {
	inbox = s.nc.NewInbox()
	c := make(chan *nats.Msg, capacity)
	sub, err := s.nc.ChanSubscribe(inbox+tail, c)
	if err != nil {
		return "", nil, nil, err
	}
	return inbox, c, func() { sub.Unsubscribe() }, nil
}

// Publish stores m without waiting: the future tells the outcome (a failed compare-and-set
// is an API error, see CASLost).
func (s *Store) Publish(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if err := s.fault(OpPublish, m.Subject); err != nil {
		return nil, err
	}
	return s.js.PublishMsgAsync(m, opts...)
}

// PublishSync stores m and waits for it.
func (s *Store) PublishSync(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if err := s.fault(OpPublish, m.Subject); err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.js.PublishMsg(ctx, m, opts...)
}

// Wait waits for publish acknowledgements: seqs[i] and errs[i] are the outcome of futs[i].
func Wait(ctx context.Context, futs []jetstream.PubAckFuture) (seqs []uint64, errs []error) {
	seqs, errs = make([]uint64, len(futs)), make([]error, len(futs))
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			errs[i] = err
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return seqs, errs
}

// Delete removes the message at seq from a stream; one already gone is not an error.
func (s *Store) Delete(ctx context.Context, stream string, seq uint64) error {
	if err := s.fault(OpDelete, stream); err != nil {
		return err
	}
	body, _ := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NoErase bool   `json:"no_erase"`
	}{seq, true})
	ctx, cancel := s.bound(ctx)
	defer cancel()
	m, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.DELETE."+stream, body)
	if err != nil {
		return fmt.Errorf("delete message %d: %w", seq, err)
	}
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return fmt.Errorf("delete message %d: %w", seq, err)
	}
	// 404, or 10057 "no message found": gone already (a +TERM of its delivery, on a
	// work-queue stream, removes it too).
	if resp.Error != nil && resp.Error.Code != 404 && resp.Error.ErrCode != 10057 {
		return fmt.Errorf("delete message %d: %s", seq, resp.Error.Description)
	}
	return nil
}

// Pull asks a consumer for up to n messages without waiting for more than are there. With
// expires > 0 the request waits that long when the consumer counts none yet, and returns as
// soon as it has any. warn is told when JetStream does not answer in time.
func (s *Store) Pull(stream, consumer string, n int, expires time.Duration, warn func()) ([]*nats.Msg, error) {
	if err := s.fault(OpPull, stream); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(struct {
		Batch   int   `json:"batch"`
		NoWait  bool  `json:"no_wait"`
		Expires int64 `json:"expires,omitempty"`
	}{n, true, int64(expires)})
	reply, replies, done, err := s.replies(n+2, "") // the messages, a status, a heartbeat
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	defer done()
	if err := s.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+stream+"."+consumer, reply, body); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	timeout := time.NewTimer(expires + s.timeout)
	defer timeout.Stop()
	var msgs []*nats.Msg
	for len(msgs) < n {
		var m *nats.Msg
		// No ctx here: a no-wait pull ends by itself within its expiry, and leaving early
		// would strand the messages still on their way until their leases ran out.
		select {
		case m = <-replies:
		case <-timeout.C:
			if warn != nil {
				warn()
			}
			return msgs, nil
		}
		if len(m.Data) == 0 && m.Header.Get("Status") != "" {
			switch m.Header.Get("Status") {
			case "100":
				continue // heartbeat
			case "503":
				if len(msgs) == 0 {
					return nil, ErrNoConsumer // no one answers for it
				}
			}
			// 404 no messages (or no such consumer: the queue was deleted), 408 expired,
			// 409 consumer deleted or paused: the pull is over.
			return msgs, nil
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// ErrNoConsumer is Pull's error when the consumer does not exist.
var ErrNoConsumer = errors.New("store: no such consumer")

// Ack acknowledges a delivery (its ack subject): done, the message goes. Not awaited, as
// the other replies.
func (s *Store) Ack(ackSubject string) error { return s.reply(ackSubject, "+ACK") }

// AckSync acknowledges deliveries and waits until JetStream has taken each ack (on a
// work-queue stream: removed the message; on a replicated consumer: replicated the ack).
// errs[i] is the outcome of ackSubjects[i]; the acks are sent together.
func (s *Store) AckSync(ctx context.Context, ackSubjects []string) (errs []error) {
	if len(ackSubjects) == 0 {
		return nil
	}
	errs = make([]error, len(ackSubjects))
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if len(ackSubjects) == 1 {
		// nats.go's shared reply subscription: no subscription of its own.
		if errs[0] = s.fault(OpReply, ackSubjects[0]); errs[0] == nil {
			_, errs[0] = s.nc.RequestWithContext(ctx, ackSubjects[0], []byte("+ACK"))
		}
		return errs
	}
	inbox, replies, done, err := s.replies(len(ackSubjects), ".*")
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer done()
	waiting := make(map[string]int, len(ackSubjects))
	for i, subj := range ackSubjects {
		if errs[i] = s.fault(OpReply, subj); errs[i] != nil {
			continue
		}
		reply := inbox + "." + strconv.Itoa(i)
		if errs[i] = s.nc.PublishRequest(subj, reply, []byte("+ACK")); errs[i] == nil {
			waiting[reply] = i
		}
	}
	for len(waiting) > 0 {
		select {
		case m := <-replies:
			i, ok := waiting[m.Subject]
			if !ok {
				continue
			}
			delete(waiting, m.Subject)
			if st := m.Header.Get("Status"); st == "503" {
				errs[i] = fmt.Errorf("ack: %w", nats.ErrNoResponders) // the consumer is gone
			}
		case <-ctx.Done():
			for _, i := range waiting {
				errs[i] = fmt.Errorf("ack: %w", ctx.Err())
			}
			return errs
		}
	}
	return errs
}

// Nak offers a delivery again at once.
func (s *Store) Nak(ackSubject string) error { return s.reply(ackSubject, "-NAK") }

// Term ends a delivery for good: the message goes.
func (s *Store) Term(ackSubject string) error { return s.reply(ackSubject, "+TERM") }

// NakDelay re-times a pending delivery to expire d from now, whatever its ack wait.
func (s *Store) NakDelay(ackSubject string, d time.Duration) error {
	return s.reply(ackSubject, `-NAK {"delay":`+strconv.FormatInt(int64(d), 10)+`}`)
}

func (s *Store) reply(ackSubject, body string) error {
	if err := s.fault(OpReply, ackSubject); err != nil {
		return err
	}
	return s.nc.Publish(ackSubject, []byte(body))
}

// CASLost reports JetStream's answer to a failed compare-and-set: "wrong last sequence",
// 10071, or 10164 from a replicated stream while another write to the subject is in flight.
func CASLost(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == 10071 || apiErr.ErrorCode == 10164
}
