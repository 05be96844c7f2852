package engine

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/internal/jsasset"
)

// ReplicasError reports a JetStream asset with more replicas than this node was
// configured for: the node never lowers them (start every node with the same replicas).
type ReplicasError = jsasset.ReplicasError

// ensureStream creates or updates a stream, retried and race-free across nodes, never
// lowering its replicas (jsasset).
func (e *Engine) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return jsasset.Stream(ctx, e.js, e.log, cfg)
}

// ensureConsumer creates or updates a durable consumer, retried.
func (e *Engine) ensureConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return jsasset.Consumer(ctx, e.js, e.log, stream, cfg)
}

// ensureKeyValue creates or updates a KV bucket as ensureStream does a stream.
func (e *Engine) ensureKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return jsasset.KeyValue(ctx, e.js, e.log, cfg)
}
