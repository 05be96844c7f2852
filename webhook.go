package spool

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Webhook deliveries (docs/events.md, "Webhooks") are POSTs of a JSON WebhookDelivery,
// signed with HMAC-SHA256 in the WebhookSignatureHeader header:
//
//	Spool-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//
// The timestamp is in the signed text, so that a captured delivery cannot be replayed later
// than the tolerance a receiver allows.
const (
	WebhookSignatureHeader = "Spool-Signature"
	// WebhookDeliveryHeader carries the delivery's idempotency key (also sent as
	// Idempotency-Key): a retried delivery carries the same key.
	WebhookDeliveryHeader = "Spool-Delivery"
	// WebhookEventHeader carries the event kind (succeeded, buried...).
	WebhookEventHeader = "Spool-Event"
)

// ErrWebhookSignature: a delivery's signature is missing, malformed, wrong or too old.
var ErrWebhookSignature = errors.New("spool: webhook signature not valid")

// WebhookDelivery is the body of a webhook delivery.
type WebhookDelivery struct {
	// Delivery is the idempotency key: the same for every attempt of one delivery.
	Delivery string       `json:"delivery"`
	Event    WebhookEvent `json:"event"`
	// Job is the job as it was at delivery time (its result, last error, state); only the
	// event's fields when its record had expired.
	Job *Job `json:"job"`
}

// WebhookEvent is the lifecycle event a delivery reports.
type WebhookEvent struct {
	Pos     string    `json:"pos"`
	Kind    string    `json:"kind"`
	Time    time.Time `json:"time"`
	Node    string    `json:"node,omitempty"`
	Worker  string    `json:"worker,omitempty"`
	Attempt int       `json:"attempt"`
	State   State     `json:"state"`
	Error   string    `json:"error,omitempty"`
}

// SignWebhook returns the WebhookSignatureHeader value for body sent at t.
func SignWebhook(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(webhookMAC(secret, ts, body))
}

func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhook checks a delivery's signature header against its raw body and the hook's
// secret (or the server's callback secret), and that it was signed within tolerance of now
// (0: 5 minutes). It returns ErrWebhookSignature when it does not hold.
func VerifyWebhook(secret []byte, header string, body []byte, tolerance time.Duration) error {
	return verifyWebhookAt(secret, header, body, tolerance, time.Now())
}

func verifyWebhookAt(secret []byte, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = 5 * time.Minute
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrWebhookSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrWebhookSignature
	}
	want := webhookMAC(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrWebhookSignature
}
