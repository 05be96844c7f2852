package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/spooltest"
)

// spool hook create, enqueue --callback-url, job --history, hook list and delete, against a
// real server and a real receiver.
func TestHookAndHistoryCommands(t *testing.T) {
	t.Parallel()
	srv := spooltest.Start(t, nil)
	s := "--server=" + srv.URL
	var mu sync.Mutex
	var got []spool.WebhookDelivery
	var sigs []string
	var bodies [][]byte
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var d spool.WebhookDelivery
		json.Unmarshal(b, &d)
		mu.Lock()
		got, sigs, bodies = append(got, d), append(sigs, r.Header.Get(spool.WebhookSignatureHeader)), append(bodies, b)
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)

	var hook spool.Webhook
	okJSON(t, &hook, "hook", "create", "--queue", "video", "--on", "succeeded,buried", "--url", rcv.URL+"/hook", s)
	if hook.ID == "" || hook.Secret == "" || strings.Join(hook.Kinds, ",") != "succeeded,buried" {
		t.Fatalf("hook create: %+v", hook)
	}
	if r := ok(t, "hook", "list", s); !strings.Contains(r.stdout, hook.ID) || strings.Contains(r.stdout, hook.Secret) {
		t.Fatalf("hook list:\n%s", r.stdout)
	}
	var listed struct {
		Webhooks       []spool.Webhook
		CallbackSecret string `json:"callback_secret"`
	}
	okJSON(t, &listed, "hook", "list", s)
	if len(listed.Webhooks) != 1 || listed.CallbackSecret == "" {
		t.Fatalf("hook list --json: %+v", listed)
	}
	var job spool.Job
	okJSON(t, &job, "enqueue", "video", "--type", "encode", "--callback-url", rcv.URL+"/cb", s)
	if job.CallbackURL != rcv.URL+"/cb" {
		t.Fatalf("enqueued %+v", job)
	}
	cl, _ := spool.NewClient(srv.URL)
	ctx := context.Background()
	res, err := cl.Reserve(ctx, spool.ReserveOptions{Queues: []string{"video"}, Max: 1, Wait: 5 * time.Second, Worker: "w-cli"})
	if err != nil || len(res.Jobs) != 1 {
		t.Fatal(res, err)
	}
	if _, err := cl.Ack(ctx, job.ID, res.Jobs[0].LeaseToken, map[string]string{"out": "x.mp4"}); err != nil {
		t.Fatal(err)
	}
	// Two deliveries of the success: the hook's and the callback's.
	spooltest.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 2 {
			return fmt.Errorf("%d deliveries, want 2", len(got))
		}
		return nil
	})
	hookSigned, callbackSigned := 0, 0
	for i, d := range got {
		if spool.VerifyWebhook([]byte(listed.CallbackSecret), sigs[i], bodies[i], 0) == nil {
			callbackSigned++
		}
		if d.Event.Kind != "succeeded" || d.Job.ID != job.ID || string(d.Job.Result) != `{"out":"x.mp4"}` {
			t.Errorf("delivery %s", bodies[i])
		}
		if spool.VerifyWebhook([]byte(hook.Secret), sigs[i], bodies[i], 0) == nil {
			hookSigned++
		}
	}
	if hookSigned != 1 || callbackSigned != 1 {
		t.Errorf("%d deliveries signed with the hook's secret, %d with the callback secret; want 1 and 1", hookSigned, callbackSigned)
	}
	r := ok(t, "job", fmt.Sprint(job.ID), "--history", s)
	for _, want := range []string{"enqueued", "reserved", "succeeded", "w-cli"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("job --history lacks %q:\n%s", want, r.stdout)
		}
	}
	var hist struct{ Events []map[string]any }
	okJSON(t, &hist, "job", fmt.Sprint(job.ID), "--history", s)
	if len(hist.Events) != 3 || hist.Events[2]["kind"] != "succeeded" {
		t.Errorf("job --history --json: %+v", hist)
	}
	ok(t, "hook", "delete", hook.ID, s)
	if r := spoolCmd(t, "", "hook", "delete", hook.ID, s); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("second delete: %+v", r)
	}
	if r := spoolCmd(t, "", "events", s); r.code != 2 {
		t.Errorf("events without --follow: %+v", r)
	}
	if r := spoolCmd(t, "", "hook", "create", "--url", "ftp://x", s); r.code != 1 || !strings.Contains(r.stderr, "url") {
		t.Errorf("hook create with a bad URL: %+v", r)
	}
}
