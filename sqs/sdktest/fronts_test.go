package sdktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/beanstalkd/go-beanstalk"
)

// A message sent over SQS is a job over HTTP and beanstalkd, and the reverse.
func TestSQSAndOtherFronts(t *testing.T) {
	t.Parallel()
	srv, c, ctx := unsignedClient(t)
	qurl := aws.String(createQueue(t, c, "shared", nil))
	bs, err := beanstalk.Dial("tcp", srv.Addrs.Beanstalk)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	tubes := beanstalk.NewTubeSet(bs, "shared")

	// SQS -> beanstalkd.
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String("from sqs")})
	if err != nil {
		t.Fatal(err)
	}
	id, body, err := tubes.Reserve(10 * time.Second)
	if err != nil || string(body) != "from sqs" || fmt.Sprint(id) != aws.ToString(sent.MessageId) {
		t.Fatalf("beanstalkd reserve: %d %q %v (sqs message id %s)", id, body, err, aws.ToString(sent.MessageId))
	}
	if err := bs.Delete(id); err != nil {
		t.Fatal(err)
	}
	job := jobOverHTTP(t, srv, sent.MessageId)
	if job.State != "succeeded" {
		t.Fatalf("state after a beanstalkd delete: %s", job.State)
	}

	// HTTP -> SQS: the job's metadata are String message attributes.
	postJSON(t, srv.URL+"/v1/queues/shared/jobs", `{"type":"email.send","payload":{"n":1},"metadata":{"origin":"http"}}`, nil)
	rec, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qurl, WaitTimeSeconds: 5, MessageAttributeNames: []string{"All"}})
	if err != nil || len(rec.Messages) != 1 {
		t.Fatalf("receive of an HTTP job: %v %v", rec, err)
	}
	m := rec.Messages[0]
	if aws.ToString(m.Body) != `{"n":1}` || aws.ToString(m.MessageAttributes["origin"].StringValue) != "http" {
		t.Fatalf("HTTP job over SQS: body %q attributes %v", aws.ToString(m.Body), m.MessageAttributes)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: qurl, ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	job = jobOverHTTP(t, srv, m.MessageId)
	if job.State != "succeeded" {
		t.Fatalf("HTTP job after an SQS delete: %s", job.State)
	}

	// beanstalkd -> SQS, and SQS attributes seen over HTTP.
	tube := beanstalk.NewTube(bs, "shared")
	bid, err := tube.Put([]byte("from beanstalkd"), 1024, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rec, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qurl, WaitTimeSeconds: 5})
	if err != nil || len(rec.Messages) != 1 || aws.ToString(rec.Messages[0].Body) != "from beanstalkd" || aws.ToString(rec.Messages[0].MessageId) != fmt.Sprint(bid) {
		t.Fatalf("receive of a beanstalkd job: %v %v", rec, err)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: qurl, ReceiptHandle: rec.Messages[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.StatsJob(bid); !errors.Is(err, beanstalk.ErrNotFound) {
		t.Fatalf("beanstalkd stats-job after an SQS delete: %v, want NOT_FOUND", err)
	}
	// SQS -> HTTP: reserved and acked over the HTTP API.
	viaHTTP, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String(`{"via":"http"}`)})
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Jobs []struct {
			ID         string          `json:"id"`
			Payload    json.RawMessage `json:"payload"`
			LeaseToken string          `json:"lease_token"`
		} `json:"jobs"`
	}
	postJSON(t, srv.URL+"/v1/queues/shared/reserve", `{"wait":"5s"}`, &res)
	if len(res.Jobs) != 1 || res.Jobs[0].ID != aws.ToString(viaHTTP.MessageId) || string(res.Jobs[0].Payload) != `{"via":"http"}` {
		t.Fatalf("HTTP reserve of an SQS message: %+v", res)
	}
	postJSON(t, srv.URL+"/v1/jobs/"+res.Jobs[0].ID+"/ack", `{"lease_token":"`+res.Jobs[0].LeaseToken+`"}`, nil)
	if job = jobOverHTTP(t, srv, viaHTTP.MessageId); job.State != "succeeded" {
		t.Fatalf("SQS message after an HTTP ack: %s", job.State)
	}

	attr, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String("x"),
		MessageAttributes: map[string]types.MessageAttributeValue{"k": {DataType: aws.String("String"), StringValue: aws.String("v")}}})
	if err != nil {
		t.Fatal(err)
	}
	job = jobOverHTTP(t, srv, attr.MessageId)
	if job.State != "ready" || job.Metadata["sqs.attr.k"] != "String:v" {
		t.Fatalf("SQS message over HTTP: %+v", job)
	}
}

// postJSON posts body to url and decodes the answer into v (when not nil).
func postJSON(t *testing.T, url, body string, v any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s %s", url, resp.Status, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
	}
}
