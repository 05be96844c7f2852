package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spoolq/spool"
)

func (c *cli) cronCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cron",
		Short: "Manage schedules: jobs enqueued on a cron spec, an interval or once",
		Long: `Manage schedules. A schedule enqueues a job from its template into a queue at each tick
of its spec, exactly once per tick however many servers run (see docs/schedules.md).

Specs: 5-field cron ("0 2 * * *"), 6 fields with seconds first ("*/10 * * * * *"),
@hourly, @daily, @weekly, @monthly, @yearly, "@every 30s", "@at 2027-01-01T09:00:00".`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.cronListCmd(), c.cronShowCmd(), c.cronSetCmd(), c.cronDeleteCmd(),
		c.cronPauseCmd(), c.cronResumeCmd(), c.cronTriggerCmd())
	return cmd
}

func (c *cli) cronListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the schedules with their next and last fire",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			list, err := cl.Schedules(cmd.Context())
			if err != nil {
				return err
			}
			if c.json {
				if list == nil {
					list = []*spool.Schedule{}
				}
				return c.printJSON(map[string]any{"schedules": list})
			}
			if len(list) == 0 {
				fmt.Fprintln(c.stderr, "no schedules")
				return nil
			}
			now := time.Now()
			tw := c.table()
			fmt.Fprintln(tw, "SCHEDULE\tSPEC\tZONE\tQUEUE\tTYPE\tNEXT FIRE\tLAST FIRE\tPAUSED")
			for _, s := range list {
				last := "-"
				if s.LastFire != nil {
					last = fmtAge(s.LastFire.Tick, now)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Spec, s.TimeZone, s.Queue, orDash(s.Job.Type),
					fmtAge(s.NextFireAt, now), last, yesNo(s.Paused))
			}
			return tw.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (c *cli) cronShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a schedule: definition, next fire and recent fires",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			s, err := cl.Schedule(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			return c.showSchedule(s)
		},
	}
}

func (c *cli) showSchedule(s *spool.Schedule) error {
	if c.json {
		return c.printJSON(s)
	}
	now := time.Now()
	tw := c.table()
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("name", s.Name)
	row("spec", s.Spec)
	row("time zone", s.TimeZone)
	row("queue", s.Queue)
	row("job type", orDash(s.Job.Type))
	if len(s.Job.Payload) > 0 {
		row("payload", fmtPayload(s.Job.Payload, 200))
	}
	if s.Job.Priority != nil {
		row("priority", *s.Job.Priority)
	}
	if s.Job.Lease != 0 {
		row("lease", fmtDuration(s.Job.Lease))
	}
	if s.Job.MaxAttempts != 0 {
		row("max attempts", s.Job.MaxAttempts)
	}
	if s.Job.UniqueKey != "" {
		row("unique key", s.Job.UniqueKey)
	}
	if len(s.Job.Metadata) > 0 {
		md, _ := json.Marshal(s.Job.Metadata)
		row("metadata", string(md))
	}
	if !s.StartAt.IsZero() {
		row("start", fmtTime(s.StartAt, now))
	}
	if !s.EndAt.IsZero() {
		row("end", fmtTime(s.EndAt, now))
	}
	row("catch up", s.CatchUp)
	row("paused", yesNo(s.Paused))
	row("next fire", fmtTime(s.NextFireAt, now))
	if s.LastFire != nil {
		row("last fire", fmt.Sprintf("%s, job %d", fmtTime(s.LastFire.Tick, now), s.LastFire.JobID))
	} else {
		row("last fire", "-")
	}
	row("created", fmtTime(s.CreatedAt, now))
	row("updated", fmtTime(s.UpdatedAt, now))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.RecentFires) == 0 {
		return nil
	}
	fmt.Fprintln(c.stdout)
	tw = c.table()
	fmt.Fprintln(tw, "TICK\tJOB\tFIRED\tKIND")
	for _, f := range s.RecentFires {
		kind := "tick"
		switch {
		case f.Trigger:
			kind = "trigger"
		case f.Skipped:
			kind = "skipped (unique key held)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", f.Tick.Local().Format(time.RFC3339), f.JobID, fmtAge(f.FiredAt, now), kind)
	}
	return tw.Flush()
}

func (c *cli) cronSetCmd() *cobra.Command {
	var (
		def                                              spool.ScheduleDefinition
		payloadArg, payloadFile, startAt, endAt, catchUp string
		priority                                         uint32
		meta                                             []string
		paused                                           bool
	)
	cmd := &cobra.Command{
		Use:   "set NAME",
		Short: "Create a schedule or replace its definition",
		Long: `Create a schedule or replace its definition with the one given by the flags (flags
left out take their defaults: the definition is replaced as a whole). A paused schedule
stays paused unless --paused=false.

Changing the spec, time zone or start time starts the new ticks from now: no tick from
before is caught up.`,
		Example: `  spool cron set nightly-report --spec "0 2 * * *" --tz Europe/Paris --queue reports \
      --type report.build --payload '{"kind":"daily"}'
  spool cron set heartbeat --spec "@every 30s" --queue ops --type ping --catch-up skip
  spool cron set launch --spec "@at 2027-01-01T09:00:00" --tz America/New_York --queue ops --type launch`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := exclusive(cmd, "payload", "payload-file"); err != nil {
				return err
			}
			if def.Spec == "" || def.Queue == "" {
				return usageErrorf("--spec and --queue are required")
			}
			payload, err := c.readPayload(cmd, payloadArg, payloadFile)
			if err != nil {
				return err
			}
			switch p := payload.(type) {
			case json.RawMessage:
				def.Job.Payload = p
			case []byte:
				def.Job.Payload = p
			}
			if cmd.Flags().Changed("priority") {
				def.Job.Priority = &priority
			}
			if def.Job.Lease < 0 || def.Job.MaxAttempts < 0 {
				return usageErrorf("--lease and --max-attempts must not be negative")
			}
			for _, t := range []struct {
				flag, value string
				dst         *time.Time
			}{{"start-at", startAt, &def.StartAt}, {"end-at", endAt, &def.EndAt}} {
				if t.value == "" {
					continue
				}
				v, err := time.Parse(time.RFC3339Nano, t.value)
				if err != nil {
					return usageErrorf("--%s %q: want an RFC 3339 time such as 2027-01-01T09:00:00Z", t.flag, t.value)
				}
				*t.dst = v
			}
			switch catchUp {
			case "", spool.CatchUpOnce, spool.CatchUpSkip:
				def.CatchUp = catchUp
			default:
				return usageErrorf("--catch-up %q: want once or skip", catchUp)
			}
			if len(meta) > 0 {
				if def.Job.Metadata, err = parseMeta(meta); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("paused") {
				def.Paused = &paused
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			s, err := cl.PutSchedule(cmd.Context(), a[0], def)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(s)
			}
			next := "none"
			if !s.NextFireAt.IsZero() {
				next = fmtTime(s.NextFireAt, time.Now())
			}
			if s.Paused {
				next = "paused"
			}
			fmt.Fprintf(c.stdout, "schedule %s saved; next fire: %s\n", s.Name, next)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&def.Spec, "spec", "", `when to fire: "0 2 * * *", "*/10 * * * * *", @daily, "@every 30s", "@at 2027-01-01T09:00:00" (required)`)
	f.StringVar(&def.TimeZone, "tz", "", "IANA time zone of the spec, e.g. Europe/Paris (default UTC)")
	f.StringVar(&def.Queue, "queue", "", "queue of the jobs (required)")
	f.StringVarP(&def.Job.Type, "type", "t", "", "job type: the name of the handler")
	f.StringVarP(&payloadArg, "payload", "p", "", "payload as a JSON value; '-' reads it from standard input")
	f.StringVar(&payloadFile, "payload-file", "", "read the payload from a file ('-': standard input)")
	f.Uint32Var(&priority, "priority", 1024, "priority of the jobs: lower is more urgent")
	f.DurationVar(&def.Job.Lease, "lease", 0, "lease of each reservation (default: the queue's)")
	f.IntVar(&def.Job.MaxAttempts, "max-attempts", 0, "attempts before a job is buried (default: the queue's)")
	f.StringVar(&def.Job.UniqueKey, "unique-key", "", "enqueue nothing while an unfinished job has this key (no overlapping runs)")
	f.StringArrayVar(&meta, "meta", nil, "job metadata key=value (repeatable)")
	f.StringVar(&startAt, "start-at", "", "no tick before this RFC 3339 time")
	f.StringVar(&endAt, "end-at", "", "no tick after this RFC 3339 time")
	f.StringVar(&catchUp, "catch-up", "", "ticks missed while no server ran: once (fire the latest, default) or skip")
	f.BoolVar(&paused, "paused", false, "pause (or with =false resume) the schedule")
	return cmd
}

func (c *cli) cronDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a schedule (the jobs it enqueued stay)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteSchedule(cmd.Context(), a[0]); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(map[string]any{"deleted": a[0]})
			}
			fmt.Fprintf(c.stdout, "deleted schedule %s\n", a[0])
			return nil
		},
	}
}

func (c *cli) cronPauseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pause NAME",
		Short: "Stop a schedule from firing until resumed",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			s, err := cl.PauseSchedule(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(s)
			}
			fmt.Fprintf(c.stdout, "paused schedule %s\n", s.Name)
			return nil
		},
	}
}

func (c *cli) cronResumeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resume NAME",
		Short: "Let a paused schedule fire again from its next tick",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			s, err := cl.ResumeSchedule(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(s)
			}
			fmt.Fprintf(c.stdout, "resumed schedule %s; next fire: %s\n", s.Name, fmtTime(s.NextFireAt, time.Now()))
			return nil
		},
	}
}

func (c *cli) cronTriggerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "trigger NAME",
		Short: "Fire a schedule now, once (its ticks go on as planned)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			job, err := cl.TriggerSchedule(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(job)
			}
			fmt.Fprintf(c.stdout, "enqueued job %d (%s) on %s\n", job.ID, job.State, job.Queue)
			return nil
		},
	}
}
