package spool

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// A Client keeps its connections to a server for reuse when several requests run at once
// (a worker's long poll, acks, heartbeats and producers): Go's default transport keeps only
// two idle ones per server and would open a new connection for most requests.
func TestClientReusesConnections(t *testing.T) {
	t.Parallel()
	var opened atomic.Int64
	var inFlight sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Each round's requests are all in flight together, as a worker's are.
		inFlight.Done()
		inFlight.Wait()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"version":"t","uptime":"1s","queues":0,"jobs":{},"totals":{}}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 25
	for range rounds {
		inFlight.Add(workers)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				if _, err := c.Stats(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if n := opened.Load(); n > 2*workers {
		t.Fatalf("%d connections opened for %d requests, %d at a time; want at most %d", n, workers*rounds, workers, 2*workers)
	}
}
