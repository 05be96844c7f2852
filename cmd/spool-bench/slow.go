package main

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// slowClients holds n slowloris connections to an HTTP server for the length of a run: each
// sends a request header one byte every second and never ends it; a connection the server
// cuts is dialled again. It measures how a normal client fares while they are open.
type slowClients struct {
	cut    atomic.Int64 // connections the server ended
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startSlowClients(ctx context.Context, target string, n int) *slowClients {
	ctx, cancel := context.WithCancel(ctx)
	s := &slowClients{cancel: cancel}
	host := target
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		host = u.Host
	}
	const head = "POST /v1/queues/slow/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: "
	for range n {
		s.wg.Go(func() {
			for ctx.Err() == nil {
				nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				done := make(chan struct{})
				go func() { io.Copy(io.Discard, nc); close(done) }()
				t := time.NewTicker(time.Second)
			drip:
				for i := 0; ; i++ {
					b := byte('a')
					if i < len(head) {
						b = head[i]
					}
					if _, err := nc.Write([]byte{b}); err != nil {
						break
					}
					select {
					case <-ctx.Done():
						break drip
					case <-done:
						s.cut.Add(1)
						break drip
					case <-t.C:
					}
				}
				t.Stop()
				nc.Close()
			}
		})
	}
	return s
}

// stop ends the slow connections and returns how many the server cut.
func (s *slowClients) stop() int64 {
	s.cancel()
	s.wg.Wait()
	return s.cut.Load()
}
