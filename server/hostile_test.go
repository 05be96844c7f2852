package server_test

// Hostile HTTP clients: slowloris headers, slow bodies, floods of connections and of large
// bodies. Each is cut or refused within the documented limits while a normal client is
// served, the process's goroutines and descriptors return to their baseline, and every
// stored job is still there.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/server"
)

// normalClient enqueues, reserves and acks one job, failing the test on any error.
func normalClient(t *testing.T, url string, i int) {
	t.Helper()
	var j job
	if st := call(t, "POST", url+"/v1/queues/normal/jobs", map[string]any{"payload": i}, &j); st != 201 {
		t.Fatalf("enqueue: %d", st)
	}
	var res struct{ Jobs []job }
	if st := call(t, "POST", url+"/v1/queues/normal/reserve", map[string]any{}, &res); st != 200 || len(res.Jobs) != 1 {
		t.Fatalf("reserve: %d %+v", st, res)
	}
	if st := call(t, "POST", url+"/v1/jobs/"+res.Jobs[0].ID+"/ack", map[string]any{"lease_token": res.Jobs[0].LeaseToken}, nil); st != 200 {
		t.Fatalf("ack: %d", st)
	}
}

// storeJobs enqueues n jobs to queue "kept" and returns their ids.
func storeJobs(t *testing.T, url string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		var j job
		if st := call(t, "POST", url+"/v1/queues/kept/jobs", map[string]any{"payload": i}, &j); st != 201 {
			t.Fatalf("enqueue: %d", st)
		}
		ids[i] = j.ID
	}
	return ids
}

// checkJobs checks that every job is still stored, ready.
func checkJobs(t *testing.T, url string, ids []string) {
	t.Helper()
	for _, id := range ids {
		var j job
		if st := call(t, "GET", url+"/v1/jobs/"+id, nil, &j); st != 200 || j.State != "ready" {
			t.Fatalf("job %s after the attack: %d %+v", id, st, j)
		}
	}
}

// attacker dials and runs send (which writes slowly) until the server ends the connection;
// cut is closed when it has.
func attacker(t *testing.T, addr string, send func(net.Conn) error) (cut chan struct{}) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	cut = make(chan struct{})
	go func() {
		defer close(cut)
		io.Copy(io.Discard, nc) // ends when the server closes (a 408 may come first)
		nc.Close()
	}()
	go func() {
		for {
			select {
			case <-cut:
				return
			default:
			}
			if send(nc) != nil {
				return
			}
		}
	}()
	return cut
}

// drip writes s one byte at a time, every 50ms, then keeps dripping filler.
func drip(s string, filler byte) func(net.Conn) error {
	i := 0
	return func(nc net.Conn) error {
		time.Sleep(50 * time.Millisecond)
		b := filler
		if i < len(s) {
			b = s[i]
			i++
		}
		_, err := nc.Write([]byte{b})
		return err
	}
}

func TestSlowClientsAreCut(t *testing.T) {
	srv := spooltest.Start(t, func(c *server.Config) {
		c.HTTPReadHeaderTimeout = 500 * time.Millisecond
		c.HTTPReadTimeout = time.Second
		c.HTTPWriteTimeout = time.Second
	})
	ids := storeJobs(t, srv.URL, 5)
	normalClient(t, srv.URL, 0)
	http.DefaultClient.CloseIdleConnections()
	base := spooltest.TakeResources()

	var cuts []chan struct{}
	for range 20 { // slowloris: a header that never ends
		cuts = append(cuts, attacker(t, srv.Addrs.HTTP, drip("POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nX-A: ", 'a')))
	}
	for range 10 { // a 10 GB body, one byte at a time
		cuts = append(cuts, attacker(t, srv.Addrs.HTTP, drip("POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{\"payload\":\"", 'b')))
	}
	for range 10 { // the same, chunked
		cuts = append(cuts, attacker(t, srv.Addrs.HTTP, drip("POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\n{\"payload\":\"", 'c')))
	}
	// A normal client is served meanwhile, and a long poll longer than the write timeout
	// gets its answer.
	for i := range 5 {
		normalClient(t, srv.URL, i)
	}
	var res struct{ Jobs []job }
	if st := call(t, "POST", srv.URL+"/v1/queues/empty/reserve", map[string]any{"wait": "2s"}, &res); st != 200 || len(res.Jobs) != 0 {
		t.Fatalf("long poll past the write timeout: %d %+v", st, res)
	}
	for i, c := range cuts {
		select {
		case <-c:
		case <-time.After(30 * time.Second):
			t.Fatalf("slow client %d still connected after 30s", i)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	spooltest.SettleTo(t, base, 10, 20*time.Second)
	checkJobs(t, srv.URL, ids)
}

func TestHTTPConnectionCap(t *testing.T) {
	srv := spooltest.Start(t, func(c *server.Config) { c.HTTPMaxConns = 4 })
	ids := storeJobs(t, srv.URL, 3)
	http.DefaultClient.CloseIdleConnections()
	// Four keep-alive connections, each served once: the cap.
	type kc struct {
		nc net.Conn
		r  *bufio.Reader
	}
	get := func(k kc, path string) (*http.Response, error) {
		fmt.Fprintf(k.nc, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		k.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(k.r, nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	var held []kc
	for range 4 {
		// The server may not have seen the client's idle connections close yet.
		spooltest.Eventually(t, 10*time.Second, func() error {
			nc, err := net.Dial("tcp", srv.Addrs.HTTP)
			if err != nil {
				return err
			}
			k := kc{nc, bufio.NewReader(nc)}
			if resp, err := get(k, "/v1/jobs/"+ids[0]); err != nil || resp.StatusCode != 200 {
				nc.Close()
				return fmt.Errorf("under the cap: %v %v", resp, err)
			}
			held = append(held, k)
			t.Cleanup(func() { nc.Close() })
			return nil
		})
	}
	// At the cap: refused with a readable 503 and Retry-After.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(srv.URL + "/v1/jobs/" + ids[0])
	if err != nil {
		t.Fatalf("at the cap: %v, want a 503 answer", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"too_many_connections"`) {
		t.Fatalf("at the cap: %d %q (Retry-After %q)", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	// The connections held still work.
	for _, k := range held {
		if resp, err := get(k, "/v1/jobs/"+ids[1]); err != nil || resp.StatusCode != 200 {
			t.Fatalf("held connection at the cap: %v %v", resp, err)
		}
	}
	// Below the cap again: accepted.
	held[0].nc.Close()
	once := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	spooltest.Eventually(t, 10*time.Second, func() error { return getOK(once, srv.URL+"/v1/jobs/"+ids[2]) })
	for _, k := range held {
		k.nc.Close()
	}
	// The server sees them close: room for the checks below.
	spooltest.Eventually(t, 10*time.Second, func() error { return getOK(http.DefaultClient, srv.URL+"/healthz") })
	checkJobs(t, srv.URL, ids)
}

// getOK GETs url and wants 200.
func getOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return nil
}

// bodyReader generates a JSON batch body of about size bytes without holding it: jobs of
// 60 KiB payloads, then end (for example "]}" or a syntax error).
type bodyReader struct {
	size, sent int
	end        string
	buf        []byte
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if len(b.buf) == 0 {
		switch {
		case b.sent == 0:
			b.buf = []byte(`{"jobs":[`)
		case b.sent < b.size:
			b.buf = []byte(`{"payload":"` + strings.Repeat("p", 60<<10) + `"},`)
		case b.end != "":
			b.buf, b.end = []byte(`{"payload":1}`+b.end), ""
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	b.sent += n
	return n, nil
}

// heapPeak samples the Go heap every 2 ms until stop is closed, and returns its peak.
func heapPeak(stop chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return out
}

// Concurrent oversize and near-limit bodies take the heap no further than the budget
// allows: those that do not fit are answered 503 overloaded.
func TestBodyBudgetBoundsHeap(t *testing.T) {
	const budget = 32 << 20
	srv := spooltest.Start(t, func(c *server.Config) { c.MaxInflight = budget })
	ids := storeJobs(t, srv.URL, 3)
	normalClient(t, srv.URL, 0) // its queue's goroutines belong to the baseline
	runtime.GC()
	base := spooltest.TakeResources()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	stop := make(chan struct{})
	peak := heapPeak(stop)

	var wg sync.WaitGroup
	var overloaded, refused atomic.Int32
	for round := range 2 {
		for i := range 8 {
			wg.Go(func() {
				b := &bodyReader{size: 60 << 20, end: "!"} // near the limit, a syntax error at its end
				if i%2 == 1 {
					b = &bodyReader{size: 70 << 20, end: "]}"} // over the limit
				}
				req, _ := http.NewRequest("POST", srv.URL+"/v1/queues/big/jobs", b)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the server may close while the body is still being sent
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 503 && strings.Contains(string(body), `"overloaded"`) && resp.Header.Get("Retry-After") != "":
					overloaded.Add(1)
				case resp.StatusCode == 413 || resp.StatusCode == 400:
					refused.Add(1)
				default:
					t.Errorf("round %d body %d: %d %s", round, i, resp.StatusCode, body)
				}
			})
		}
		wg.Wait()
	}
	normalClient(t, srv.URL, 1)
	close(stop)
	p := <-peak
	t.Logf("heap peak %d MiB above the %d MiB at start; %d overloaded, %d refused as too large or malformed",
		(p-ms.HeapAlloc)>>20, ms.HeapAlloc>>20, overloaded.Load(), refused.Load())
	if overloaded.Load() == 0 {
		t.Error("no body was answered 503 overloaded")
	}
	// The budget plus the garbage the collector leaves (it runs at twice the live heap)
	// plus a fixed overhead: without the budget the peak is well over 500 MiB.
	if limit := uint64(3*budget + 96<<20); p > ms.HeapAlloc+limit {
		t.Errorf("heap peak %d MiB above the start, over %d MiB", (p-ms.HeapAlloc)>>20, limit>>20)
	}
	http.DefaultClient.CloseIdleConnections()
	spooltest.SettleTo(t, base, 10, 20*time.Second)
	checkJobs(t, srv.URL, ids)
}
