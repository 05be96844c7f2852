package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// httpDriver speaks spool's HTTP API over one connection.
type httpDriver struct {
	base  string
	batch bool
	delay string
	c     *http.Client
}

func newHTTPDriver(base string, batch bool, delay time.Duration) *httpDriver {
	tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
	d := &httpDriver{base: base, batch: batch, c: &http.Client{Transport: tr, Timeout: time.Minute}}
	if delay > 0 {
		d.delay = delay.String()
	}
	return d
}

func (d *httpDriver) close() { d.c.CloseIdleConnections() }

func (d *httpDriver) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", d.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		if out != nil {
			// A batch's 503 lists the items stored beside those that were not.
			_ = json.Unmarshal(data, out)
		}
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

type jobIn struct {
	Payload string `json:"payload"`
	Delay   string `json:"delay,omitempty"`
}

func (d *httpDriver) produce(ctx context.Context, queue string, payloads [][]byte) (int, error) {
	path := "/v1/queues/" + url.PathEscape(queue) + "/jobs"
	if !d.batch {
		n := 0
		for _, p := range payloads {
			if err := d.post(ctx, path, jobIn{string(p), d.delay}, nil); err != nil {
				return n, err
			}
			n++
		}
		return n, nil
	}
	jobs := make([]jobIn, len(payloads))
	for i, p := range payloads {
		jobs[i] = jobIn{string(p), d.delay}
	}
	var out struct {
		Jobs []struct {
			ID string `json:"id"`
		} `json:"jobs"`
	}
	err := d.post(ctx, path, map[string]any{"jobs": jobs}, &out)
	n := 0
	for _, j := range out.Jobs {
		if j.ID != "" {
			n++
		}
	}
	return n, err
}

type reserved struct {
	ID         string          `json:"id"`
	Payload    json.RawMessage `json:"payload"`
	LeaseToken string          `json:"lease_token"`
}

func (d *httpDriver) consume(ctx context.Context, queues []string, max int, wait time.Duration, got func([]byte, time.Time)) (int, error) {
	var res struct {
		Jobs []reserved `json:"jobs"`
	}
	err := d.post(ctx, "/v1/reserve", map[string]any{"queues": queues, "max": max, "wait": wait.String()}, &res)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	for _, j := range res.Jobs {
		got(j.Payload, now)
	}
	if len(res.Jobs) == 0 {
		return 0, nil
	}
	if !d.batch {
		n := 0
		for _, j := range res.Jobs {
			if err := d.post(ctx, "/v1/jobs/"+j.ID+"/ack", map[string]string{"lease_token": j.LeaseToken}, nil); err != nil {
				return n, err
			}
			n++
		}
		return n, nil
	}
	acks := make([]map[string]string, len(res.Jobs))
	for i, j := range res.Jobs {
		acks[i] = map[string]string{"id": j.ID, "lease_token": j.LeaseToken}
	}
	var out struct {
		Results []struct {
			State string `json:"state"`
		} `json:"results"`
	}
	err = d.post(ctx, "/v1/ack", map[string]any{"acks": acks}, &out)
	n := 0
	for _, r := range out.Results {
		if r.State == "succeeded" {
			n++
		}
	}
	return n, err
}
