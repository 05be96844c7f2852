package sqs

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// wantAPIErr fails unless err is nil or an error answered with an AWS code.
func wantAPIErr(t *testing.T, err error) {
	t.Helper()
	var ae *apiError
	if err != nil && !errors.As(err, &ae) {
		t.Fatalf("error without an AWS code: %v", err)
	}
}

func FuzzDecodeQuery(f *testing.F) {
	f.Add("Action=SendMessage&QueueUrl=http%3A%2F%2Fh%2F000000000000%2Fq&MessageBody=hi&MessageAttribute.1.Name=a&MessageAttribute.1.Value.DataType=String&MessageAttribute.1.Value.StringValue=v")
	f.Add("Action=SendMessageBatch&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=x&SendMessageBatchRequestEntry.1.DelaySeconds=3")
	f.Add("Action=CreateQueue&QueueName=q&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=5&Tag.1.Key=k&Tag.1.Value=v")
	f.Add("Action=ReceiveMessage&AttributeName.1=All&MaxNumberOfMessages=x&MessageAttributeName.2=b")
	f.Add("Action=X&A..B=1&C.0=2&D.1001=3&%zz")
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req, err := decodeQuery(r, []byte(body))
		wantAPIErr(t, err)
		if err == nil && req.action == "" {
			t.Fatal("decoded without an action")
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add("AmazonSQS.SendMessage", `{"QueueUrl":"http://h/0/q","MessageBody":"x","DelaySeconds":"5","MessageAttributes":{"a":{"DataType":"Binary","BinaryValue":"AAE="}}}`)
	f.Add("AmazonSQS.DeleteMessageBatch", `{"QueueUrl":"q","Entries":[{"Id":"1","ReceiptHandle":"h"}]}`)
	f.Add("AmazonSQS.ReceiveMessage", `{"MaxNumberOfMessages":1e99}`)
	f.Add("Other.X", `[]`)
	f.Fuzz(func(t *testing.T, target, body string) {
		req, err := decodeJSON(target, []byte(body))
		wantAPIErr(t, err)
		if err == nil && req.action == "" {
			t.Fatal("decoded without an action")
		}
	})
}

func FuzzReceiptHandle(f *testing.F) {
	f.Add("q", uint64(1), "abc", "")
	f.Add("a:b", uint64(1<<52), "ffffffffffffffff", "MTphYmM6cQ")
	f.Fuzz(func(t *testing.T, queue string, id uint64, token, other string) {
		_, _, err := parseReceipt(queue, other)
		wantAPIErr(t, err)
		if strings.Contains(token, ":") || token == "" {
			return
		}
		gid, gtok, err := parseReceipt(queue, receiptHandle(queue, id, token))
		if err == nil && (gid != id || gtok != token) {
			t.Fatalf("round trip: %d %q, want %d %q", gid, gtok, id, token)
		}
	})
}

// The query protocol's XML answers are well-formed whatever the strings in them.
func FuzzXMLAnswer(f *testing.F) {
	f.Add("body <&> \r\n", "name", "val\x00ue")
	f.Fuzz(func(t *testing.T, body, name, value string) {
		out := struct {
			Messages []receivedMessage `json:"Messages"`
		}{[]receivedMessage{{Body: body, Attributes: map[string]string{name: value},
			MessageAttributes: map[string]messageAttr{name: {DataType: "String", StringValue: &value}}}}}
		w := httptest.NewRecorder()
		queryProtocol{}.write(w, "ReceiveMessage", out)
		d := xml.NewDecoder(bytes.NewReader(w.Body.Bytes()))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("XML answer not well-formed: %v\n%s", err, w.Body.Bytes())
			}
		}
	})
}

func FuzzSigV4(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=00", "20260101T000000Z", "body")
	f.Fuzz(func(t *testing.T, auth, date, body string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Date", date)
		err := verifySigV4(r, []byte(body), StaticCredentials{"K": "s"}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		if err == nil {
			t.Fatal("a forged signature was accepted")
		}
		wantAPIErr(t, err)
	})
}
