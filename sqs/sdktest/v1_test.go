//lint:file-ignore SA1019 aws-sdk-go v1 (deprecated) is used on purpose: it speaks the query protocol.

package sdktest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	sqsv1 "github.com/aws/aws-sdk-go/service/sqs"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/server"
)

// newV1Client is aws-sdk-go 1.44, which speaks the query protocol (form requests, XML
// answers), as Shoryuken's and other older SDKs do. It checks the MD5 sums of answers too.
func newV1Client(t *testing.T, srv *spooltest.Server, key, secret string) *sqsv1.SQS {
	t.Helper()
	creds := credentials.AnonymousCredentials
	if key != "" {
		creds = credentials.NewStaticCredentials(key, secret, "")
	}
	sess, err := session.NewSession(&aws.Config{
		Endpoint: aws.String("http://" + srv.Addrs.SQS), Region: aws.String("eu-west-1"),
		Credentials: creds, MaxRetries: aws.Int(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	return sqsv1.New(sess)
}

func wantV1Error(t *testing.T, what string, err error, code string) {
	t.Helper()
	ae, ok := err.(awserr.Error)
	if !ok || ae.Code() != code {
		t.Fatalf("%s: %v, want error code %s", what, err, code)
	}
}

func TestSDKv1QueryProtocol(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(c *server.Config) { c.SQSCredentials = map[string]string{"AKIDV1": "v1secret"} })
	c := newV1Client(t, srv, "AKIDV1", "v1secret")
	ctx := ctxT(t)

	dlq, err := c.CreateQueueWithContext(ctx, &sqsv1.CreateQueueInput{QueueName: aws.String("legacy-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.CreateQueueWithContext(ctx, &sqsv1.CreateQueueInput{
		QueueName: aws.String("legacy"),
		Attributes: map[string]*string{
			"VisibilityTimeout": aws.String("20"),
			"RedrivePolicy":     aws.String(`{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:000000000000:legacy-dlq","maxReceiveCount":5}`),
		},
		Tags: map[string]*string{"app": aws.String("shoryuken")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(aws.StringValue(q.QueueUrl), "/000000000000/legacy") {
		t.Fatalf("queue URL %s", aws.StringValue(q.QueueUrl))
	}
	_, err = c.GetQueueUrlWithContext(ctx, &sqsv1.GetQueueUrlInput{QueueName: aws.String("missing")})
	wantV1Error(t, "GetQueueUrl of a missing queue", err, sqsv1.ErrCodeQueueDoesNotExist)

	list, err := c.ListQueuesWithContext(ctx, &sqsv1.ListQueuesInput{QueueNamePrefix: aws.String("legacy")})
	if err != nil || len(list.QueueUrls) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	attrs, err := c.GetQueueAttributesWithContext(ctx, &sqsv1.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: aws.StringSlice([]string{"All"})})
	if err != nil || aws.StringValue(attrs.Attributes["VisibilityTimeout"]) != "20" || !strings.Contains(aws.StringValue(attrs.Attributes["RedrivePolicy"]), "legacy-dlq") {
		t.Fatalf("attributes: %v %v", attrs, err)
	}
	if _, err := c.SetQueueAttributesWithContext(ctx, &sqsv1.SetQueueAttributesInput{QueueUrl: q.QueueUrl, Attributes: map[string]*string{"DelaySeconds": aws.String("0")}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListQueueTagsWithContext(ctx, &sqsv1.ListQueueTagsInput{QueueUrl: q.QueueUrl})
	if err != nil || aws.StringValue(tags.Tags["app"]) != "shoryuken" {
		t.Fatalf("tags: %v %v", tags, err)
	}
	if _, err := c.TagQueueWithContext(ctx, &sqsv1.TagQueueInput{QueueUrl: q.QueueUrl, Tags: map[string]*string{"x": aws.String("y")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagQueueWithContext(ctx, &sqsv1.UntagQueueInput{QueueUrl: q.QueueUrl, TagKeys: aws.StringSlice([]string{"x"})}); err != nil {
		t.Fatal(err)
	}
	src, err := c.ListDeadLetterSourceQueuesWithContext(ctx, &sqsv1.ListDeadLetterSourceQueuesInput{QueueUrl: dlq.QueueUrl})
	if err != nil || len(src.QueueUrls) != 1 {
		t.Fatalf("dead-letter sources: %v %v", src, err)
	}

	body := "line 1\r\nline 2 <xml> & \"quotes\" ünïcødé"
	if _, err := c.SendMessageWithContext(ctx, &sqsv1.SendMessageInput{
		QueueUrl: q.QueueUrl, MessageBody: aws.String(body),
		MessageAttributes: map[string]*sqsv1.MessageAttributeValue{
			"shoryuken_class": {DataType: aws.String("String"), StringValue: aws.String("HelloWorker")},
			"bin":             {DataType: aws.String("Binary"), BinaryValue: []byte{9, 8, 7}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	batch, err := c.SendMessageBatchWithContext(ctx, &sqsv1.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: []*sqsv1.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("A")},
		{Id: aws.String("b"), MessageBody: aws.String("B"), DelaySeconds: aws.Int64(1)},
		{Id: aws.String("c"), MessageBody: aws.String("")},
	}})
	if err != nil || len(batch.Successful) != 2 || len(batch.Failed) != 1 || aws.StringValue(batch.Failed[0].Id) != "c" {
		t.Fatalf("send batch: %v %v", batch, err)
	}
	_, err = c.SendMessageBatchWithContext(ctx, &sqsv1.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: []*sqsv1.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("A")}, {Id: aws.String("a"), MessageBody: aws.String("A")},
	}})
	wantV1Error(t, "repeated batch ids", err, sqsv1.ErrCodeBatchEntryIdsNotDistinct)

	got := map[string]*sqsv1.Message{}
	spooltest.Eventually(t, 15*time.Second, func() error {
		rec, err := c.ReceiveMessageWithContext(ctx, &sqsv1.ReceiveMessageInput{
			QueueUrl: q.QueueUrl, MaxNumberOfMessages: aws.Int64(10), WaitTimeSeconds: aws.Int64(2),
			AttributeNames: aws.StringSlice([]string{"All"}), MessageAttributeNames: aws.StringSlice([]string{"All"}),
		})
		if err != nil {
			return err
		}
		for _, m := range rec.Messages {
			got[aws.StringValue(m.Body)] = m
		}
		if len(got) < 3 {
			return fmt.Errorf("received %d of 3", len(got))
		}
		return nil
	})
	m := got[body]
	if m == nil || aws.StringValue(m.MessageAttributes["shoryuken_class"].StringValue) != "HelloWorker" ||
		string(m.MessageAttributes["bin"].BinaryValue) != "\x09\x08\x07" || aws.StringValue(m.Attributes["ApproximateReceiveCount"]) != "1" {
		t.Fatalf("message over the query protocol: %v", m)
	}
	if _, err := c.ChangeMessageVisibilityWithContext(ctx, &sqsv1.ChangeMessageVisibilityInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: aws.Int64(600)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ChangeMessageVisibilityBatchWithContext(ctx, &sqsv1.ChangeMessageVisibilityBatchInput{QueueUrl: q.QueueUrl, Entries: []*sqsv1.ChangeMessageVisibilityBatchRequestEntry{
		{Id: aws.String("x"), ReceiptHandle: got["A"].ReceiptHandle, VisibilityTimeout: aws.Int64(600)},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteMessageWithContext(ctx, &sqsv1.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	del, err := c.DeleteMessageBatchWithContext(ctx, &sqsv1.DeleteMessageBatchInput{QueueUrl: q.QueueUrl, Entries: []*sqsv1.DeleteMessageBatchRequestEntry{
		{Id: aws.String("a"), ReceiptHandle: got["A"].ReceiptHandle}, {Id: aws.String("b"), ReceiptHandle: got["B"].ReceiptHandle},
	}})
	if err != nil || len(del.Successful) != 2 {
		t.Fatalf("delete batch: %v %v", del, err)
	}
	_, err = c.DeleteMessageWithContext(ctx, &sqsv1.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: aws.String("bad")})
	wantV1Error(t, "delete with a bad handle", err, sqsv1.ErrCodeReceiptHandleIsInvalid)

	if _, err := c.PurgeQueueWithContext(ctx, &sqsv1.PurgeQueueInput{QueueUrl: q.QueueUrl}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteQueueWithContext(ctx, &sqsv1.DeleteQueueInput{QueueUrl: q.QueueUrl}); err != nil {
		t.Fatal(err)
	}
	_, err = newV1Client(t, srv, "AKIDV1", "nope").ListQueuesWithContext(ctx, &sqsv1.ListQueuesInput{})
	wantV1Error(t, "wrong secret", err, "SignatureDoesNotMatch")
}
