package engine

import "context"

// QueueStream names the JetStream stream that holds the queue's jobs: a shard shared with
// other queues, or a stream of its own for a queue made before shards. Operators use it to
// find which cluster node leads a queue's writes.
func (e *Engine) QueueStream(ctx context.Context, name string) (string, error) {
	q, err := e.getQueue(ctx, name, false)
	if err != nil {
		return "", err
	}
	return q.names.stream(), nil
}
