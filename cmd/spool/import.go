package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolq/spool/internal/bsimport"
)

func (c *cli) importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Move the jobs of another job server into spool",
		Args:  args(cobra.NoArgs),
	}
	cmd.AddCommand(c.importBeanstalkdCmd())
	return cmd
}

func (c *cli) importBeanstalkdCmd() *cobra.Command {
	var (
		o   bsimport.Options
		all bool
	)
	cmd := &cobra.Command{
		Use:   "beanstalkd --from HOST:PORT (--tube T ... | --all)",
		Short: "Move a running beanstalkd's jobs into spool queues of the same names",
		Long: `Move the jobs of a running beanstalkd (1.12) into spool queues named as its tubes:
ready jobs with their priority and TTR (as the lease), delayed jobs with their remaining
delay, buried jobs as buried; a paused tube stays paused in spool for its remaining time.
Jobs that beanstalkd's workers hold are left to them and counted: run the import again
once they are released.

Each job is stored in spool before it is deleted from beanstalkd, and carries a unique key
made of beanstalkd's process id and the job id: an interrupted import may be run again,
and what an earlier run stored is not stored again. Progress goes to standard error, the summary to standard output;
the exit status is 1 when a job could not be moved. See docs/migration.md for a cut-over
plan.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.From == "" {
				return usageErrorf("--from is required (beanstalkd's HOST:PORT)")
			}
			if all == (len(o.Tubes) > 0) {
				return usageErrorf("name the tubes with --tube, or give --all")
			}
			if o.Rate < 0 {
				return usageErrorf("--rate %v: want 0 (no limit) or more jobs per second", o.Rate)
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			if !o.DryRun {
				o.Progress = newTubeProgress(c).update
			}
			rep, err := bsimport.Run(cmd.Context(), cl, o)
			if rep == nil {
				return err
			}
			if perr := c.printImport(rep); perr != nil {
				return perr
			}
			if errors.Is(err, context.Canceled) {
				return fmt.Errorf("interrupted; run the same command again to go on: %w", err)
			}
			if err != nil {
				return err
			}
			if !rep.Complete() {
				t := rep.Total()
				return fmt.Errorf("%d failed, %d left behind them, %d raced (see the summary)", t.Failed, t.Left, t.Raced)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.From, "from", "", "beanstalkd's address, HOST:PORT")
	f.StringArrayVar(&o.Tubes, "tube", nil, "a tube to move (repeat for several)")
	f.BoolVar(&all, "all", false, "move every tube")
	f.BoolVar(&o.DryRun, "dry-run", false, "count each tube's jobs, move nothing")
	f.Float64Var(&o.Rate, "rate", 500, "jobs moved per second at most, to spare beanstalkd; 0: no limit")
	return cmd
}

// tubeProgress reports each tube's advance on stderr, at most once a second per tube and
// once at its end; with --json, nothing.
type tubeProgress struct {
	c    *cli
	tube string
	last time.Time
}

func newTubeProgress(c *cli) *tubeProgress { return &tubeProgress{c: c} }

func (p *tubeProgress) update(t *bsimport.TubeReport) {
	if p.c.json || (t.Tube == p.tube && !t.Done && time.Since(p.last) < time.Second) {
		return
	}
	p.tube, p.last = t.Tube, time.Now()
	total := t.Total()
	line := fmt.Sprintf("%s: %d/%d moved", t.Tube, total.Moved+total.Skipped, t.Found.Ready+t.Found.Delayed+t.Found.Buried)
	if total.Failed > 0 {
		line += fmt.Sprintf(", %d failed", total.Failed)
	}
	if t.Done {
		line += " (done)"
	}
	fmt.Fprintln(p.c.stderr, line)
}

// printImport prints the summary: one line per tube and the totals by state.
func (c *cli) printImport(rep *bsimport.Report) error {
	if c.json {
		return c.printJSON(rep)
	}
	w := c.table()
	verb := "MOVED"
	if rep.DryRun {
		verb = "FOUND"
	}
	fmt.Fprintf(w, "TUBE\tREADY\tDELAYED\tBURIED\tRESERVED\tPAUSED\t%s\tSKIPPED\tFAILED\tRACED\tLEFT\n", verb)
	for i := range rep.Tubes {
		t := &rep.Tubes[i]
		n := t.Total()
		moved := n.Moved
		if rep.DryRun {
			moved = t.Found.Ready + t.Found.Delayed + t.Found.Buried
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\n", t.Tube, t.Found.Ready, t.Found.Delayed, t.Found.Buried,
			t.Reserved, fmtDuration(time.Duration(t.PausedSeconds)*time.Second), moved, n.Skipped, n.Failed, n.Raced, n.Left)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if rep.DryRun {
		fmt.Fprintf(c.stdout, "dry run: nothing moved from %s\n", rep.From)
		return nil
	}
	for _, s := range []struct {
		name string
		n    bsimport.Counts
	}{{"ready", rep.Ready}, {"delayed", rep.Delayed}, {"buried", rep.Buried}} {
		fmt.Fprintf(c.stdout, "%-8s moved %d, skipped %d (already in spool), failed %d, raced %d, left %d\n",
			s.name+":", s.n.Moved, s.n.Skipped, s.n.Failed, s.n.Raced, s.n.Left)
	}
	fmt.Fprintf(c.stdout, "reserved: %d left to beanstalkd's workers (run again once they release them)\n", rep.Reserved)
	for i := range rep.Tubes {
		if e := rep.Tubes[i].LastError; e != "" {
			fmt.Fprintf(c.stdout, "%s: %s\n", rep.Tubes[i].Tube, e)
		}
	}
	return nil
}
