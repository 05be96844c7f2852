package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/natsd"
	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/internal/testport"
)

// startCluster runs three embedded JetStream servers routed into one cluster, in-process,
// and waits for its meta leader.
func startCluster(t testing.TB) []*server.Server {
	t.Helper()
	routes := []string{testport.Addr(t), testport.Addr(t), testport.Addr(t)}
	nodes := make([]*server.Server, 3)
	for i := range nodes {
		ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: t.TempDir(), Cluster: &natsd.Cluster{
			Name: "t", Node: fmt.Sprintf("n%d", i+1), Listen: routes[i], Peers: routes,
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		nodes[i] = ns
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ns := range nodes {
		if err := natsd.WaitJetStream(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// Engines on three nodes of a fresh cluster open at the same moment (each creates the
// shared streams and bucket) and then enqueue into the same new queue at the same moment:
// every one succeeds. A fourth engine configured for fewer replicas refuses to open rather
// than lower them.
func TestClusterCreationIsRaceFreeAndNeverLowersReplicas(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a three-node cluster")
	}
	nodes := startCluster(t)
	engines := make([]*engine.Engine, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, ns := range nodes {
		wg.Go(func() {
			nc, err := natsd.Connect(ns, "test")
			if err != nil {
				errs[i] = err
				return
			}
			t.Cleanup(nc.Close)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			engines[i], errs[i] = engine.Open(ctx, nc, engine.Config{Replicas: 3, Logger: quiet})
			if engines[i] != nil {
				t.Cleanup(func() { engines[i].Close() })
			}
		})
	}
	start := time.Now()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("engine %d: %v", i, err)
		}
	}
	t.Logf("three engines opened together in %s", time.Since(start).Round(time.Millisecond))
	for round := range 3 {
		queue := fmt.Sprintf("race%d", round)
		for i, e := range engines {
			wg.Go(func() {
				_, errs[i] = enqueueErr(e, engine.EnqueueRequest{Queue: queue, Type: "t"})
			})
		}
		start := time.Now()
		wg.Wait()
		t.Logf("round %d: three enqueues into a new queue at once in %s", round, time.Since(start).Round(time.Millisecond))
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: enqueue on node %d: %v", round, i, err)
			}
		}
		eventuallyReady(t, engines[0], queue, 3)
	}
	// Every node sums the same: the cluster's totals, counted by all three (each took or
	// read the one base), and the counts of the replicated streams.
	for i, e := range engines {
		spooltest.Eventually(t, 20*time.Second, func() error {
			s, err := e.Summarize(ctxT(t), engine.SummaryRequest{})
			if err != nil {
				return err
			}
			if s.Queues != 3 || s.Ready != 9 || s.Enqueued != 9 || s.EnqueueRate <= 0 {
				return fmt.Errorf("node %d: summary %+v, want 3 queues, 9 ready, 9 enqueued at some rate", i, *s)
			}
			return nil
		})
	}

	nc, err := natsd.Connect(nodes[0], "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, err = engine.Open(ctxT(t), nc, engine.Config{Replicas: 1, Logger: quiet})
	var re *engine.ReplicasError
	if !errors.As(err, &re) || re.Existing != 3 || re.Wanted != 1 {
		t.Fatalf("engine with 1 replica over R3 streams: %v", err)
	}
}

func enqueueErr(e *engine.Engine, r engine.EnqueueRequest) (*engine.Job, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.Enqueue(ctx, []engine.EnqueueRequest{r})
	if err != nil {
		return nil, err
	}
	return res[0].Job, res[0].Err
}

func eventuallyReady(t *testing.T, e *engine.Engine, queue string, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		qi, err := e.Queue(ctxT(t), queue)
		if err == nil && qi.Stats.Ready == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s: %+v, %v; want %d ready", queue, qi, err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
