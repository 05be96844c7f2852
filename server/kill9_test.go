package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// post sends one JSON request and decodes a 200 answer into out; it never calls t.Fatal, so
// that goroutines may use it while the server is killed under them.
func post(ctx context.Context, url string, body, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// kill -9 in the middle of a load of enqueues, reservations and acks: every enqueue that was
// answered survives, and no job whose ack was answered is handed out again, though its
// reservation lived only in the killed node's memory and JetStream may have lost its
// consumer's latest state.
func TestKill9UnderLoad(t *testing.T) {
	t.Parallel()
	kill9UnderLoad(t)
}

// The same with no finished job kept (--retention 0): an ack is then JetStream's ack alone,
// with no record of the job, and must hold as well.
func TestKill9UnderLoadWithoutRetention(t *testing.T) {
	t.Parallel()
	kill9UnderLoad(t, "--retention", "0")
}

func kill9UnderLoad(t *testing.T, extra ...string) {
	if testing.Short() {
		t.Skip("builds and kills a child process")
	}
	kept := len(extra) == 0 // finished jobs stay queryable
	bin := buildSpool(t)
	data, addr := t.TempDir(), freeAddr(t)
	base := "http://" + addr
	cmd := spawn(t, bin, data, addr, extra...)
	if st := call(t, "PUT", base+"/v1/queues/load", map[string]any{"lease": "2s"}, nil); st/100 != 2 {
		t.Fatalf("create queue: %d", st)
	}

	type job struct {
		ID         string `json:"id"`
		LeaseToken string `json:"lease_token"`
		State      string `json:"state"`
	}
	var mu sync.Mutex
	enqueued, acked, ackSent := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var nAcked atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { // producer
			for ctx.Err() == nil {
				jobs := make([]map[string]any, 50)
				for i := range jobs {
					jobs[i] = map[string]any{"payload": i}
				}
				var out struct{ Jobs []job }
				if post(ctx, base+"/v1/queues/load/jobs", map[string]any{"jobs": jobs}, &out) != nil {
					return // the server is gone
				}
				mu.Lock()
				for _, j := range out.Jobs {
					enqueued[j.ID] = true
				}
				mu.Unlock()
			}
		})
		wg.Go(func() { // consumer
			for ctx.Err() == nil {
				var res struct{ Jobs []job }
				if post(ctx, base+"/v1/reserve", map[string]any{"queues": []string{"load"}, "max": 20, "wait": "1s"}, &res) != nil {
					return
				}
				if len(res.Jobs) == 0 {
					continue
				}
				acks := make([]map[string]string, len(res.Jobs))
				mu.Lock()
				for i, j := range res.Jobs {
					acks[i] = map[string]string{"id": j.ID, "lease_token": j.LeaseToken}
					ackSent[j.ID] = true
				}
				mu.Unlock()
				var out struct {
					Results []struct {
						ID    string `json:"id"`
						State string `json:"state"`
					} `json:"results"`
				}
				if post(ctx, base+"/v1/ack", map[string]any{"acks": acks}, &out) != nil {
					return
				}
				mu.Lock()
				for _, r := range out.Results {
					if r.State == "succeeded" {
						acked[r.ID] = true
						nAcked.Add(1)
					}
				}
				mu.Unlock()
			}
		})
	}
	// Some hundreds of jobs through, with reservations and acks in flight: kill -9.
	deadline := time.Now().Add(60 * time.Second)
	for nAcked.Load() < 400 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	stop()
	wg.Wait()
	if nAcked.Load() < 400 {
		t.Fatalf("only %d jobs acked before the kill", nAcked.Load())
	}

	spawn(t, bin, data, addr, extra...)
	// Everything left comes back: ready jobs at once, jobs whose leases died with the node
	// when their 2 s lease ends. None that was acked may be among them.
	after := map[string]bool{}
	for empty := 0; empty < 2; {
		var res struct{ Jobs []job }
		if st := call(t, "POST", base+"/v1/reserve", map[string]any{"queues": []string{"load"}, "max": 100, "wait": "3s"}, &res); st != 200 {
			t.Fatalf("reserve after restart: %d", st)
		}
		if len(res.Jobs) == 0 {
			empty++
			continue
		}
		empty = 0
		acks := make([]map[string]string, len(res.Jobs))
		for i, j := range res.Jobs {
			if acked[j.ID] {
				t.Fatalf("job %s, acked before the kill, was handed out again after it", j.ID)
			}
			after[j.ID] = true
			acks[i] = map[string]string{"id": j.ID, "lease_token": j.LeaseToken}
		}
		call(t, "POST", base+"/v1/ack", map[string]any{"acks": acks}, nil)
	}
	lost := 0
	for id := range enqueued {
		if acked[id] || after[id] {
			continue
		}
		// An ack stored whose answer the kill cut off: succeeded (or, kept for none,
		// gone), not lost.
		var j job
		st := call(t, "GET", base+"/v1/jobs/"+id, nil, &j)
		if st == 200 && j.State == "succeeded" || !kept && st == 404 && ackSent[id] {
			continue
		}
		lost++
		if lost <= 5 {
			t.Errorf("job %s was enqueued (answered) and is neither succeeded nor offered again: state %q", id, j.State)
		}
	}
	gone := 0 // acked jobs without a record: the ack without one was taken
	for id := range acked {
		var j job
		st := call(t, "GET", base+"/v1/jobs/"+id, nil, &j)
		if (st != 200 || j.State != "succeeded") && (kept || st != 404) {
			t.Fatalf("acked job %s after restart: status %d, state %q", id, st, j.State)
		}
		if st == 404 {
			gone++
		}
	}
	if !kept && gone == 0 {
		t.Fatalf("none of the %d acked jobs went without a record: the test did not take that path", len(acked))
	}
	if lost > 0 {
		t.Fatalf("%d of %d answered enqueues lost", lost, len(enqueued))
	}
	t.Logf("%d enqueued, %d acked before the kill (%d of them without a record), %d reserved after the restart", len(enqueued), len(acked), gone, len(after))
}
