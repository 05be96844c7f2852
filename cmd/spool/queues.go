package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spoolq/spool"
)

func (c *cli) queuesCmd() *cobra.Command {
	var p spool.QueueListParams
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "List the queues with their job counts",
		Long: `List the queues with their job counts, sorted by name: all of them, or those that
--prefix, --paused and --limit select (the server selects them without reading the others).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if p.Limit < 0 {
				return usageErrorf("--limit must not be negative")
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			qs, err := cl.QueueList(cmd.Context(), &p)
			if err != nil {
				return err
			}
			if c.json {
				if qs == nil {
					qs = []*spool.Queue{}
				}
				return c.printJSON(map[string]any{"queues": qs})
			}
			if len(qs) == 0 {
				fmt.Fprintln(c.stderr, "no queues")
				return nil
			}
			now := time.Now()
			tw := c.table()
			fmt.Fprintln(tw, "QUEUE\tREADY\tRESERVED\tDELAYED\tBURIED\tOLDEST READY\tENQUEUED/S\tDONE/S\tPAUSED")
			for _, q := range qs {
				s := q.Stats
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%.1f\t%.1f\t%s\n", q.Name, s.Ready, s.Reserved, s.Delayed,
					s.Buried, fmtSpan(s.OldestReadyAge), s.EnqueueRate, s.CompleteRate, fmtPaused(q, now))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Prefix, "prefix", "", "only the queues whose names start with this")
	f.BoolVar(&p.Paused, "paused", false, "only the queues paused now")
	f.IntVar(&p.Limit, "limit", 0, "at most this many queues, the first by name (0: all)")
	return cmd
}

// fmtRetention shows a queue's retention, "none" for 0.
func fmtRetention(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return fmtDuration(d)
}

func fmtPaused(q *spool.Queue, now time.Time) string {
	switch {
	case !q.Paused:
		return "no"
	case q.PausedUntil.IsZero():
		return "yes"
	default:
		return "for " + fmtSpan(q.PausedUntil.Sub(now))
	}
}

func (c *cli) queueCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue NAME",
		Short: "Show a queue's settings and statistics; change or delete a queue",
		Long: `Show a queue's settings and statistics.

'spool queue set' creates a queue or changes its settings; 'spool queue delete' deletes
it with all its jobs. (Show a queue named like one of these subcommands with
'spool queues --json'.)`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			q, err := cl.Queue(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			return c.showQueue(q)
		},
	}
	cmd.AddCommand(c.queueSetCmd(), c.queueDeleteCmd())
	return cmd
}

func (c *cli) showQueue(q *spool.Queue) error {
	if c.json {
		return c.printJSON(q)
	}
	now := time.Now()
	s := q.Stats
	tw := c.table()
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("name", q.Name)
	row("paused", fmtPaused(q, now))
	row("created", fmtTime(q.CreatedAt, now))
	row("lease", fmtDuration(q.Lease))
	row("max attempts", q.MaxAttempts)
	row("backoff", fmt.Sprintf("%s doubling up to %s", fmtDuration(q.BackoffBase), fmtDuration(q.BackoffMax)))
	row("replicas", q.Replicas)
	row("retention", fmtRetention(q.Retention))
	row("events", map[bool]string{true: "on", false: "off"}[q.Events])
	row("jobs", fmt.Sprintf("ready %d, reserved %d, delayed %d, buried %d", s.Ready, s.Reserved, s.Delayed, s.Buried))
	row("oldest ready", fmtSpan(s.OldestReadyAge))
	row("rates", fmt.Sprintf("enqueued %.1f/s, succeeded %.1f/s (last minute)", s.EnqueueRate, s.CompleteRate))
	row("totals", fmt.Sprintf("enqueued %d, reserves %d, succeeded %d, failed %d, buried %d, cancelled %d, timeouts %d",
		s.Enqueued, s.Reserves, s.Succeeded, s.Failed, s.BuriedTotal, s.Cancelled, s.Timeouts))
	return tw.Flush()
}

func (c *cli) queueSetCmd() *cobra.Command {
	var s spool.QueueSettings
	var events bool
	var retention time.Duration
	cmd := &cobra.Command{
		Use:   "set NAME",
		Short: "Create a queue or change its settings",
		Long: `Create a queue or change its settings. --replicas (1, 3 or 5, at most the cluster's
nodes; default the server's --replicas) is set when the queue is made: another value for an
existing queue is refused (make a new queue and move the jobs; docs/cluster.md).
--retention 0 keeps no finished job: 'spool job ID' answers "job not found" once it is
done, and a prompt ack costs one stored write less (docs/http-api.md).`,
		Example: `  spool queue set email --lease 5m --max-attempts 10
  spool queue set email --backoff-base 2s --backoff-max 30m
  spool queue set thumbnails --replicas 1
  spool queue set clicks --retention 0`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if s.Lease < 0 || s.BackoffBase < 0 || s.BackoffMax < 0 {
				return usageErrorf("settings must not be negative")
			}
			if cmd.Flags().Changed("max-attempts") {
				if err := checkMaxAttempts(s.MaxAttempts); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("events") {
				s.Events = &events
			}
			if cmd.Flags().Changed("replicas") && s.Replicas != 1 && s.Replicas != 3 && s.Replicas != 5 {
				return usageErrorf("--replicas %d: want 1, 3 or 5", s.Replicas)
			}
			if cmd.Flags().Changed("retention") {
				if retention < 0 || retention%time.Second != 0 {
					return usageErrorf("--retention %s: want whole seconds, 0 or more (0: keep no finished job)", retention)
				}
				s.Retention = &retention
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			q, err := cl.UpdateQueue(cmd.Context(), a[0], s)
			if err != nil {
				return err
			}
			return c.showQueue(q)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&s.Lease, "lease", 0, "default lease of a reservation")
	f.IntVar(&s.MaxAttempts, "max-attempts", 0, "default attempts before a job is buried, 1 to 1000")
	f.DurationVar(&s.BackoffBase, "backoff-base", 0, "first retry delay (doubles each attempt)")
	f.DurationVar(&s.BackoffMax, "backoff-max", 0, "longest retry delay")
	f.BoolVar(&events, "events", true, "store the queue's lifecycle events (--events=false: off)")
	f.IntVar(&s.Replicas, "replicas", 0, "copies of the queue's jobs in the cluster, 1, 3 or 5, set when the queue is made (default the server's)")
	f.DurationVar(&retention, "retention", 0, "how long a finished job stays readable by id, whole seconds up to 2160h; 0 keeps none (default the server's --retention)")
	return cmd
}

func (c *cli) queueDeleteCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a queue and all its jobs",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if !yes && !c.confirm(fmt.Sprintf("Delete queue %s and all its jobs?", a[0])) {
				return fmt.Errorf("not confirmed: nothing deleted (pass --yes to skip the question)")
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteQueue(cmd.Context(), a[0]); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(map[string]any{"deleted": a[0]})
			}
			fmt.Fprintf(c.stdout, "deleted queue %s\n", a[0])
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (c *cli) pauseCmd() *cobra.Command {
	var d time.Duration
	cmd := &cobra.Command{
		Use:   "pause QUEUE",
		Short: "Stop a queue from handing out jobs (enqueues still accepted)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if d < 0 {
				return usageErrorf("--for %s: must not be negative", d)
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			q, err := cl.Pause(cmd.Context(), a[0], d)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(q)
			}
			if q.PausedUntil.IsZero() {
				fmt.Fprintf(c.stdout, "paused %s until resumed\n", q.Name)
			} else {
				fmt.Fprintf(c.stdout, "paused %s until %s\n", q.Name, q.PausedUntil.Local().Format(time.RFC3339))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&d, "for", 0, "resume by itself after this long (default: until 'spool resume')")
	return cmd
}

func (c *cli) resumeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resume QUEUE",
		Short: "Make a paused queue hand out jobs again",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			q, err := cl.Resume(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(q)
			}
			fmt.Fprintf(c.stdout, "resumed %s\n", q.Name)
			return nil
		},
	}
}

func (c *cli) kickCmd() *cobra.Command {
	var (
		maxJobs int
		all     bool
		jobs    []string
	)
	cmd := &cobra.Command{
		Use:   "kick {QUEUE [--max N | --all] | --job ID...}",
		Short: "Make buried jobs ready again",
		Long: `Make a queue's buried jobs ready again: all of them, or the oldest --max N.
With --job, kick the given jobs (buried or delayed) by id.`,
		Example: `  spool kick email --max 100
  spool kick --job 118594186739945473`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := exclusive(cmd, "max", "all", "job"); err != nil {
				return err
			}
			if len(jobs) > 0 {
				if len(a) > 0 {
					return usageErrorf("give either a QUEUE or --job, not both")
				}
				return c.kickJobs(cmd, jobs)
			}
			if len(a) == 0 {
				return usageErrorf("give a QUEUE or --job ID")
			}
			if cmd.Flags().Changed("max") && maxJobs < 1 {
				return usageErrorf("--max %d: want at least 1", maxJobs)
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			n, err := cl.KickQueue(cmd.Context(), a[0], maxJobs)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(map[string]int{"kicked": n})
			}
			fmt.Fprintf(c.stdout, "kicked %s in %s\n", nJobs(n), a[0])
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&maxJobs, "max", 0, "kick at most this many buried jobs, oldest first")
	f.BoolVar(&all, "all", false, "kick all buried jobs (the default)")
	f.StringArrayVar(&jobs, "job", nil, "kick this job by id (repeatable)")
	return cmd
}

func (c *cli) kickJobs(cmd *cobra.Command, raw []string) error {
	return c.eachJob(cmd, raw, "kicked", func(ctx context.Context, cl *spool.Client, id uint64) (*spool.Job, error) {
		return cl.Kick(ctx, id)
	})
}

func (c *cli) purgeCmd() *cobra.Command {
	var (
		state string
		yes   bool
	)
	cmd := &cobra.Command{
		Use:   "purge QUEUE",
		Short: "Delete a queue's jobs (reserved jobs are kept)",
		Long: `Delete a queue's jobs in one state (--state ready, delayed or buried), or every job
that is not reserved. Asks for confirmation unless --yes.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			what := "all unreserved jobs"
			switch spool.State(state) {
			case "":
			case spool.StateReady, spool.StateDelayed, spool.StateBuried:
				what = "all " + state + " jobs"
			default:
				return usageErrorf("--state %q: want ready, delayed or buried", state)
			}
			if !yes && !c.confirm(fmt.Sprintf("Delete %s of queue %s?", what, a[0])) {
				return fmt.Errorf("not confirmed: nothing purged (pass --yes to skip the question)")
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			n, err := cl.Purge(cmd.Context(), a[0], spool.State(state))
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(map[string]int{"purged": n})
			}
			fmt.Fprintf(c.stdout, "purged %s from %s\n", nJobs(n), a[0])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "purge only jobs in this state: ready, delayed or buried")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (c *cli) statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Show the server's statistics",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			s, err := cl.Stats(cmd.Context())
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(s)
			}
			tw := c.table()
			row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
			row("version", s.Version)
			row("uptime", fmtDuration(s.Uptime.Round(time.Second)))
			row("queues", fmt.Sprintf("%d (%d paused)", s.Queues, s.Paused))
			row("jobs", fmt.Sprintf("ready %d, reserved %d, delayed %d, buried %d", s.Jobs.Ready, s.Jobs.Reserved, s.Jobs.Delayed, s.Jobs.Buried))
			t := s.Totals
			row("totals", fmt.Sprintf("enqueued %d, reserves %d, succeeded %d, failed %d, buried %d, cancelled %d, timeouts %d",
				t.Enqueued, t.Reserves, t.Succeeded, t.Failed, t.BuriedTotal, t.Cancelled, t.Timeouts))
			row("rates", fmt.Sprintf("enqueued %.1f/s, succeeded %.1f/s (last minute)", s.EnqueueRate, s.CompleteRate))
			return tw.Flush()
		},
	}
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this program",
		Long: `Print the version of this program: the module version (or the release's), and for a
build from a git checkout the commit and its time ("+modified" with uncommitted changes).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuildInfo()
			if c.json {
				return c.printJSON(b)
			}
			fmt.Fprintf(c.stdout, "spool %s\n", b)
			return nil
		},
	}
}
