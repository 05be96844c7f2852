package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/beanstalkd/go-beanstalk"

	"github.com/spoolq/spool/internal/beanstalkdtest"
	"github.com/spoolq/spool/internal/bsimport"
	"github.com/spoolq/spool/internal/spooltest"
)

func TestImportBeanstalkd(t *testing.T) {
	t.Parallel()
	bs := beanstalkdtest.Start(t, beanstalkdtest.Binary(t), "")
	srv := spooltest.Start(t, nil)
	s := "--server=" + srv.URL
	bc, err := beanstalk.Dial("tcp", bs.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	tb := beanstalk.NewTube(bc, "mail")
	for i, pri := range []uint32{5, 1, 1 << 31} {
		if _, err := tb.Put([]byte{'j', byte('0' + i)}, pri, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Put([]byte("later"), 9, time.Hour, time.Minute); err != nil {
		t.Fatal(err)
	}

	for _, bad := range [][]string{
		{"import", "beanstalkd", "--all"},
		{"import", "beanstalkd", "--from", bs.Addr},
		{"import", "beanstalkd", "--from", bs.Addr, "--all", "--tube", "mail"},
		{"import", "beanstalkd", "--from", bs.Addr, "--all", "--rate", "-1"},
	} {
		if r := spoolCmd(t, "", append(bad, s)...); r.code != exitUsage {
			t.Errorf("spool %s: exit %d, want %d\n%s", strings.Join(bad, " "), r.code, exitUsage, r.stderr)
		}
	}

	var dry bsimport.Report
	okJSON(t, &dry, "import", "beanstalkd", "--from", bs.Addr, "--all", "--dry-run", s)
	if !dry.DryRun || len(dry.Tubes) != 2 || dry.Tubes[1].Tube != "mail" || dry.Tubes[1].Found.Ready != 3 || dry.Tubes[1].Found.Delayed != 1 {
		t.Fatalf("dry run: %+v", dry)
	}

	r := ok(t, "import", "beanstalkd", "--from", bs.Addr, "--tube", "mail", "--rate", "0", s)
	if !strings.Contains(r.stderr, "mail: 4/4 moved (done)") {
		t.Errorf("progress: %q", r.stderr)
	}
	if !strings.Contains(r.stdout, "ready:   moved 3, skipped 0") || !strings.Contains(r.stdout, "delayed: moved 1,") {
		t.Errorf("summary: %q", r.stdout)
	}
	var q struct {
		Stats struct{ Ready, Delayed int }
	}
	spooltest.Eventually(t, 10*time.Second, func() error {
		okJSON(t, &q, "queue", "mail", s)
		if q.Stats.Ready != 3 || q.Stats.Delayed != 1 {
			return fmt.Errorf("queue mail in spool: %+v, want 3 ready, 1 delayed", q.Stats)
		}
		return nil
	})

	// Again: nothing left to move.
	var again bsimport.Report
	okJSON(t, &again, "import", "beanstalkd", "--from", bs.Addr, "--tube", "mail", s)
	if again.Total() != (bsimport.Counts{}) || !again.Complete() {
		t.Errorf("second run: %+v", again)
	}
}
