package server_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/server"

	"github.com/spoolq/spool/internal/testdep"
)

// smallFS mounts a tmpfs of size bytes for the test, or ends the test where mounting is not
// allowed (skipped; failed under CI=true, where it must run).
func smallFS(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		why := fmt.Sprintf("cannot mount a small tmpfs to fill (needs root and mount rights): %v %s", err, strings.TrimSpace(string(out)))
		testdep.Missing(t, why)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until less than leave bytes are free, and returns its path.
func fill(t *testing.T, dir, name string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for _, n := range []int{64 << 10, 4096, 1} {
		for {
			var st syscall.Statfs_t
			if err := syscall.Statfs(dir, &st); err != nil {
				t.Fatal(err)
			}
			if int64(st.Bavail)*st.Bsize < leave {
				return p
			}
			if _, err := f.Write(buf[:n]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return p
}

// do sends one request and returns its status, Retry-After and body.
func do(t *testing.T, method, url, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// The data folder's filesystem fills up: new jobs get a retryable 503 and are not stored,
// reads and acks go on, /healthz answers 503; a write that fails (the disk at 0 bytes free)
// leaves JetStream's store failed, which the node restarts by itself once space returns;
// every stored job is still there in its state.
func TestFullDisk(t *testing.T) {
	dir := smallFS(t, 48<<20)
	const minFree = 8 << 20
	srv := spooltest.Start(t, func(c *server.Config) { c.DataDir, c.MinFree = filepath.Join(dir, "data"), minFree })
	ids := storeJobs(t, srv.URL, 5)
	var res struct{ Jobs []job }
	if st := call(t, "POST", srv.URL+"/v1/queues/kept/reserve", map[string]any{"max": 2}, &res); st != 200 || len(res.Jobs) != 2 {
		t.Fatalf("reserve: %d", st)
	}
	healthy := func() error {
		if st, _, body := do(t, "GET", srv.URL+"/healthz", ""); st != 200 {
			return fmt.Errorf("healthz %d %s", st, body)
		}
		return nil
	}

	// Low on space: refused before the disk is full, with room left for acks.
	low := fill(t, dir, "low", minFree/2)
	spooltest.Eventually(t, 10*time.Second, func() error {
		if healthy() == nil {
			return errors.New("healthz still 200 with less than --min-free free")
		}
		return nil
	})
	for _, q := range []string{"kept", "new-queue"} {
		st, ra, body := do(t, "POST", srv.URL+"/v1/queues/"+q+"/jobs", `{"payload":"no room"}`)
		if st != 503 || ra == "" || !strings.Contains(body, `"unavailable"`) {
			t.Fatalf("enqueue to %s with the disk low: %d %q (Retry-After %q), want a retryable 503", q, st, body, ra)
		}
	}
	if st, _, body := do(t, "GET", srv.URL+"/v1/jobs/"+ids[4], ""); st != 200 || !strings.Contains(body, `"ready"`) {
		t.Fatalf("read with the disk low: %d %s", st, body)
	}
	if st, _, body := do(t, "POST", srv.URL+"/v1/jobs/"+res.Jobs[0].ID+"/ack", `{"lease_token":"`+res.Jobs[0].LeaseToken+`"}`); st != 200 {
		t.Fatalf("ack with the disk low: %d %s", st, body)
	}

	// Full: a write fails (an ack's record with a result, the engine's counters), and
	// JetStream keeps the failed stream failed. The ack is never answered as done unless stored.
	full := fill(t, dir, "full", 1)
	result := `{"result":"` + strings.Repeat("r", 60<<10) + `"}`
	st, _, body := do(t, "POST", srv.URL+"/v1/jobs/"+res.Jobs[1].ID+"/ack", result[:len(result)-1]+`,"lease_token":"`+res.Jobs[1].LeaseToken+`"}`)
	t.Logf("ack with the disk full: %d %.200s", st, body)
	if st != 200 && st != 503 {
		t.Fatalf("ack with the disk full: %d %s, want stored (200) or a retryable 503", st, body)
	}
	acked := st == 200

	// Space returns: the node recovers by itself.
	os.Remove(full)
	os.Remove(low)
	spooltest.Eventually(t, 60*time.Second, healthy)
	spooltest.Eventually(t, 60*time.Second, func() error {
		for _, q := range []string{"kept", "new-queue"} {
			if st, _, body := do(t, "POST", srv.URL+"/v1/queues/"+q+"/jobs", `{"payload":"after"}`); st != 201 {
				return fmt.Errorf("enqueue to %s after space returned: %d %s", q, st, body)
			}
		}
		return nil
	})
	checkJobs(t, srv.URL, ids[2:])
	for i, want := range []string{"succeeded", map[bool]string{true: "succeeded", false: "reserved"}[acked]} {
		var j job
		if st := call(t, "GET", srv.URL+"/v1/jobs/"+res.Jobs[i].ID, nil, &j); st != 200 || j.State != want {
			t.Fatalf("job %s after recovery: %d %s, want %s", res.Jobs[i].ID, st, j.State, want)
		}
	}
}
