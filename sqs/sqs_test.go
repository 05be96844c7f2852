package sqs_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/budget"
	"github.com/spoolq/spool/internal/natsd"
	"github.com/spoolq/spool/sqs"
)

// front starts an engine on an embedded JetStream and the SQS front over it.
func front(t *testing.T) (srv *httptest.Server, stop func()) {
	t.Helper()
	return frontWith(t, sqs.Options{})
}

// frontWith is front with options (its Logger is set here).
func frontWith(t *testing.T, opt sqs.Options) (srv *httptest.Server, stop func()) {
	t.Helper()
	ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsd.Connect(ns, "sqs-test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	eng, err := engine.Open(ctx, nc, engine.Config{Logger: log, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	opt.Logger = log
	h := sqs.New(eng, opt)
	srv = httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
		nc.Close() // before the engine's Close: its last flushes need not wait for a dead server
		eng.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return srv, func() { ns.Shutdown(); ns.WaitForShutdown() }
}

type answer struct {
	status int
	header http.Header
	body   string
}

// callJSON sends one AWS JSON 1.0 request.
func callJSON(t *testing.T, srv *httptest.Server, action, body string) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", "AmazonSQS."+action)
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	return do(t, req)
}

// callQuery sends one query-protocol request.
func callQuery(t *testing.T, srv *httptest.Server, form url.Values) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// The wire form of errors in both protocols: status, code, and the legacy code header that
// SDKs of the JSON protocol read.
func TestWireErrors(t *testing.T) {
	t.Parallel()
	srv, _ := front(t)
	q := srv.URL + "/000000000000/none"
	a := callJSON(t, srv, "SendMessage", `{"QueueUrl":"`+q+`","MessageBody":"x"}`)
	if a.status != 400 || !strings.Contains(a.body, `"__type":"com.amazonaws.sqs#QueueDoesNotExist"`) ||
		a.header.Get("x-amzn-query-error") != "AWS.SimpleQueueService.NonExistentQueue;Sender" {
		t.Fatalf("JSON error: %d %v %s", a.status, a.header, a.body)
	}
	a = callQuery(t, srv, url.Values{"Action": {"SendMessage"}, "QueueUrl": {q}, "MessageBody": {"x"}})
	if a.status != 400 || !strings.Contains(a.body, "<Code>AWS.SimpleQueueService.NonExistentQueue</Code>") || !strings.Contains(a.body, "<Type>Sender</Type>") {
		t.Fatalf("query error: %d %s", a.status, a.body)
	}
	a = callJSON(t, srv, "Frobnicate", `{}`)
	if a.status != 400 || !strings.Contains(a.body, "InvalidAction") {
		t.Fatalf("unknown action: %d %s", a.status, a.body)
	}
	a = callJSON(t, srv, "ReceiveMessage", `{"QueueUrl":"`+q+`","MaxNumberOfMessages":"ten"}`)
	if a.status != 400 || !strings.Contains(a.body, "InvalidParameterValue") {
		t.Fatalf("bad integer: %d %s", a.status, a.body)
	}
	a = callJSON(t, srv, "CreateQueue", `{"QueueName":"q","Attributes":{"VisibilityTimeout":"0"}}`)
	if a.status != 400 || !strings.Contains(a.body, "InvalidAttributeValue") {
		t.Fatalf("visibility timeout 0: %d %s", a.status, a.body)
	}
	a = callQuery(t, srv, url.Values{"Action": {"CreateQueue"}, "QueueName": {"q"}, "Attribute.1.Name": {"DelaySeconds"}, "Attribute.1.Value": {"5"}})
	if a.status != 200 || !strings.Contains(a.body, "<QueueUrl>http://"+strings.TrimPrefix(srv.URL, "http://")+"/000000000000/q</QueueUrl>") {
		t.Fatalf("query CreateQueue: %d %s", a.status, a.body)
	}
	a = callQuery(t, srv, url.Values{"Action": {"GetQueueAttributes"}, "QueueUrl": {srv.URL + "/000000000000/q"}, "AttributeName.1": {"DelaySeconds"}})
	if a.status != 200 || !strings.Contains(a.body, "<Attribute><Name>DelaySeconds</Name><Value>5</Value></Attribute>") {
		t.Fatalf("query GetQueueAttributes: %d %s", a.status, a.body)
	}
}

// When JetStream is gone, requests that need it answer 503 ServiceUnavailable with
// Retry-After, which SDKs retry, not a 500.
func TestEngineUnavailableIs503(t *testing.T) {
	t.Parallel()
	srv, stop := front(t)
	if a := callJSON(t, srv, "CreateQueue", `{"QueueName":"q"}`); a.status != 200 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	stop()
	q := srv.URL + "/000000000000/q"
	a := callJSON(t, srv, "SendMessage", `{"QueueUrl":"`+q+`","MessageBody":"x"}`)
	if a.status != 503 || !strings.Contains(a.body, "ServiceUnavailable") || a.header.Get("Retry-After") == "" ||
		a.header.Get("x-amzn-query-error") != "ServiceUnavailable;Receiver" {
		t.Fatalf("JSON send with JetStream gone: %d %v %s", a.status, a.header, a.body)
	}
	a = callQuery(t, srv, url.Values{"Action": {"SendMessage"}, "QueueUrl": {q}, "MessageBody": {"x"}})
	if a.status != 503 || !strings.Contains(a.body, "<Code>ServiceUnavailable</Code>") {
		t.Fatalf("query send with JetStream gone: %d %s", a.status, a.body)
	}
}

// Request bodies are charged to the memory budget shared with the other fronts: one over it
// gets a retryable 503, and the budget is whole again once it is answered.
func TestBodyOverBudget(t *testing.T) {
	t.Parallel()
	b := budget.New(4 << 10)
	srv, _ := frontWith(t, sqs.Options{Budget: b})
	a := callJSON(t, srv, "CreateQueue", `{"QueueName":"q"}`)
	if a.status != 200 {
		t.Fatalf("CreateQueue: %d %s", a.status, a.body)
	}
	q := srv.URL + "/000000000000/q"
	a = callJSON(t, srv, "SendMessage", `{"QueueUrl":"`+q+`","MessageBody":"`+strings.Repeat("x", 8<<10)+`"}`)
	if a.status != 503 || !strings.Contains(a.body, "ServiceUnavailable") || a.header.Get("Retry-After") == "" {
		t.Fatalf("a body over the budget: %d %v %s", a.status, a.header, a.body)
	}
	if b.Used() != 0 {
		t.Fatalf("budget used after the answer: %d", b.Used())
	}
	a = callJSON(t, srv, "SendMessage", `{"QueueUrl":"`+q+`","MessageBody":"small"}`)
	if a.status != 200 {
		t.Fatalf("a body within the budget: %d %s", a.status, a.body)
	}
}
