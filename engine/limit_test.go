package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/spoolq/spool/engine"
)

// An external NATS server that allows few consumers a stream (nats-server's default is
// 1,000) refuses a level's consumer once its shard has that many: the reservation fails
// with a retryable error that names the setting to change, not an internal one.
func TestConsumerLimitOfAnExternalServer(t *testing.T) {
	t.Parallel()
	ns, err := server.NewServer(&server.Options{
		JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoSigs: true,
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := engine.Open(ctx, nc, engine.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	// Nine queues in eight shards: two share one, and the second level consumer there is
	// one too many.
	var refused error
	for i := range 9 {
		q := fmt.Sprintf("q%d", i)
		enqueue(t, e, engine.EnqueueRequest{Queue: q})
		if _, err := e.Reserve(ctx, engine.ReserveRequest{Queues: []string{q}}); err != nil {
			refused = err
		}
	}
	if refused == nil || !engine.Transient(refused) || !strings.Contains(refused.Error(), "default_max_consumers") {
		t.Fatalf("nine queues in use with one consumer allowed a stream: %v", refused)
	}
}
