package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/server"
)

// startServer runs a spool server with the SQS front on.
func startServer(t *testing.T, configure func(*server.Config)) *spooltest.Server {
	t.Helper()
	srv, err := spooltest.Run(t.TempDir(), func(c *server.Config) {
		c.SQSAddr = "127.0.0.1:0"
		c.BeanstalkAddr = "127.0.0.1:0"
		if configure != nil {
			configure(c)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return srv
}

// unsignedClient starts a server and a client that signs nothing.
func unsignedClient(t *testing.T) (*spooltest.Server, *sqs.Client, context.Context) {
	srv := startServer(t, nil)
	return srv, newClient(srv, "", ""), ctxT(t)
}

func newClient(srv *spooltest.Server, key, secret string) *sqs.Client {
	var creds aws.CredentialsProvider = aws.AnonymousCredentials{}
	if key != "" {
		creds = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}, nil
		})
	}
	return sqs.New(sqs.Options{
		BaseEndpoint: aws.String("http://" + srv.Addrs.SQS),
		Region:       "us-east-1",
		Credentials:  creds,
	})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantAPIError checks that err is an API error with the given code.
func wantAPIError(t *testing.T, what string, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("%s: %v, want API error %s", what, err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("%s: error code %q (%v), want %s", what, ae.ErrorCode(), err, code)
	}
}

func TestSDKv2Queues(t *testing.T) {
	t.Parallel()
	srv, c, ctx := unsignedClient(t)

	_, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("nope")})
	var qdne *types.QueueDoesNotExist
	if !errors.As(err, &qdne) {
		t.Fatalf("GetQueueUrl of a missing queue: %v, want QueueDoesNotExist", err)
	}
	_, err = c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("jobs.fifo"), Attributes: map[string]string{"FifoQueue": "true"}})
	wantAPIError(t, "create FIFO queue", err, "AWS.SimpleQueueService.UnsupportedOperation")
	_, err = c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("bad name")})
	wantAPIError(t, "create with a bad name", err, "InvalidParameterValue")
	_, err = c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("x"), Attributes: map[string]string{"Bogus": "1"}})
	wantAPIError(t, "create with an unknown attribute", err, "InvalidAttributeName")
	_, err = c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("x"), Attributes: map[string]string{"DelaySeconds": "901"}})
	wantAPIError(t, "create with DelaySeconds 901", err, "InvalidAttributeValue")

	created, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String("orders"),
		Attributes: map[string]string{"VisibilityTimeout": "45", "DelaySeconds": "0", "ReceiveMessageWaitTimeSeconds": "2"},
		Tags:       map[string]string{"team": "shop"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantURL := "http://" + srv.Addrs.SQS + "/000000000000/orders"
	if aws.ToString(created.QueueUrl) != wantURL {
		t.Fatalf("queue URL %s, want %s", aws.ToString(created.QueueUrl), wantURL)
	}
	// Again with the same attributes: the same queue; with others: QueueNameExists.
	if _, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("orders"), Attributes: map[string]string{"VisibilityTimeout": "45"}}); err != nil {
		t.Fatalf("create again: %v", err)
	}
	_, err = c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("orders"), Attributes: map[string]string{"VisibilityTimeout": "46"}})
	var exists *types.QueueNameExists
	if !errors.As(err, &exists) {
		t.Fatalf("create with other attributes: %v, want QueueNameExists", err)
	}
	if tags, err := c.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: created.QueueUrl}); err != nil || tags.Tags["team"] != "shop" {
		t.Fatalf("tags given at creation: %v %v", tags, err)
	}
	got, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("orders")})
	if err != nil || aws.ToString(got.QueueUrl) != wantURL {
		t.Fatalf("GetQueueUrl: %v %v", got, err)
	}

	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: created.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"VisibilityTimeout": "45", "DelaySeconds": "0", "ReceiveMessageWaitTimeSeconds": "2",
		"MessageRetentionPeriod": "345600", "MaximumMessageSize": "262144",
		"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0", "ApproximateNumberOfMessagesDelayed": "0",
		"QueueArn": "arn:aws:sqs:us-east-1:000000000000:orders",
	} {
		if attrs.Attributes[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, attrs.Attributes[k], want)
		}
	}
	if ts, _ := strconv.ParseInt(attrs.Attributes["CreatedTimestamp"], 10, 64); time.Since(time.Unix(ts, 0)) > time.Minute {
		t.Errorf("CreatedTimestamp %q", attrs.Attributes["CreatedTimestamp"])
	}
	_, err = c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: created.QueueUrl, AttributeNames: []types.QueueAttributeName{"Nope"}})
	wantAPIError(t, "get an unknown attribute", err, "InvalidAttributeName")

	if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: created.QueueUrl, Attributes: map[string]string{"VisibilityTimeout": "90", "MessageRetentionPeriod": "86400"}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: created.QueueUrl, Attributes: map[string]string{"VisibilityTimeout": "43201"}})
	wantAPIError(t, "set VisibilityTimeout 43201", err, "InvalidAttributeValue")
	_, err = c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: created.QueueUrl, Attributes: map[string]string{"QueueArn": "x"}})
	wantAPIError(t, "set a read-only attribute", err, "InvalidAttributeName")
	attrs, err = c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: created.QueueUrl, AttributeNames: []types.QueueAttributeName{"VisibilityTimeout", "MessageRetentionPeriod"}})
	if err != nil || attrs.Attributes["VisibilityTimeout"] != "90" || attrs.Attributes["MessageRetentionPeriod"] != "86400" || len(attrs.Attributes) != 2 {
		t.Fatalf("attributes after set: %v %v", attrs, err)
	}
	// The visibility timeout is the queue's lease, as the HTTP API shows it.
	var q struct {
		Lease string `json:"lease"`
	}
	getJSON(t, srv.URL+"/v1/queues/orders", &q)
	if q.Lease != "1m30s" {
		t.Fatalf("lease over HTTP %q, want 1m30s", q.Lease)
	}

	// Tags.
	if _, err := c.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: created.QueueUrl, Tags: map[string]string{"env": "prod", "team": "ops"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagQueue(ctx, &sqs.UntagQueueInput{QueueUrl: created.QueueUrl, TagKeys: []string{"env"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: created.QueueUrl})
	if err != nil || len(tags.Tags) != 1 || tags.Tags["team"] != "ops" {
		t.Fatalf("tags: %v %v", tags, err)
	}

	// Listing: prefix and pages.
	for i := range 5 {
		if _, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("page-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	var urls []string
	var token *string
	for pages := 0; ; pages++ {
		out, err := c.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String("page-"), MaxResults: aws.Int32(2), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, out.QueueUrls...)
		if token = out.NextToken; token == nil {
			break
		}
		if pages > 5 {
			t.Fatal("ListQueues does not end")
		}
	}
	if len(urls) != 5 || !strings.HasSuffix(urls[0], "/page-0") || !strings.HasSuffix(urls[4], "/page-4") {
		t.Fatalf("paged listing: %v", urls)
	}
	all, err := c.ListQueues(ctx, &sqs.ListQueuesInput{})
	if err != nil || len(all.QueueUrls) != 6 || all.NextToken != nil {
		t.Fatalf("listing: %v %v", all, err)
	}
	_, err = c.ListQueues(ctx, &sqs.ListQueuesInput{MaxResults: aws.Int32(1001)})
	wantAPIError(t, "ListQueues MaxResults 1001", err, "InvalidParameterValue")

	// Purge and delete.
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: created.QueueUrl, MessageBody: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: created.QueueUrl}); err != nil {
		t.Fatal(err)
	}
	rec, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: created.QueueUrl})
	if err != nil || len(rec.Messages) != 0 {
		t.Fatalf("receive after purge: %v %v", rec, err)
	}
	if _, err := c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: created.QueueUrl}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: created.QueueUrl, AttributeNames: []types.QueueAttributeName{"All"}})
	if !errors.As(err, &qdne) {
		t.Fatalf("attributes of a deleted queue: %v, want QueueDoesNotExist", err)
	}
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: created.QueueUrl, MessageBody: aws.String("x")})
	if !errors.As(err, &qdne) {
		t.Fatalf("send to a deleted queue: %v, want QueueDoesNotExist", err)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// httpJob is a job as the HTTP API shows it.
type httpJob struct {
	Queue          string            `json:"queue"`
	State          string            `json:"state"`
	Metadata       map[string]string `json:"metadata"`
	RunAt          time.Time         `json:"run_at"`
	LeaseExpiresAt time.Time         `json:"lease_expires_at"`
}

// jobOverHTTP reads the job of an SQS message id over the HTTP API.
func jobOverHTTP(t *testing.T, srv *spooltest.Server, messageID *string) httpJob {
	t.Helper()
	var j httpJob
	getJSON(t, srv.URL+"/v1/jobs/"+aws.ToString(messageID), &j)
	return j
}

func createQueue(t *testing.T, c *sqs.Client, name string, attrs map[string]string) string {
	t.Helper()
	out, err := c.CreateQueue(ctxT(t), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

func TestSDKv2Messages(t *testing.T) {
	t.Parallel()
	srv, c, ctx := unsignedClient(t)
	qurl := createQueue(t, c, "mail", map[string]string{"VisibilityTimeout": "30"})

	// The SDK checks MD5OfMessageBody and MD5OfMessageAttributes of every answer.
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(qurl),
		MessageBody: aws.String(`{"to":"a@example.com"} ünïcødé 🎉`),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"kind":   {DataType: aws.String("String"), StringValue: aws.String("welcome")},
			"tries":  {DataType: aws.String("Number"), StringValue: aws.String("3")},
			"blob":   {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 255}},
			"custom": {DataType: aws.String("String.json"), StringValue: aws.String(`{"a":1}`)},
		},
		MessageSystemAttributes: map[string]types.MessageSystemAttributeValue{
			"AWSTraceHeader": {DataType: aws.String("String"), StringValue: aws.String("Root=1-5759e988-bd862e3fe1be46a994272793")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(sent.MD5OfMessageAttributes) == "" || aws.ToString(sent.MD5OfMessageSystemAttributes) == "" {
		t.Fatalf("send answer without attribute checksums: %+v", sent)
	}
	before := time.Now()
	rec, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(qurl), MaxNumberOfMessages: 10, WaitTimeSeconds: 5,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Messages) != 1 {
		t.Fatalf("received %d messages, want 1", len(rec.Messages))
	}
	m := rec.Messages[0]
	if aws.ToString(m.MessageId) != aws.ToString(sent.MessageId) || aws.ToString(m.Body) != `{"to":"a@example.com"} ünïcødé 🎉` {
		t.Fatalf("message %+v", m)
	}
	if m.Attributes["ApproximateReceiveCount"] != "1" || m.Attributes["AWSTraceHeader"] != "Root=1-5759e988-bd862e3fe1be46a994272793" {
		t.Fatalf("system attributes %v", m.Attributes)
	}
	for _, k := range []string{"SentTimestamp", "ApproximateFirstReceiveTimestamp"} {
		ms, err := strconv.ParseInt(m.Attributes[k], 10, 64)
		if err != nil || time.UnixMilli(ms).After(time.Now()) || before.Sub(time.UnixMilli(ms)) > time.Minute {
			t.Fatalf("%s = %q", k, m.Attributes[k])
		}
	}
	if len(m.MessageAttributes) != 4 || string(m.MessageAttributes["blob"].BinaryValue) != "\x00\x01\x02\xff" ||
		aws.ToString(m.MessageAttributes["tries"].DataType) != "Number" || aws.ToString(m.MessageAttributes["custom"].StringValue) != `{"a":1}` {
		t.Fatalf("message attributes %+v", m.MessageAttributes)
	}
	// Only the named attributes, by name and by prefix.
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(qurl), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	rec, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(qurl), WaitTimeSeconds: 5, MessageAttributeNames: []string{"kind", "cust.*"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{"ApproximateReceiveCount"},
	})
	if err != nil || len(rec.Messages) != 1 {
		t.Fatalf("receive again: %v %v", rec, err)
	}
	m = rec.Messages[0]
	if len(m.MessageAttributes) != 1 || m.Attributes["ApproximateReceiveCount"] != "2" || len(m.Attributes) != 1 {
		t.Fatalf("second receive: attributes %v, message attributes %v", m.Attributes, m.MessageAttributes)
	}
	// The receipt handle is a lease: extend it, then delete.
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(qurl), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 43200}); err != nil {
		t.Fatal(err)
	}
	job := jobOverHTTP(t, srv, m.MessageId)
	if job.State != "reserved" || time.Until(job.LeaseExpiresAt) < 11*time.Hour {
		t.Fatalf("job after a 12h visibility: %+v", job)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(qurl), ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	job = jobOverHTTP(t, srv, m.MessageId)
	if job.State != "succeeded" {
		t.Fatalf("job after delete: %s", job.State)
	}
	// A stale handle deletes nothing and succeeds, as SQS; changing its visibility fails.
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(qurl), ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatalf("delete with a stale handle: %v", err)
	}
	_, err = c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(qurl), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 10})
	var notInflight *types.MessageNotInflight
	if !errors.As(err, &notInflight) {
		t.Fatalf("visibility of a deleted message: %v, want MessageNotInflight", err)
	}
	_, err = c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(qurl), ReceiptHandle: aws.String("garbage")})
	var invalid *types.ReceiptHandleIsInvalid
	if !errors.As(err, &invalid) {
		t.Fatalf("delete with a bad handle: %v, want ReceiptHandleIsInvalid", err)
	}

	// Parameter errors.
	for name, in := range map[string]*sqs.SendMessageInput{
		"empty body":  {QueueUrl: aws.String(qurl), MessageBody: aws.String("")},
		"bad char":    {QueueUrl: aws.String(qurl), MessageBody: aws.String("a\x00b")},
		"delay 901":   {QueueUrl: aws.String(qurl), MessageBody: aws.String("x"), DelaySeconds: 901},
		"dedup id":    {QueueUrl: aws.String(qurl), MessageBody: aws.String("x"), MessageDeduplicationId: aws.String("d")},
		"too large":   {QueueUrl: aws.String(qurl), MessageBody: aws.String(strings.Repeat("x", 256<<10+1))},
		"bad attr":    {QueueUrl: aws.String(qurl), MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{"AWS.x": {DataType: aws.String("String"), StringValue: aws.String("v")}}},
		"bad number":  {QueueUrl: aws.String(qurl), MessageBody: aws.String("x"), MessageAttributes: map[string]types.MessageAttributeValue{"n": {DataType: aws.String("Number"), StringValue: aws.String("ten")}}},
		"no queueurl": {QueueUrl: aws.String("http://host/000000000000/"), MessageBody: aws.String("x")},
	} {
		if _, err := c.SendMessage(ctx, in); err == nil {
			t.Errorf("send with %s: no error", name)
		}
	}
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(qurl), MessageBody: aws.String("a\x01b")})
	wantAPIError(t, "send with a control character", err, "InvalidMessageContents")
	_, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(qurl), MaxNumberOfMessages: 11})
	wantAPIError(t, "receive 11", err, "InvalidParameterValue")
	_, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(qurl), WaitTimeSeconds: 21})
	wantAPIError(t, "wait 21", err, "InvalidParameterValue")
}

func TestSDKv2Batches(t *testing.T) {
	t.Parallel()
	srv, c, ctx := unsignedClient(t)
	qurl := aws.String(createQueue(t, c, "batch", nil))

	var entries []types.SendMessageBatchRequestEntry
	for i := range 10 {
		entries = append(entries, types.SendMessageBatchRequestEntry{
			Id: aws.String(fmt.Sprintf("m%d", i)), MessageBody: aws.String(fmt.Sprintf("body %d", i)),
			MessageAttributes: map[string]types.MessageAttributeValue{"i": {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(i))}},
		})
	}
	entries[3].MessageBody = aws.String("") // fails alone
	out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: qurl, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 9 || len(out.Failed) != 1 || aws.ToString(out.Failed[0].Id) != "m3" || !out.Failed[0].SenderFault {
		t.Fatalf("send batch: %d ok, failed %+v", len(out.Successful), out.Failed)
	}
	_, err = c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: qurl, Entries: append(entries, entries[0])})
	wantAPIError(t, "11 entries", err, "AWS.SimpleQueueService.TooManyEntriesInBatchRequest")
	_, err = c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: qurl, Entries: []types.SendMessageBatchRequestEntry{entries[0], entries[0]}})
	var dup *types.BatchEntryIdsNotDistinct
	if !errors.As(err, &dup) {
		t.Fatalf("repeated ids: %v, want BatchEntryIdsNotDistinct", err)
	}
	_, err = c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: qurl, Entries: []types.SendMessageBatchRequestEntry{{Id: aws.String("a b"), MessageBody: aws.String("x")}}})
	wantAPIError(t, "bad entry id", err, "AWS.SimpleQueueService.InvalidBatchEntryId")
	_, err = c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: qurl, Entries: []types.DeleteMessageBatchRequestEntry{}})
	wantAPIError(t, "empty batch", err, "AWS.SimpleQueueService.EmptyBatchRequest")

	var msgs []types.Message
	spooltest.Eventually(t, 10*time.Second, func() error {
		rec, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qurl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60})
		if err != nil {
			return err
		}
		msgs = append(msgs, rec.Messages...)
		if len(msgs) < 9 {
			return fmt.Errorf("received %d of 9", len(msgs))
		}
		return nil
	})
	// ReceiveMessage's VisibilityTimeout is the lease of what it received.
	if j := jobOverHTTP(t, srv, msgs[0].MessageId); j.State != "reserved" || time.Until(j.LeaseExpiresAt) < 50*time.Second {
		t.Fatalf("job received with a 60 s visibility: %+v", j)
	}
	var vis []types.ChangeMessageVisibilityBatchRequestEntry
	var dels []types.DeleteMessageBatchRequestEntry
	for i, m := range msgs {
		vis = append(vis, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(fmt.Sprint("v", i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 120})
		dels = append(dels, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("d", i)), ReceiptHandle: m.ReceiptHandle})
	}
	vis = append(vis, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String("bad"), ReceiptHandle: aws.String("nope"), VisibilityTimeout: 10})
	vout, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: qurl, Entries: vis})
	if err != nil || len(vout.Successful) != 9 || len(vout.Failed) != 1 || aws.ToString(vout.Failed[0].Code) != "ReceiptHandleIsInvalid" {
		t.Fatalf("visibility batch: %+v %v", vout, err)
	}
	dels = append(dels[:9], types.DeleteMessageBatchRequestEntry{Id: aws.String("bad"), ReceiptHandle: aws.String("nope")})
	dout, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: qurl, Entries: dels})
	if err != nil || len(dout.Successful) != 9 || len(dout.Failed) != 1 {
		t.Fatalf("delete batch: %+v %v", dout, err)
	}
	spooltest.Eventually(t, 10*time.Second, func() error {
		a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: qurl, AttributeNames: []types.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
		if err != nil {
			return err
		}
		if a.Attributes["ApproximateNumberOfMessages"] != "0" || a.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
			return fmt.Errorf("counts %v", a.Attributes)
		}
		return nil
	})
}

func TestSDKv2DelaysAndVisibility(t *testing.T) {
	t.Parallel()
	srv, c, ctx := unsignedClient(t)
	qurl := aws.String(createQueue(t, c, "later", map[string]string{"VisibilityTimeout": "1"}))

	// A delay beyond 15 minutes: the message attribute SpoolDelaySeconds.
	long, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String("in a day"),
		MessageAttributes: map[string]types.MessageAttributeValue{"SpoolDelaySeconds": {DataType: aws.String("Number"), StringValue: aws.String("86400")}}})
	if err != nil {
		t.Fatal(err)
	}
	job := jobOverHTTP(t, srv, long.MessageId)
	if job.State != "delayed" || time.Until(job.RunAt) < 23*time.Hour {
		t.Fatalf("long-delayed job: %+v", job)
	}
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String("soon"), DelaySeconds: 1}); err != nil {
		t.Fatal(err)
	}
	spooltest.Eventually(t, 10*time.Second, func() error {
		a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: qurl, AttributeNames: []types.QueueAttributeName{"ApproximateNumberOfMessagesDelayed"}})
		if err != nil {
			return err
		}
		if a.Attributes["ApproximateNumberOfMessagesDelayed"] != "2" {
			return fmt.Errorf("delayed %s, want 2", a.Attributes["ApproximateNumberOfMessagesDelayed"])
		}
		return nil
	})
	rec, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qurl, WaitTimeSeconds: 10,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{"ApproximateReceiveCount"}})
	if err != nil || len(rec.Messages) != 1 || aws.ToString(rec.Messages[0].Body) != "soon" {
		t.Fatalf("delayed message: %+v %v", rec, err)
	}
	// Not deleted: the 1 s visibility timeout ends and the message comes back, counted.
	rec, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qurl, WaitTimeSeconds: 10,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{"ApproximateReceiveCount"}})
	if err != nil || len(rec.Messages) != 1 || rec.Messages[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("message after its visibility timeout: %+v %v", rec, err)
	}
}

func TestSDKv2RedriveAndMoveTask(t *testing.T) {
	t.Parallel()
	srv, c, ctx := unsignedClient(t)
	dlq := aws.String(createQueue(t, c, "work-dlq", nil))
	_, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("work"), Attributes: map[string]string{
		"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:missing","maxReceiveCount":"2"}`}})
	wantAPIError(t, "redrive to a missing queue", err, "InvalidAttributeValue")
	work := aws.String(createQueue(t, c, "work", map[string]string{
		"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:work-dlq","maxReceiveCount":"2"}`}))
	// Made again with the same policy written otherwise: the same queue.
	if _, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("work"), Attributes: map[string]string{
		"RedrivePolicy": `{"maxReceiveCount": 2, "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:work-dlq"}`}}); err != nil {
		t.Fatalf("create again with the same redrive policy: %v", err)
	}
	a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: work, AttributeNames: []types.QueueAttributeName{"RedrivePolicy"}})
	if err != nil || a.Attributes["RedrivePolicy"] != `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:work-dlq","maxReceiveCount":2}` {
		t.Fatalf("RedrivePolicy: %v %v", a, err)
	}
	src, err := c.ListDeadLetterSourceQueues(ctx, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: dlq})
	if err != nil || len(src.QueueUrls) != 1 || !strings.HasSuffix(src.QueueUrls[0], "/work") {
		t.Fatalf("dead-letter sources: %v %v", src, err)
	}

	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: work, MessageBody: aws.String("poison")})
	if err != nil {
		t.Fatal(err)
	}
	// Received twice, given back each time: the third receive moves it to the DLQ.
	for i := range 2 {
		rec, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: work, WaitTimeSeconds: 5})
		if err != nil || len(rec.Messages) != 1 {
			t.Fatalf("receive %d: %v %v", i, rec, err)
		}
		if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: work, ReceiptHandle: rec.Messages[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: work, WaitTimeSeconds: 1})
	if err != nil || len(rec.Messages) != 0 {
		t.Fatalf("a message past maxReceiveCount was received: %v %v", rec, err)
	}
	job := jobOverHTTP(t, srv, sent.MessageId)
	if job.Queue != "work-dlq" || job.State != "ready" {
		t.Fatalf("job past maxReceiveCount: %+v", job)
	}

	// Redrive it back with a message move task.
	task, err := c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String("arn:aws:sqs:us-east-1:000000000000:work-dlq")})
	if err != nil || aws.ToString(task.TaskHandle) == "" {
		t.Fatalf("start move task: %v %v", task, err)
	}
	spooltest.Eventually(t, 10*time.Second, func() error {
		l, err := c.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: aws.String("arn:aws:sqs:us-east-1:000000000000:work-dlq")})
		if err != nil {
			return err
		}
		if len(l.Results) != 1 || aws.ToString(l.Results[0].Status) != "COMPLETED" || l.Results[0].ApproximateNumberOfMessagesMoved != 1 {
			return fmt.Errorf("tasks %+v", l.Results)
		}
		return nil
	})
	rec, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: work, WaitTimeSeconds: 5})
	if err != nil || len(rec.Messages) != 1 || aws.ToString(rec.Messages[0].Body) != "poison" {
		t.Fatalf("redriven message: %v %v", rec, err)
	}
	_, err = c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String("arn:aws:sqs:us-east-1:000000000000:none")})
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("move task from a missing queue: %v, want ResourceNotFoundException", err)
	}

	// A slow task (1 message/s) cancelled: every message is in one queue or the other.
	for i := range 5 {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: dlq, MessageBody: aws.String(fmt.Sprint("dead ", i))}); err != nil {
			t.Fatal(err)
		}
	}
	slow, err := c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String("arn:aws:sqs:us-east-1:000000000000:work-dlq"),
		DestinationArn: aws.String("arn:aws:sqs:us-east-1:000000000000:work"), MaxNumberOfMessagesPerSecond: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String("arn:aws:sqs:us-east-1:000000000000:work-dlq")})
	wantAPIError(t, "a second task on the same source", err, "AWS.SimpleQueueService.UnsupportedOperation")
	if _, err := c.CancelMessageMoveTask(ctx, &sqs.CancelMessageMoveTaskInput{TaskHandle: slow.TaskHandle}); err != nil {
		t.Fatal(err)
	}
	var moved int64
	spooltest.Eventually(t, 10*time.Second, func() error {
		l, err := c.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: aws.String("arn:aws:sqs:us-east-1:000000000000:work-dlq"), MaxResults: aws.Int32(10)})
		if err != nil {
			return err
		}
		if len(l.Results) != 2 || aws.ToString(l.Results[0].Status) != "CANCELLED" || aws.ToString(l.Results[1].Status) != "COMPLETED" {
			return fmt.Errorf("tasks %+v", l.Results)
		}
		moved = l.Results[0].ApproximateNumberOfMessagesMoved
		return nil
	})
	spooltest.Eventually(t, 10*time.Second, func() error {
		var n [2]int64
		for i, q := range []*string{work, dlq} {
			a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q, AttributeNames: []types.QueueAttributeName{"All"}})
			if err != nil {
				return err
			}
			for _, k := range []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"} {
				v, _ := strconv.ParseInt(a.Attributes[k], 10, 64)
				n[i] += v
			}
		}
		// work still holds the redriven message received above (in flight).
		if n[0] != 1+moved || n[1] != 5-moved {
			return fmt.Errorf("work %d, dead-letter queue %d, moved %d: want %d and %d", n[0], n[1], moved, 1+moved, 5-moved)
		}
		return nil
	})

	// Redrive off.
	if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: work, Attributes: map[string]string{"RedrivePolicy": ""}}); err != nil {
		t.Fatal(err)
	}
	src, err = c.ListDeadLetterSourceQueues(ctx, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: dlq})
	if err != nil || len(src.QueueUrls) != 0 {
		t.Fatalf("dead-letter sources after removing the policy: %v %v", src, err)
	}
}

func TestSDKv2SigV4(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(c *server.Config) { c.SQSCredentials = map[string]string{"AKIDSPOOL": "s3cret"} })
	ctx := ctxT(t)
	good := newClient(srv, "AKIDSPOOL", "s3cret")
	qurl := aws.String(createQueue(t, good, "signed", nil))
	if _, err := good.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String("ok")}); err != nil {
		t.Fatal(err)
	}
	_, err := newClient(srv, "AKIDSPOOL", "wrong").SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String("x")})
	wantAPIError(t, "wrong secret", err, "SignatureDoesNotMatch")
	_, err = newClient(srv, "AKIDOTHER", "s3cret").SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String("x")})
	wantAPIError(t, "unknown key", err, "InvalidClientTokenId")
	_, err = newClient(srv, "", "").SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String("x")})
	wantAPIError(t, "unsigned", err, "MissingAuthenticationToken")
}
