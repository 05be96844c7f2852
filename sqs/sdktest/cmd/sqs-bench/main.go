// Command sqs-bench measures spool's SQS front with the AWS SDK for Go v2: P producers send
// N messages of S bytes with SendMessageBatch (10 a call) while C consumers take them with
// ReceiveMessage (10 a call, long polling) and DeleteMessageBatch. The clock runs from the
// first send until the last delete.
//
//	spool serve --sqs 127.0.0.1:9324 &
//	go run ./cmd/sqs-bench -endpoint http://127.0.0.1:9324 -messages 20000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func main() {
	endpoint := flag.String("endpoint", "http://127.0.0.1:9324", "SQS endpoint of a spool server (spool serve --sqs)")
	queue := flag.String("queue", fmt.Sprintf("sqs-bench-%d", time.Now().Unix()), "queue to create and use")
	messages := flag.Int("messages", 20000, "messages to send and delete")
	producers := flag.Int("producers", 4, "concurrent SendMessageBatch loops")
	consumers := flag.Int("consumers", 4, "concurrent ReceiveMessage + DeleteMessageBatch loops")
	size := flag.Int("size", 128, "message body size in bytes")
	flag.Parse()
	if err := run(*endpoint, *queue, *messages, *producers, *consumers, *size); err != nil {
		fmt.Fprintln(os.Stderr, "sqs-bench:", err)
		os.Exit(1)
	}
}

func run(endpoint, queue string, n, producers, consumers, size int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c := sqs.New(sqs.Options{BaseEndpoint: aws.String(endpoint), Region: "us-east-1", Credentials: aws.AnonymousCredentials{}})
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queue), Attributes: map[string]string{"VisibilityTimeout": "60"}})
	if err != nil {
		return err
	}
	body := aws.String(strings.Repeat("x", size))
	var next, deleted atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	start := time.Now()
	var pw sync.WaitGroup
	for range producers {
		pw.Go(func() {
			entries := make([]types.SendMessageBatchRequestEntry, 10)
			for i := range entries {
				entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: body}
			}
			for {
				k := next.Add(10) - 10
				if k >= int64(n) {
					return
				}
				m := min(10, int64(n)-k)
				out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries[:m]})
				if err != nil {
					fail(err)
					return
				}
				if len(out.Failed) > 0 {
					fail(fmt.Errorf("send: %s", aws.ToString(out.Failed[0].Message)))
					return
				}
			}
		})
	}
	sent := make(chan time.Duration, 1)
	go func() { pw.Wait(); sent <- time.Since(start) }()
	var cw sync.WaitGroup
	for range consumers {
		cw.Go(func() {
			for deleted.Load() < int64(n) && ctx.Err() == nil {
				rec, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				if len(rec.Messages) == 0 {
					continue
				}
				entries := make([]types.DeleteMessageBatchRequestEntry, len(rec.Messages))
				for i, m := range rec.Messages {
					entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle}
				}
				out, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries})
				if err != nil {
					fail(err)
					return
				}
				deleted.Add(int64(len(out.Successful)))
			}
		})
	}
	cw.Wait()
	if firstErr != nil {
		return firstErr
	}
	took := time.Since(start)
	sendDone := <-sent
	fmt.Printf("messages: %d of %d bytes, %d producers, %d consumers\n", n, size, producers, consumers)
	fmt.Printf("send: %s (%.0f msgs/s)\n", sendDone.Round(time.Millisecond), float64(n)/sendDone.Seconds())
	fmt.Printf("throughput: %.0f msgs/s (send+receive+delete, %s)\n", float64(n)/took.Seconds(), took.Round(time.Millisecond))
	_, err = c.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl})
	return err
}
