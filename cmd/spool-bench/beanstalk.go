package main

import (
	"context"
	"errors"
	"time"

	"github.com/beanstalkd/go-beanstalk"
)

// beanstalkDriver speaks the beanstalkd protocol over one connection, with the reference Go
// client, to spool's beanstalkd port or to beanstalkd itself.
type beanstalkDriver struct {
	delay time.Duration
	conn  *beanstalk.Conn
	tubes map[string]*beanstalk.Tube
	sets  map[int]*beanstalk.TubeSet
}

func newBeanstalkDriver(addr string, delay time.Duration) (*beanstalkDriver, error) {
	c, err := beanstalk.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &beanstalkDriver{delay: delay, conn: c, tubes: map[string]*beanstalk.Tube{}, sets: map[int]*beanstalk.TubeSet{}}, nil
}

func (d *beanstalkDriver) close() { d.conn.Close() }

func (d *beanstalkDriver) produce(_ context.Context, queue string, payloads [][]byte) (int, error) {
	t := d.tubes[queue]
	if t == nil {
		t = beanstalk.NewTube(d.conn, queue)
		d.tubes[queue] = t
	}
	for i, p := range payloads {
		if _, err := t.Put(p, 1024, d.delay, time.Minute); err != nil {
			return i, err
		}
	}
	return len(payloads), nil
}

func (d *beanstalkDriver) consume(_ context.Context, queues []string, _ int, wait time.Duration, got func([]byte, time.Time)) (int, error) {
	ts := d.sets[len(queues)]
	if ts == nil {
		ts = beanstalk.NewTubeSet(d.conn, queues...)
		d.sets[len(queues)] = ts
	}
	id, body, err := ts.Reserve(wait)
	var cerr beanstalk.ConnError
	if errors.As(err, &cerr) && (cerr.Err == beanstalk.ErrTimeout || cerr.Err == beanstalk.ErrDeadline) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	got(body, time.Now())
	if err := d.conn.Delete(id); err != nil {
		return 0, err
	}
	return 1, nil
}
