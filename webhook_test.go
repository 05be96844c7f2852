package spool

import (
	"errors"
	"testing"
	"time"
)

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	secret, body := []byte("s3cret"), []byte(`{"delivery":"1-h"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := SignWebhook(secret, now, body)
	if err := verifyWebhookAt(secret, sig, body, 0, now.Add(time.Minute)); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	for name, c := range map[string]struct {
		secret []byte
		header string
		body   []byte
		at     time.Time
	}{
		"other secret":    {[]byte("other"), sig, body, now},
		"changed body":    {secret, sig, []byte(`{"delivery":"2-h"}`), now},
		"too old":         {secret, sig, body, now.Add(6 * time.Minute)},
		"from the future": {secret, sig, body, now.Add(-6 * time.Minute)},
		"no timestamp":    {secret, sig[len("t=1800000000,"):], body, now},
		"empty":           {secret, "", body, now},
		"not hex":         {secret, "t=1800000000,v1=zz", body, now},
	} {
		if err := verifyWebhookAt(c.secret, c.header, c.body, 0, c.at); !errors.Is(err, ErrWebhookSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzVerifyWebhook(f *testing.F) {
	f.Add("t=1800000000,v1=00", []byte("{}"))
	f.Add(",,=,t=,v1=", []byte(""))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		now := time.Unix(1_800_000_000, 0)
		if err := verifyWebhookAt([]byte("k"), header, body, 0, now); err == nil {
			// Only a real signature passes.
			if header != SignWebhook([]byte("k"), now, body) && verifyWebhookAt([]byte("other"), header, body, 0, now) == nil {
				t.Fatalf("header %q verifies under two secrets", header)
			}
		}
	})
}
