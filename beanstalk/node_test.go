package beanstalk_test

// End-to-end test with a client in another language: the Node.js client fivebeans (npm),
// pinned by testdata/fivebeans/package-lock.json, runs testdata/fivebeans/e2e.js against the
// beanstalkd port of a real spool server. It needs node and the installed package
// (npm ci --prefix beanstalk/testdata/fivebeans, which .ci/run does); without them it skips,
// and fails under CI=true.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/server"

	"github.com/spoolq/spool/internal/testdep"
)

const fivebeansDir = "testdata/fivebeans"

// nodeWithFivebeans returns the node binary, once fivebeans is installed, or skips the test
// (fails it under CI).
func nodeWithFivebeans(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testdep.Missing(t, "node is not installed (apt-get install nodejs npm): no test with the fivebeans client")
	}
	if _, err := os.Stat(filepath.Join(fivebeansDir, "node_modules", "fivebeans", "package.json")); err != nil {
		testdep.Missing(t, "fivebeans is not installed (npm ci --prefix beanstalk/"+fivebeansDir+"): "+err.Error())
	}
	return node
}

func TestNodeClientFivebeans(t *testing.T) {
	t.Parallel()
	node := nodeWithFivebeans(t)
	srv, err := spooltest.Run(t.TempDir(), func(c *server.Config) {
		c.BeanstalkAddr = "127.0.0.1:0"
		c.Version = "v0.0.0-node-e2e"
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--no-deprecation", "e2e.js", srv.Addrs.Beanstalk, "v0.0.0-node-e2e")
	cmd.Dir = fivebeansDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fivebeans e2e.js: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.Bytes(), stdout.Bytes())
	}
	var ids struct {
		Deleted, Cancelled, Buried string
	}
	if err := json.Unmarshal(stdout.Bytes(), &ids); err != nil {
		t.Fatalf("e2e.js output %q: %v", stdout.Bytes(), err)
	}

	// The jobs as the engine holds them, seen over HTTP.
	type job struct {
		Queue         string `json:"queue"`
		State         string `json:"state"`
		Priority      uint32 `json:"priority"`
		Kicks         int    `json:"kicks"`
		PayloadBase64 string `json:"payload_base64"`
	}
	for id, want := range map[string]string{ids.Deleted: "succeeded", ids.Cancelled: "cancelled"} {
		var j job
		getJSON(t, fmt.Sprintf("%s/v1/jobs/%s", srv.URL, id), &j)
		if j.Queue != "node.e2e" || j.State != want {
			t.Errorf("job %s: %+v, want state %s in queue node.e2e", id, j, want)
		}
	}
	var j job
	getJSON(t, fmt.Sprintf("%s/v1/jobs/%s", srv.URL, ids.Buried), &j)
	body, err := base64.StdEncoding.DecodeString(j.PayloadBase64)
	if err != nil || j.Queue != "node.e2e" || j.State != "buried" || j.Priority != 7 || j.Kicks != 2 || !bytes.Equal(body, []byte{0x00, '\r', '\n', 0xff, 'A', '\r', '\n'}) {
		t.Errorf("job %s left buried by the client: %+v (payload %q, %v)", ids.Buried, j, body, err)
	}
}
