package spool_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/spoolq/spool"
)

// A webhook receiver checks the signature over the raw body before it trusts the delivery,
// and uses the delivery key to ignore a delivery it has handled already.
func ExampleVerifyWebhook() {
	secret := []byte("the hook's secret, shown once by spool hook create")
	seen := map[string]bool{}
	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := spool.VerifyWebhook(secret, r.Header.Get(spool.WebhookSignatureHeader), body, 5*time.Minute); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var d spool.WebhookDelivery
		if err := json.Unmarshal(body, &d); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if !seen[d.Delivery] { // at-least-once: the same delivery may come twice
			seen[d.Delivery] = true
			fmt.Println(d.Event.Kind, d.Job.ID, d.Job.Queue, string(d.Job.Result))
		}
		w.WriteHeader(http.StatusNoContent)
	})

	// What spool sends, signed with the same secret.
	body := []byte(`{"delivery":"4096001-callback","event":{"pos":"4096001","kind":"succeeded","time":"2026-12-06T10:00:00Z","attempt":1,"state":"succeeded"},` +
		`"job":{"id":"42","queue":"video","type":"encode","state":"succeeded","priority":1024,"attempts":1,"max_attempts":25,"lease":"30s","result":{"url":"s3://out.mp4"},"releases":0,"buries":0,"kicks":0,"timeouts":0}}`)
	for range 2 {
		req := httptest.NewRequest("POST", "/hooks/spool", strings.NewReader(string(body)))
		req.Header.Set(spool.WebhookSignatureHeader, spool.SignWebhook(secret, time.Now(), body))
		rec := httptest.NewRecorder()
		receiver.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// succeeded 42 video {"url":"s3://out.mp4"}
	// 204
	// 204
}
