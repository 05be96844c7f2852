package main

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsDriver is the ceiling: plain JetStream on a work-queue stream, publishing a batch
// asynchronously and pulling a batch then acking each message, with no job semantics at all.
type natsDriver struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	cons map[string]jetstream.Consumer
}

const rawStream = "SPOOLBENCH_RAW"

func newNATSDriver(url string) (*natsDriver, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: rawStream, Subjects: []string{"spoolbench.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &natsDriver{nc: nc, js: js, cons: map[string]jetstream.Consumer{}}, nil
}

func (d *natsDriver) close() { d.nc.Close() }

func (d *natsDriver) produce(ctx context.Context, queue string, payloads [][]byte) (int, error) {
	futs := make([]jetstream.PubAckFuture, 0, len(payloads))
	for _, p := range payloads {
		f, err := d.js.PublishAsync("spoolbench."+queue, p)
		if err != nil {
			return 0, err
		}
		futs = append(futs, f)
	}
	n := 0
	for _, f := range futs {
		select {
		case <-f.Ok():
			n++
		case err := <-f.Err():
			return n, err
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
	return n, nil
}

func (d *natsDriver) consume(ctx context.Context, queues []string, max int, wait time.Duration, got func([]byte, time.Time)) (int, error) {
	c := d.cons[queues[0]]
	if c == nil {
		var err error
		c, err = d.js.CreateOrUpdateConsumer(ctx, rawStream, jetstream.ConsumerConfig{
			Durable: "raw-" + queues[0], FilterSubject: "spoolbench." + queues[0],
			AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: -1,
		})
		if err != nil {
			return 0, err
		}
		d.cons[queues[0]] = c
	}
	batch, err := c.Fetch(max, jetstream.FetchMaxWait(wait))
	if err != nil {
		return 0, err
	}
	n := 0
	for m := range batch.Messages() {
		got(m.Data(), time.Now())
		if err := m.Ack(); err != nil {
			return n, err
		}
		n++
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
		return n, err
	}
	return n, nil
}
