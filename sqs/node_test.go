package sqs_test

// End-to-end test with the Node SQS clients: @aws-sdk/client-sqs, sqs-producer and
// sqs-consumer (npm), pinned by testdata/node/package-lock.json, run testdata/node/e2e.mjs
// against the SQS front of a real spool server: 1,000 messages through a consumer whose
// heartbeats extend the visibility (5 s) of slow ones (7 s), failing ones reaching the
// dead-letter queue after 3 receives (maxReceiveCount). It needs node and the installed
// packages (npm ci --prefix sqs/testdata/node, which .ci/run does); without them it skips,
// and fails under CI=true.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/server"

	"github.com/spoolq/spool/internal/testdep"
)

const nodeDir = "testdata/node"

func TestNodeClients(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		testdep.Missing(t, "node is not installed (apt-get install nodejs npm): no test with the Node SQS clients")
	}
	for _, p := range []string{"@aws-sdk/client-sqs", "sqs-consumer", "sqs-producer"} {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", p, "package.json")); err != nil {
			testdep.Missing(t, "the Node SQS clients are not installed (npm ci --prefix sqs/"+nodeDir+"): "+err.Error())
		}
	}
	srv, err := spooltest.Run(t.TempDir(), func(c *server.Config) { c.SQSAddr = "127.0.0.1:0" })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "e2e.mjs", "http://"+srv.Addrs.SQS)
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("e2e.mjs: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.Bytes(), stdout.Bytes())
	}
	var sum struct {
		Processed, Duplicates, Failures, Heartbeats int
		Dead                                        []string
	}
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("e2e.mjs output %q: %v", stdout.Bytes(), err)
	}
	if sum.Processed != 995 || sum.Duplicates != 0 || len(sum.Dead) != 5 || sum.Heartbeats == 0 || sum.Failures != 15 {
		t.Fatalf("node run: %+v", sum)
	}
	// The dead letters were deleted from the dead-letter queue, a real spool queue.
	spooltest.Eventually(t, 10*time.Second, func() error {
		var q struct {
			Stats struct {
				Succeeded int64 `json:"succeeded"`
			} `json:"stats"`
		}
		resp, err := http.Get(srv.URL + "/v1/queues/node-dlq")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&q); err != nil {
			return err
		}
		if q.Stats.Succeeded != 6 {
			return fmt.Errorf("node-dlq: %d jobs succeeded, want 6 (5 dead letters and one plain message)", q.Stats.Succeeded)
		}
		return nil
	})
}
