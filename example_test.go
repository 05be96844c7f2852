package spool_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/spoolq/spool"
)

// Enqueue a job with a JSON payload and options.
func ExampleClient_Enqueue() {
	ctx := context.Background()
	client, err := spool.NewClient(os.Getenv("SPOOL_SERVER")) // "" means http://127.0.0.1:7420
	if err != nil {
		log.Fatal(err)
	}

	type welcome struct {
		To string `json:"to"`
	}
	job, err := client.Enqueue(ctx, "email", "email.welcome", welcome{To: "a@example.com"},
		spool.Priority(10),
		spool.MaxAttempts(5),
		spool.UniqueKey("welcome-42"),
		spool.Metadata(map[string]string{"tenant": "acme"}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Queue, job.Type, job.State, job.Priority)

	// The same unique key while the first job is unfinished: nothing is enqueued.
	again, err := client.Enqueue(ctx, "email", "email.welcome", welcome{To: "a@example.com"},
		spool.UniqueKey("welcome-42"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(again.Duplicate, again.ID == job.ID)

	// A delayed job.
	later, err := client.Enqueue(ctx, "email", "email.reminder", nil, spool.Delay(24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(later.State)

	// Cancelling a job frees its unique key.
	cancelled, err := client.Cancel(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cancelled.State)
	// Output:
	// email email.welcome ready 10
	// true true
	// delayed
	// cancelled
}

// Reserve jobs, process them and acknowledge them.
func ExampleClient_Reserve() {
	ctx := context.Background()
	client, err := spool.NewClient(os.Getenv("SPOOL_SERVER"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Enqueue(ctx, "thumbnails", "thumb.make", map[string]int{"width": 128}); err != nil {
		log.Fatal(err)
	}

	res, err := client.Reserve(ctx, spool.ReserveOptions{
		Queues: []string{"thumbnails"},
		Max:    10,
		Wait:   5 * time.Second, // long-poll when nothing is ready
		Worker: "example",
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, job := range res.Jobs {
		var args struct{ Width int }
		if err := job.DecodePayload(&args); err != nil {
			// Not worth retrying: set it aside for an operator.
			_, _ = client.Bury(ctx, job.ID, job.LeaseToken, err.Error())
			continue
		}
		fmt.Println("making a thumbnail of width", args.Width, "attempt", job.Attempts)
		done, err := client.Ack(ctx, job.ID, job.LeaseToken, map[string]string{"path": "/thumbs/1.png"})
		if errors.Is(err, spool.ErrLeaseLost) {
			continue // the lease expired: another worker has the job now
		} else if err != nil {
			log.Fatal(err)
		}
		fmt.Println(done.State, string(done.Result))
	}
	// Output:
	// making a thumbnail of width 128 attempt 1
	// succeeded {"path":"/thumbs/1.png"}
}

// Follow a job's status by id.
func ExampleClient_Job() {
	ctx := context.Background()
	client, err := spool.NewClient(os.Getenv("SPOOL_SERVER"))
	if err != nil {
		log.Fatal(err)
	}
	job, err := client.Enqueue(ctx, "reports", "report.build", map[string]string{"month": "2026-11"})
	if err != nil {
		log.Fatal(err)
	}

	status, err := client.Job(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", status.State, "attempts:", status.Attempts)

	// A worker takes the job and finishes it (here inline).
	go func() {
		res, err := client.Reserve(ctx, spool.ReserveOptions{Queues: []string{"reports"}, Wait: 5 * time.Second})
		if err != nil || len(res.Jobs) == 0 {
			return
		}
		_, _ = client.Ack(ctx, res.Jobs[0].ID, res.Jobs[0].LeaseToken, map[string]int{"pages": 12})
	}()

	// Wait until the job is finished, at most ten seconds.
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	final, err := client.WaitJob(waitCtx, job.ID, 50*time.Millisecond)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", final.State, "result:", string(final.Result))

	// An unknown id.
	_, err = client.Job(ctx, 1)
	fmt.Println(errors.Is(err, spool.ErrJobNotFound))
	// Output:
	// status: ready attempts: 0
	// status: succeeded result: {"pages":12}
	// true
}

// Connect to the nodes of a cluster: a request fails over to the next node when one is
// unreachable or answers 503.
func ExampleNewClient() {
	client, err := spool.NewClient("http://10.0.0.1:7420,http://10.0.0.2:7420,http://10.0.0.3:7420",
		spool.WithTimeout(10*time.Second),
		spool.WithUserAgent("billing/1.4"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(client.Servers()))
	// Output: 3
}

// Carry a job over from another system in the buried state: no worker gets it until it is
// kicked.
func ExampleBuried() {
	ctx := context.Background()
	client, err := spool.NewClient(os.Getenv("SPOOL_SERVER"))
	if err != nil {
		log.Fatal(err)
	}
	job, err := client.Enqueue(ctx, "carried-over", "", []byte("failed elsewhere"), spool.Buried(),
		spool.Metadata(map[string]string{"origin": "legacy-queue"}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.State)

	kicked, err := client.Kick(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(kicked.State)
	// Output:
	// buried
	// ready
}

// Keep no finished job of a queue (retention 0): once acked, a job is not found any more,
// and a prompt ack costs one stored write less. Another queue keeps them a day.
func ExampleQueueSettings_retention() {
	ctx := context.Background()
	client, err := spool.NewClient(os.Getenv("SPOOL_SERVER"))
	if err != nil {
		log.Fatal(err)
	}
	none, day := time.Duration(0), 24*time.Hour
	q, err := client.UpdateQueue(ctx, "fire-and-forget", spool.QueueSettings{Retention: &none})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(q.Name, q.Retention)
	q, err = client.UpdateQueue(ctx, "audited", spool.QueueSettings{Retention: &day})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(q.Name, q.Retention)
	// Output:
	// fire-and-forget 0s
	// audited 24h0m0s
}

// Create a queue with its own settings: a lease, attempts, and the copies of its jobs the
// cluster keeps (1 here, which a server alone has; 3 or 5 on a cluster of that many nodes).
// Replicas are set when the queue is made.
func ExampleClient_UpdateQueue() {
	ctx := context.Background()
	client, err := spool.NewClient(os.Getenv("SPOOL_SERVER"))
	if err != nil {
		log.Fatal(err)
	}
	q, err := client.UpdateQueue(ctx, "thumbnails", spool.QueueSettings{Lease: 5 * time.Minute, MaxAttempts: 3, Replicas: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(q.Name, q.Lease, q.MaxAttempts, q.Replicas)

	// Other replicas for an existing queue are refused: make a new queue and move the jobs.
	_, err = client.UpdateQueue(ctx, "thumbnails", spool.QueueSettings{Replicas: 3})
	fmt.Println(errors.Is(err, spool.ErrReplicasConflict))

	// More replicas than the cluster has nodes are refused, and the queue is not made.
	_, err = client.UpdateQueue(ctx, "replicated", spool.QueueSettings{Replicas: 5})
	fmt.Println(errors.Is(err, spool.ErrReplicasUnavailable))
	// Output:
	// thumbnails 5m0s 3 1
	// true
	// true
}

// List some queues out of many: those whose names start with a prefix (one per tenant
// here), those paused, or the first few. The server selects them without reading the others.
func ExampleClient_QueueList() {
	ctx := context.Background()
	client, err := spool.NewClient(os.Getenv("SPOOL_SERVER"))
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{"tenant-1", "tenant-2", "tenant-3"} {
		if _, err := client.UpdateQueue(ctx, name, spool.QueueSettings{}); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := client.Pause(ctx, "tenant-2", 0); err != nil {
		log.Fatal(err)
	}
	show := func(p *spool.QueueListParams) {
		qs, err := client.QueueList(ctx, p)
		if err != nil {
			log.Fatal(err)
		}
		var names []string
		for _, q := range qs {
			names = append(names, q.Name)
		}
		fmt.Println(strings.Join(names, " "))
	}
	show(&spool.QueueListParams{Prefix: "tenant-"})
	show(&spool.QueueListParams{Prefix: "tenant-", Paused: true})
	show(&spool.QueueListParams{Prefix: "tenant-", Limit: 2})
	// Output:
	// tenant-1 tenant-2 tenant-3
	// tenant-2
	// tenant-1 tenant-2
}
