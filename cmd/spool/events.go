package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spoolq/spool"
)

// splitList splits comma-separated flag values, dropping empty items.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// printEvents prints events one a line (JSON lines with --json).
func (c *cli) printEvent(ev spool.Event) error {
	if c.json {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "%s\n", b)
		return err
	}
	line := fmt.Sprintf("%s  %-9s  job %d  %s", ev.Time.Local().Format("2006-01-02 15:04:05.000"), ev.Kind, ev.JobID, ev.Queue)
	if ev.Type != "" {
		line += "  type=" + ev.Type
	}
	line += fmt.Sprintf("  attempt=%d  state=%s", ev.Attempt, ev.State)
	if ev.Worker != "" {
		line += "  worker=" + ev.Worker
	}
	if ev.Node != "" {
		line += "  node=" + ev.Node
	}
	if !ev.RunAt.IsZero() {
		line += "  run_at=" + ev.RunAt.Local().Format(time.RFC3339)
	}
	if ev.Error != "" {
		line += "  error=" + strconv.Quote(ev.Error)
	}
	_, err := fmt.Fprintln(c.stdout, line)
	return err
}

func (c *cli) eventsCmd() *cobra.Command {
	var (
		follow              bool
		queues, types, kind []string
		after               string
	)
	cmd := &cobra.Command{
		Use:   "events --follow",
		Short: "Follow lifecycle events as they happen",
		Long: `Print lifecycle events (enqueued, reserved, touched, succeeded, failed, buried, kicked,
released, expired, cancelled) as the server stores them, until interrupted; with --json, one
JSON object a line. A broken connection is resumed where it left off. --after POS starts
after an event's position (0: from the oldest event kept). See docs/events.md.`,
		Example: `  spool events --follow --queue video
  spool events --follow --kinds failed,buried --json
  spool events --follow --after 0 --type email.send`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !follow {
				return usageErrorf("events are a live feed: add --follow (and --after 0 to start from the oldest kept)")
			}
			if after != "" {
				if _, err := strconv.ParseUint(after, 10, 64); err != nil {
					return usageErrorf("--after %q: want an event position", after)
				}
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			err = cl.FollowEvents(cmd.Context(), spool.EventsOptions{Queues: splitList(queues), Types: splitList(types), Kinds: splitList(kind), After: after}, c.printEvent)
			if cmd.Context().Err() != nil {
				return nil // interrupted
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "follow the feed until interrupted")
	f.StringSliceVar(&queues, "queue", nil, "only these queues (repeat or comma-separate)")
	f.StringSliceVar(&types, "type", nil, "only these job types")
	f.StringSliceVar(&kind, "kinds", nil, "only these event kinds")
	f.StringVar(&after, "after", "", "resume after this event position (0: the oldest kept)")
	return cmd
}

// printHistory prints a job's timeline.
func (c *cli) printHistory(cmd *cobra.Command, cl *spool.Client, id uint64) error {
	evs, err := cl.JobEvents(cmd.Context(), id)
	if err != nil {
		return err
	}
	if c.json {
		if evs == nil {
			evs = []spool.Event{}
		}
		return c.printJSON(map[string]any{"events": evs})
	}
	if len(evs) == 0 {
		fmt.Fprintln(c.stderr, "no events (the queue's events may be off)")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "TIME\tEVENT\tATTEMPT\tSTATE\tWORKER\tNODE\tDETAIL")
	for _, ev := range evs {
		detail := ev.Error
		if !ev.RunAt.IsZero() {
			detail = strings.TrimSpace("retry at " + ev.RunAt.Local().Format(time.RFC3339) + " " + detail)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", ev.Time.Local().Format("2006-01-02 15:04:05.000"), ev.Kind, ev.Attempt,
			ev.State, orDash(ev.Worker), orDash(ev.Node), orDash(detail))
	}
	return tw.Flush()
}

func (c *cli) hookCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hook",
		Short: "Manage webhooks: endpoints told of job events",
		Long: `Manage webhooks. A hook POSTs the events of its kinds, for jobs of its queue and type, to its
URL, signed with its secret (HMAC-SHA256, see docs/events.md). A delivery that fails is
retried with backoff for hours, then dead: list dead deliveries and send them again.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.hookCreateCmd(), c.hookListCmd(), c.hookDeleteCmd(), c.hookDeliveriesCmd(), c.hookRedeliverCmd())
	return cmd
}

func (c *cli) hookCreateCmd() *cobra.Command {
	var h spool.Webhook
	var on []string
	cmd := &cobra.Command{
		Use:     "create --url URL",
		Short:   "Subscribe a URL to events; prints the hook and its secret (shown once)",
		Example: `  spool hook create --queue video --on succeeded,buried --url https://example.com/spool`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if h.URL == "" {
				return usageErrorf("--url is required")
			}
			h.Kinds = splitList(on)
			cl, err := c.client()
			if err != nil {
				return err
			}
			out, err := cl.CreateWebhook(cmd.Context(), h)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(out)
			}
			tw := c.table()
			fmt.Fprintf(tw, "id:\t%s\nurl:\t%s\nqueue:\t%s\ntype:\t%s\non:\t%s\nsecret:\t%s\n", out.ID, out.URL, orDash(out.Queue),
				orDash(out.Type), strings.Join(out.Kinds, ","), out.Secret)
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&h.URL, "url", "", "endpoint URL (http or https)")
	f.StringVar(&h.Queue, "queue", "", "only this queue's jobs (default all)")
	f.StringVar(&h.Type, "type", "", "only jobs of this type (default all)")
	f.StringSliceVar(&on, "on", nil, "event kinds (default succeeded,failed,buried,cancelled)")
	f.StringVar(&h.Secret, "secret", "", "signing secret (default a random one)")
	return cmd
}

func (c *cli) hookListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the hooks",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			list, err := cl.Webhooks(cmd.Context())
			if err != nil {
				return err
			}
			if c.json {
				if list == nil {
					list = []spool.Webhook{}
				}
				secret, err := cl.WebhookCallbackSecret(cmd.Context())
				if err != nil {
					return err
				}
				return c.printJSON(map[string]any{"webhooks": list, "callback_secret": secret})
			}
			if len(list) == 0 {
				fmt.Fprintln(c.stderr, "no hooks")
				return nil
			}
			tw := c.table()
			fmt.Fprintln(tw, "ID\tQUEUE\tTYPE\tON\tURL")
			for _, h := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.ID, orDash(h.Queue), orDash(h.Type), strings.Join(h.Kinds, ","), h.URL)
			}
			return tw.Flush()
		},
	}
}

func (c *cli) hookDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a hook",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteWebhook(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.stderr, "deleted hook %s\n", a[0])
			return nil
		},
	}
}

func (c *cli) hookDeliveriesCmd() *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:   "deliveries",
		Short: "List dead deliveries (or waiting ones with --state delayed)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			list, err := cl.WebhookDeliveries(cmd.Context(), spool.State(state))
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(list)
			}
			if len(list) == 0 {
				fmt.Fprintf(c.stderr, "no %s deliveries\n", state)
				return nil
			}
			tw := c.table()
			fmt.Fprintln(tw, "ID\tHOOK\tEVENT\tJOB\tATTEMPTS\tURL\tLAST ERROR")
			for _, d := range list {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\n", d.ID, orDash(d.Hook), d.Event.Kind, d.Event.JobID, d.Attempts, d.URL, orDash(d.LastError))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&state, "state", "buried", "buried (dead), delayed (waiting for a retry) or ready")
	return cmd
}

func (c *cli) hookRedeliverCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "redeliver ID",
		Short: "Send a dead delivery again now",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			id, err := parseID(a[0])
			if err != nil {
				return err
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := cl.Redeliver(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(c.stderr, "delivery %d is ready again\n", id)
			return nil
		},
	}
}
