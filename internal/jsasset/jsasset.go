// Package jsasset creates spool's JetStream assets (streams, consumers, KV buckets)
// idempotently and safely for nodes racing: each step is retried on transient failures (in
// a cluster, simultaneous identical creates may go unanswered, and a cluster that just
// elected its meta leader may still be settling), an asset that exists is checked rather
// than overwritten blindly, and no node ever lowers the replicas of an asset another node
// made.
package jsasset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A creation attempt gets firstAttempt, doubling up to maxAttempt (nats-server leaves all
// but one of simultaneous identical creates unanswered: the next attempt finds the asset);
// ensureFor bounds all of them when the caller gave no deadline.
const (
	firstAttempt = time.Second
	maxAttempt   = 8 * time.Second
	ensureFor    = 30 * time.Second
)

// ReplicasError reports a JetStream asset that has more replicas than this node was
// configured to create: lowering them would silently weaken the cluster's durability, so
// the node refuses (start every node with the same replicas).
type ReplicasError struct {
	Asset    string // stream name
	Existing int
	Wanted   int
}

func (e *ReplicasError) Error() string {
	return fmt.Sprintf("%s has %d replicas and this node was configured for %d: spool never lowers the replication of existing data; start every node with --replicas %d",
		e.Asset, e.Existing, e.Wanted, e.Existing)
}

// Stream creates the stream, or updates it to cfg when it exists (raising its replicas if
// cfg asks for more), and refuses with a *ReplicasError when it has more replicas than cfg.
func Stream(ctx context.Context, js jetstream.JetStream, log *slog.Logger, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	var st jetstream.Stream
	err := retry(ctx, log, func(ctx context.Context) error {
		if err := checkReplicas(ctx, js, log, cfg.Name, cfg.Replicas); err != nil {
			return err
		}
		var err error
		st, err = js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	return st, err
}

// Consumer creates or updates a durable consumer, retrying transient failures.
func Consumer(ctx context.Context, js jetstream.JetStream, log *slog.Logger, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	var c jetstream.Consumer
	err := retry(ctx, log, func(ctx context.Context) error {
		var err error
		c, err = js.CreateOrUpdateConsumer(ctx, stream, cfg)
		return err
	})
	return c, err
}

// KeyValue creates or updates a KV bucket as Stream does a stream.
func KeyValue(ctx context.Context, js jetstream.JetStream, log *slog.Logger, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := retry(ctx, log, func(ctx context.Context) error {
		if err := checkReplicas(ctx, js, log, "KV_"+cfg.Bucket, cfg.Replicas); err != nil {
			return err
		}
		var err error
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	return kv, err
}

// checkReplicas refuses to go on when the stream exists with more replicas than want.
func checkReplicas(ctx context.Context, js jetstream.JetStream, log *slog.Logger, stream string, want int) error {
	want = max(want, 1)
	st, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	have := max(st.CachedInfo().Config.Replicas, 1)
	if have > want {
		return &ReplicasError{Asset: stream, Existing: have, Wanted: want}
	}
	if have < want {
		log.Warn("raising the replicas of an existing stream", "stream", stream, "from", have, "to", want)
	}
	return nil
}

// retry runs f until it succeeds, fails for good, or the time runs out (ctx's deadline,
// else ensureFor). A creation another node made meanwhile ("already in use") is retried
// too: the next attempt finds it and checks it.
func retry(ctx context.Context, log *slog.Logger, f func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ensureFor)
		defer cancel()
	}
	wait, limit := 50*time.Millisecond, firstAttempt
	for {
		actx, cancel := context.WithTimeout(ctx, limit)
		err := f(actx)
		cancel()
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		log.Debug("JetStream asset creation retried", "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait, limit = min(2*wait, time.Second), min(2*limit, maxAttempt)
	}
}

// errNoPeers is nats-server's JSClusterNoPeersErr ("no suitable peers for placement").
const errNoPeers = 10005

func retryable(err error) bool {
	for _, t := range []error{
		nats.ErrTimeout, nats.ErrNoResponders, nats.ErrConnectionReconnecting, nats.ErrDisconnected,
		context.DeadlineExceeded, jetstream.ErrNoStreamResponse, jetstream.ErrJetStreamNotEnabled,
		jetstream.ErrStreamNameAlreadyInUse, jetstream.ErrConsumerExists, jetstream.ErrBucketExists,
	} {
		if errors.Is(err, t) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	// 503: JetStream temporarily unavailable (no leader yet); 10008: the same as a code;
	// 10005, no suitable peers for placement: a cluster whose meta leader is elected may not
	// know all its peers online yet (seen when three nodes start together). A placement that
	// can never succeed (more replicas than nodes) fails once the time runs out.
	return errors.As(err, &apiErr) && (apiErr.Code == 503 || apiErr.ErrorCode == 10008 || apiErr.ErrorCode == errNoPeers)
}

// Follow hands the entries of a KV watch to apply until done closes or the watch ends, then
// stops the watch: first the bucket's values as they are (initial true; ready is closed after
// the last), then every change.
func Follow(done <-chan struct{}, w jetstream.KeyWatcher, ready chan<- struct{}, apply func(ent jetstream.KeyValueEntry, initial bool)) {
	defer w.Stop()
	initial := true
	for {
		select {
		case <-done:
			return
		case ent, ok := <-w.Updates():
			if !ok {
				return
			}
			if ent == nil {
				if initial {
					initial = false
					close(ready)
				}
				continue
			}
			apply(ent, initial)
		}
	}
}
