package sqs_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/natsd"
	"github.com/spoolq/spool/sqs"
)

// The SQS front is an http.Handler over an engine; spool serve --sqs mounts it on its own
// listener. Here one raw AWS JSON request creates a queue.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "sqs-example")
	defer os.RemoveAll(dir)
	ns, err := natsd.Start(context.Background(), natsd.Options{StoreDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Shutdown()
	nc, _ := natsd.Connect(ns, "example")
	defer nc.Close()
	eng, err := engine.Open(context.Background(), nc, engine.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	h := sqs.New(eng, sqs.Options{Logger: slog.New(slog.DiscardHandler)})
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(`{"QueueName":"orders"}`))
	req.Header.Set("X-Amz-Target", "AmazonSQS.CreateQueue")
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.Replace(string(b), srv.URL, "http://HOST", 1))
	// Output: 200 {"QueueUrl":"http://HOST/000000000000/orders"}
}
