package server_test

import (
	"context"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool"
)

// allJobs lists every job of a queue in a state through cl, page after page.
func allJobs(t *testing.T, cl *spool.Client, queue string, st spool.State) []*spool.Job {
	t.Helper()
	var all []*spool.Job
	cursor := ""
	for {
		page, err := cl.ListJobs(context.Background(), queue, st, 1000, cursor)
		if err != nil {
			t.Fatalf("list %s jobs of %s: %v", st, queue, err)
		}
		all = append(all, page.Jobs...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// The steps of docs/cluster.md "Replacing a dead node (its data lost)": jobs ready, delayed
// and buried in several queues; a node SIGKILLed and its data directory deleted; a node
// started in its place under the same name on an empty data directory. It catches up: every
// stream is current on it (GET /v1/cluster). Then another node is SIGKILLed, and the two
// left (the replacement one of them) still hold every job: each listed in its state, each
// ready one handed out and acked.
func TestClusterReplaceNodeWithDataLost(t *testing.T) {
	c := startTestCluster(t)
	ctx := context.Background()
	cl := c.client(c.nodes)
	queues := []string{"mail", "billing", "reports", "thumbs"}
	want := map[string]map[spool.State]map[uint64]bool{}
	for _, q := range queues {
		want[q] = map[spool.State]map[uint64]bool{spool.StateReady: {}, spool.StateDelayed: {}, spool.StateBuried: {}}
		var jobs []spool.BatchJob
		for i := range 30 {
			j := spool.BatchJob{Type: "t", Payload: i}
			switch i % 3 {
			case 1:
				j.Options = []spool.EnqueueOption{spool.Delay(time.Hour)}
			case 2:
				j.Options = []spool.EnqueueOption{spool.Buried()}
			}
			jobs = append(jobs, j)
		}
		res, err := cl.EnqueueBatch(ctx, q, jobs)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("enqueue into %s: %v", q, r.Err)
			}
			want[q][r.State][r.ID] = true
		}
	}
	all := func(*spool.ClusterInfo, spool.ClusterStream) bool { return true }
	c.waitCurrent(c.nodes[0], 30*time.Second, all)

	// The node dies with its disk: a new one, empty, takes its name and place.
	dead := c.nodes[2]
	c.kill(dead)
	dead.data = t.TempDir()
	c.start(dead)
	c.waitHealthy(dead)
	start := time.Now()
	ci := c.waitCurrent(dead, 60*time.Second, all)
	t.Logf("%s replaced on an empty data directory: %d streams current %s after it was healthy",
		dead.name, len(ci.Streams), time.Since(start).Round(100*time.Millisecond))
	for _, s := range ci.Streams {
		if s.Replicas != 3 {
			t.Errorf("stream %s has %d replicas", s.Name, s.Replicas)
		}
	}
	// The replacement holds the data itself, not only the leader's word that it is current:
	// each stream with messages on a survivor's disk has messages on the replacement's.
	survivor, replaced := storedStreams(t, c.nodes[1].data), storedStreams(t, dead.data)
	for name, size := range survivor {
		if size > 0 && replaced[name] == 0 {
			t.Errorf("stream %s: %d bytes of messages on %s, none on the replacement", name, size, c.nodes[1].name)
		}
	}
	t.Logf("bytes of messages per stream: survivor %v, replacement %v", survivor, replaced)

	// Another node lost: the replacement is now needed for every majority.
	second := c.nodes[0]
	c.kill(second)
	left := c.client(others(c.nodes, second), spool.WithRetryFor(60*time.Second))
	for _, q := range queues {
		for st, ids := range want[q] {
			got := map[uint64]bool{}
			for _, j := range allJobs(t, left, q, st) {
				got[j.ID] = true
			}
			if !maps.Equal(got, ids) {
				t.Errorf("queue %s, %s: %d jobs listed, want %d: %v", q, st, len(got), len(ids), slices.Sorted(maps.Keys(got)))
			}
		}
		// While the streams the killed node led elect new leaders, a reservation or an ack
		// can fail: the job comes back (at-least-once) and is handed out again.
		acked := map[uint64]bool{}
		deadline := time.Now().Add(90 * time.Second)
		for len(acked) < len(want[q][spool.StateReady]) {
			if time.Now().After(deadline) {
				t.Fatalf("queue %s: %d of %d ready jobs handed out and acked in 90s", q, len(acked), len(want[q][spool.StateReady]))
			}
			res, err := left.Reserve(ctx, spool.ReserveOptions{Queues: []string{q}, Max: 100, Wait: 5 * time.Second})
			if err != nil {
				t.Fatalf("reserve from %s: %v", q, err)
			}
			for _, j := range res.Jobs {
				if !want[q][spool.StateReady][j.ID] || acked[j.ID] {
					t.Fatalf("queue %s handed out job %d, not one of its ready jobs or already acked", q, j.ID)
				}
				if _, err := left.Ack(ctx, j.ID, j.LeaseToken, nil); err != nil {
					t.Logf("ack %d: %v (it comes back)", j.ID, err)
					continue
				}
				acked[j.ID] = true
			}
		}
	}
}

// storedStreams sums the bytes of each stream's message files under a node's data
// directory (JetStream's file store: .../streams/<stream>/msgs/).
func storedStreams(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		parts := strings.Split(filepath.ToSlash(path), "/")
		for i := 0; i+2 < len(parts); i++ {
			if parts[i] == "streams" && parts[i+2] == "msgs" {
				info, err := d.Info()
				if err != nil {
					return err
				}
				out[parts[i+1]] += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
