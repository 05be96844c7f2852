package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Creating JetStream assets is idempotent and safe for nodes racing: each step is retried
// on transient failures (in a cluster, simultaneous identical creates may go unanswered, and
// a cluster that just elected its meta leader may still be settling), an asset that exists
// already is checked rather than overwritten blindly, and no node ever lowers the replicas
// of an asset another node made.

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

// ensureStream creates the stream, or updates it to cfg when it exists (raising its
// replicas if cfg asks for more), and refuses with a *ReplicasError when the stream has
// more replicas than cfg.
func (e *Engine) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	var st jetstream.Stream
	err := e.retryCreate(ctx, func(ctx context.Context) error {
		if err := e.checkReplicas(ctx, cfg.Name, cfg.Replicas); err != nil {
			return err
		}
		var err error
		st, err = e.js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	return st, err
}

// ensureConsumer creates or updates a durable consumer, retrying transient failures.
func (e *Engine) ensureConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	var c jetstream.Consumer
	err := e.retryCreate(ctx, func(ctx context.Context) error {
		var err error
		c, err = e.js.CreateOrUpdateConsumer(ctx, stream, cfg)
		return err
	})
	return c, err
}

// ensureKeyValue creates or updates a KV bucket as ensureStream does a stream.
func (e *Engine) ensureKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := e.retryCreate(ctx, func(ctx context.Context) error {
		if err := e.checkReplicas(ctx, "KV_"+cfg.Bucket, cfg.Replicas); err != nil {
			return err
		}
		var err error
		kv, err = e.js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	return kv, err
}

// checkReplicas refuses to go on when the stream exists with more replicas than want.
func (e *Engine) checkReplicas(ctx context.Context, stream string, want int) error {
	st, err := e.js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	have := st.CachedInfo().Config.Replicas
	if have > want {
		return &ReplicasError{Asset: stream, Existing: have, Wanted: want}
	}
	if have < want {
		e.log.Warn("raising the replicas of an existing stream", "stream", stream, "from", have, "to", want)
	}
	return nil
}

// retryCreate runs f until it succeeds, fails for good, or the time runs out (ctx's
// deadline, else ensureFor). A creation another node made meanwhile ("already in use")
// is retried too: the next attempt finds it and checks it.
func (e *Engine) retryCreate(ctx context.Context, f func(context.Context) error) error {
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
		if err == nil || !retryableCreate(err) || ctx.Err() != nil {
			return err
		}
		e.log.Debug("JetStream asset creation retried", "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait, limit = min(2*wait, time.Second), min(2*limit, maxAttempt)
	}
}

func retryableCreate(err error) bool {
	return Transient(err) ||
		errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) ||
		errors.Is(err, jetstream.ErrConsumerExists) ||
		errors.Is(err, jetstream.ErrBucketExists)
}
