package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/internal/testport"
	"github.com/spoolq/spool/server"
)

// call does one JSON request and decodes the answer into out (when not nil).
func call(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, data)
		}
	}
	return resp.StatusCode
}

type job struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Payload    any    `json:"payload"`
	Attempts   int    `json:"attempts"`
	LeaseToken string `json:"lease_token"`
}

// startNode runs server.Run in-process and returns its addresses.
func startNode(t *testing.T, cfg server.Config) server.Addrs {
	t.Helper()
	ready := make(chan server.Addrs, 1)
	cfg.Ready = func(a server.Addrs) { ready <- a }
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.DataDir == "" && cfg.NATSURL == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	select {
	case a := <-ready:
		return a
	case err := <-done:
		t.Fatalf("server.Run: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("server not ready")
	}
	return server.Addrs{}
}

// Two spool servers over one engine serve the same queues and jobs: no job state lives in a
// spool node's memory.
func TestTwoServersOneEngine(t *testing.T) {
	t.Parallel()
	a := startNode(t, server.Config{NATSListen: "127.0.0.1:0"})
	b := startNode(t, server.Config{NATSURL: a.NATS})
	A, B := "http://"+a.HTTP, "http://"+b.HTTP

	var j job
	if st := call(t, "POST", A+"/v1/queues/shared/jobs", map[string]any{"payload": map[string]int{"n": 1}}, &j); st != 201 {
		t.Fatalf("enqueue on A: %d", st)
	}
	// A job enqueued ready has no record until reserved: B finds it from its id alone, even
	// before its watch has delivered the new queue.
	var fresh job
	if st := call(t, "GET", B+"/v1/jobs/"+j.ID, nil, &fresh); st != 200 || fresh.State != "ready" || fmt.Sprint(fresh.Payload) != "map[n:1]" {
		t.Fatalf("B looks up A's new job: %d %+v", st, fresh)
	}
	var res struct {
		Jobs []job `json:"jobs"`
	}
	if st := call(t, "POST", B+"/v1/reserve", map[string]any{"queues": []string{"shared"}, "wait": "10s"}, &res); st != 200 || len(res.Jobs) != 1 {
		t.Fatalf("reserve on B: %d %+v", st, res)
	}
	if res.Jobs[0].ID != j.ID {
		t.Fatalf("B reserved %s, want %s", res.Jobs[0].ID, j.ID)
	}
	// B holds the lease in memory and writes its record behind: A sees it then.
	var got job
	spooltest.Eventually(t, 5*time.Second, func() error {
		call(t, "GET", A+"/v1/jobs/"+j.ID, nil, &got)
		if got.State != "reserved" {
			return fmt.Errorf("A sees state %q, want reserved", got.State)
		}
		return nil
	})
	if st := call(t, "POST", A+"/v1/jobs/"+j.ID+"/ack", map[string]any{"lease_token": res.Jobs[0].LeaseToken}, nil); st != 200 {
		t.Fatalf("ack on A of B's reservation: %d", st)
	}
	call(t, "GET", B+"/v1/jobs/"+j.ID, nil, &got)
	if got.State != "succeeded" {
		t.Fatalf("B sees state %q, want succeeded", got.State)
	}
	// A pause on one server stops dispatch on the other.
	if st := call(t, "POST", B+"/v1/queues/shared/pause", map[string]any{}, nil); st != 200 {
		t.Fatalf("pause on B: %d", st)
	}
	call(t, "POST", A+"/v1/queues/shared/jobs", map[string]any{}, nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var r struct {
			Jobs   []job    `json:"jobs"`
			Paused []string `json:"paused"`
		}
		call(t, "POST", A+"/v1/reserve", map[string]any{"queues": []string{"shared"}}, &r)
		if len(r.Jobs) == 0 && len(r.Paused) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A still dispatches a queue paused on B: %+v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// buildSpool compiles the spool binary for child-process tests.
func buildSpool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "spool")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/spoolq/spool/cmd/spool")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build spool: %v\n%s", err, out)
	}
	return bin
}

// spawn starts `spool serve` as a child process and waits until it answers.
func spawn(t *testing.T, bin, data, addr string, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"serve", "--data", data, "--http", addr}, extra...)
	cmd := exec.Command(bin, args...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool serve not healthy: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freeAddr picks a loopback port that is free now (testport.Addr).
func freeAddr(t *testing.T) string { return testport.Addr(t) }

// An acknowledged enqueue survives SIGKILL of the server process, in every state.
func TestDurabilityKill9(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and kills a child process")
	}
	for _, fsync := range []string{"", "always"} {
		t.Run("fsync="+cmpName(fsync), func(t *testing.T) {
			bin := buildSpool(t)
			data := t.TempDir()
			addr := freeAddr(t)
			var extra []string
			if fsync != "" {
				extra = []string{"--fsync", fsync}
			}
			cmd := spawn(t, bin, data, addr, extra...)
			base := "http://" + addr

			const n = 300
			want := map[string]string{} // id -> state
			jobs := make([]map[string]any, n)
			for i := range jobs {
				jobs[i] = map[string]any{"payload": map[string]int{"i": i}}
			}
			var batch struct {
				Jobs []struct {
					ID    string `json:"id"`
					State string `json:"state"`
				} `json:"jobs"`
			}
			if st := call(t, "POST", base+"/v1/queues/durable/jobs", map[string]any{"jobs": jobs}, &batch); st != 200 || len(batch.Jobs) != n {
				t.Fatalf("batch enqueue: %d", st)
			}
			for _, j := range batch.Jobs {
				want[j.ID] = "ready"
			}
			var one job
			call(t, "POST", base+"/v1/queues/durable/jobs", map[string]any{"delay": "1h", "payload": "later"}, &one)
			want[one.ID] = "delayed"
			var res struct {
				Jobs []job `json:"jobs"`
			}
			call(t, "POST", base+"/v1/reserve", map[string]any{"queues": []string{"durable"}, "max": 3}, &res)
			if len(res.Jobs) != 3 {
				t.Fatalf("reserved %d", len(res.Jobs))
			}
			call(t, "POST", base+"/v1/jobs/"+res.Jobs[0].ID+"/ack", map[string]any{"lease_token": res.Jobs[0].LeaseToken}, nil)
			want[res.Jobs[0].ID] = "succeeded"
			call(t, "POST", base+"/v1/jobs/"+res.Jobs[1].ID+"/bury", map[string]any{"lease_token": res.Jobs[1].LeaseToken}, nil)
			want[res.Jobs[1].ID] = "buried"
			// A lease lives in the memory of its node, its record written behind: after
			// kill -9 the job reads reserved or, if the record was not written yet, ready
			// (JetStream offers it again when the lease ends).
			leased := res.Jobs[2].ID
			delete(want, leased)

			// kill -9: no shutdown, no flush.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()

			spawn(t, bin, data, addr, extra...)
			var got job
			if code := call(t, "GET", base+"/v1/jobs/"+leased, nil, &got); code != 200 || got.State != "reserved" && got.State != "ready" {
				t.Fatalf("leased job %s after kill -9: status %d, state %q", leased, code, got.State)
			}
			for id, st := range want {
				var got job
				if code := call(t, "GET", base+"/v1/jobs/"+id, nil, &got); code != 200 {
					t.Fatalf("job %s lost after kill -9: status %d", id, code)
				}
				if got.State != st {
					t.Fatalf("job %s: state %q after kill -9, want %q", id, got.State, st)
				}
				if st == "ready" && got.Payload == nil {
					t.Fatalf("job %s lost its payload", id)
				}
			}
			// The ready jobs are all still reservable, each exactly once.
			seen := map[string]bool{}
			for len(seen) < n-3 {
				var r struct {
					Jobs []job `json:"jobs"`
				}
				call(t, "POST", base+"/v1/reserve", map[string]any{"queues": []string{"durable"}, "max": 100, "wait": "2s"}, &r)
				if len(r.Jobs) == 0 {
					break
				}
				for _, j := range r.Jobs {
					if seen[j.ID] {
						t.Fatalf("job %s reserved twice", j.ID)
					}
					if j.ID == leased {
						continue // its lease died with the node: offered again, at least once
					}
					if st := want[j.ID]; st != "ready" {
						t.Fatalf("job %s, %s before the kill, reserved after the restart (attempts %d)", j.ID, st, j.Attempts)
					}
					seen[j.ID] = true
				}
			}
			if len(seen) != n-3 {
				t.Fatalf("reserved %d ready jobs after restart, want %d", len(seen), n-3)
			}
		})
	}
}

func cmpName(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

func TestMain(m *testing.M) {
	if os.Getenv("SPOOL_TEST_VERBOSE") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	os.Exit(m.Run())
}
