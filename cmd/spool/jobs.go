package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spoolq/spool"
)

func (c *cli) enqueueCmd() *cobra.Command {
	var (
		jobType, payloadArg, payloadFile, runAt, uniqueKey string
		callback                                           string
		priority                                           uint32
		delay, lease                                       time.Duration
		maxAttempts, count                                 int
		meta                                               []string
	)
	cmd := &cobra.Command{
		Use:   "enqueue QUEUE",
		Short: "Add a job to a queue",
		Long: `Add a job to a queue (created on first use) and print it.

The payload is a JSON value (--payload), or a file's content (--payload-file), sent as JSON
when it is valid JSON and as bytes otherwise. '-' reads either from standard input.
--count N enqueues N copies of the job in batches, with progress on standard error.`,
		Example: `  spool enqueue email --type email.send --payload '{"to":"a@example.com"}'
  spool enqueue reports --type report.build --delay 1h --meta tenant=acme
  spool enqueue images --type thumb --payload-file photo.jpg
  echo '{"n":1}' | spool enqueue bulk --type t --payload - --count 10000`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			queue := a[0]
			if err := exclusive(cmd, "payload", "payload-file"); err != nil {
				return err
			}
			if err := exclusive(cmd, "delay", "run-at"); err != nil {
				return err
			}
			if count < 1 {
				return usageErrorf("--count %d: want at least 1", count)
			}
			payload, err := c.readPayload(cmd, payloadArg, payloadFile)
			if err != nil {
				return err
			}
			var opts []spool.EnqueueOption
			if cmd.Flags().Changed("priority") {
				opts = append(opts, spool.Priority(priority))
			}
			if delay != 0 {
				opts = append(opts, spool.Delay(delay))
			}
			if runAt != "" {
				t, err := time.Parse(time.RFC3339Nano, runAt)
				if err != nil {
					return usageErrorf("--run-at %q: want an RFC 3339 time such as 2027-01-01T09:00:00Z", runAt)
				}
				opts = append(opts, spool.RunAt(t))
			}
			if lease != 0 {
				opts = append(opts, spool.Lease(lease))
			}
			if cmd.Flags().Changed("max-attempts") {
				if err := checkMaxAttempts(maxAttempts); err != nil {
					return err
				}
				opts = append(opts, spool.MaxAttempts(maxAttempts))
			}
			if uniqueKey != "" {
				opts = append(opts, spool.UniqueKey(uniqueKey))
			}
			if callback != "" {
				opts = append(opts, spool.CallbackURL(callback))
			}
			if len(meta) > 0 {
				md, err := parseMeta(meta)
				if err != nil {
					return err
				}
				opts = append(opts, spool.Metadata(md))
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			if count == 1 {
				job, err := cl.Enqueue(cmd.Context(), queue, jobType, payload, opts...)
				if err != nil {
					return err
				}
				if c.json {
					return c.printJSON(job)
				}
				if job.Duplicate {
					fmt.Fprintf(c.stdout, "duplicate of job %d (%s): nothing enqueued\n", job.ID, job.State)
					return nil
				}
				fmt.Fprintf(c.stdout, "enqueued job %d (%s)\n", job.ID, job.State)
				return nil
			}
			return c.enqueueMany(cmd, cl, queue, spool.BatchJob{Type: jobType, Payload: payload, Options: opts}, count)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&jobType, "type", "t", "", "job type: the name of the handler, e.g. email.send")
	f.StringVarP(&payloadArg, "payload", "p", "", "payload as a JSON value; '-' reads it from standard input")
	f.StringVar(&payloadFile, "payload-file", "", "read the payload from a file ('-': standard input)")
	f.Uint32Var(&priority, "priority", 1024, "priority: lower is more urgent")
	f.DurationVar(&delay, "delay", 0, "make the job ready after this long, e.g. 10m")
	f.StringVar(&runAt, "run-at", "", "make the job ready at this RFC 3339 time")
	f.DurationVar(&lease, "lease", 0, "lease of each reservation (default: the queue's)")
	f.IntVar(&maxAttempts, "max-attempts", 0, "attempts before the job is buried, 1 to 1000 (default: the queue's)")
	f.StringVar(&uniqueKey, "unique-key", "", "enqueue nothing while an unfinished job has this key")
	f.StringArrayVar(&meta, "meta", nil, "metadata key=value (repeatable)")
	f.StringVar(&callback, "callback-url", "", "URL told of the job's outcome (signed POST, see docs/events.md)")
	f.IntVar(&count, "count", 1, "enqueue this many copies of the job")
	return cmd
}

// readPayload returns the payload to enqueue: nil, a json.RawMessage or raw bytes.
func (c *cli) readPayload(cmd *cobra.Command, arg, file string) (any, error) {
	switch {
	case cmd.Flags().Changed("payload"):
		data := []byte(arg)
		if arg == "-" {
			var err error
			if data, err = io.ReadAll(c.stdin); err != nil {
				return nil, fmt.Errorf("read the payload from standard input: %w", err)
			}
		}
		if !json.Valid(data) {
			return nil, usageErrorf("--payload is not valid JSON (use --payload-file to send bytes)")
		}
		return json.RawMessage(data), nil
	case cmd.Flags().Changed("payload-file"):
		var data []byte
		var err error
		if file == "-" {
			data, err = io.ReadAll(c.stdin)
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return nil, fmt.Errorf("read the payload: %w", err)
		}
		if json.Valid(data) {
			return json.RawMessage(data), nil
		}
		return data, nil
	}
	return nil, nil
}

func parseMeta(kvs []string) (map[string]string, error) {
	md := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--meta %q: want key=value", kv)
		}
		md[k] = v
	}
	return md, nil
}

// enqueueMany enqueues count copies of job in batches of spool.MaxBatch.
func (c *cli) enqueueMany(cmd *cobra.Command, cl *spool.Client, queue string, job spool.BatchJob, count int) error {
	var (
		ids                  []string
		duplicates, failures int
		firstErr             error
		p                    = newProgress(c.stderr)
		batch                = make([]spool.BatchJob, 0, spool.MaxBatch)
	)
	for done := 0; done < count; {
		n := min(spool.MaxBatch, count-done)
		batch = batch[:0]
		for range n {
			batch = append(batch, job)
		}
		res, err := cl.EnqueueBatch(cmd.Context(), queue, batch)
		if err != nil {
			if done > 0 {
				return fmt.Errorf("after %d of %d jobs: %w", done, count, err)
			}
			return err
		}
		for _, r := range res {
			switch {
			case r.Err != nil:
				failures++
				if firstErr == nil {
					firstErr = r.Err
				}
			case r.Duplicate:
				duplicates++
				ids = append(ids, strconv.FormatUint(r.ID, 10))
			default:
				ids = append(ids, strconv.FormatUint(r.ID, 10))
			}
		}
		done += n
		p.update("enqueued", done-failures, failures, count)
	}
	enqueued := count - duplicates - failures
	if c.json {
		if err := c.printJSON(map[string]any{"enqueued": enqueued, "duplicates": duplicates, "failed": failures, "ids": ids}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "enqueued %s to %s (%d duplicates, %d failed)\n", nJobs(enqueued), queue, duplicates, failures)
	}
	if failures > 0 {
		return fmt.Errorf("%d of %s failed, the first with: %w", failures, nJobs(count), firstErr)
	}
	return nil
}

func (c *cli) jobCmd() *cobra.Command {
	var history bool
	cmd := &cobra.Command{
		Use:   "job ID",
		Short: "Show a job by id (--history: its timeline of events)",
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
			if history {
				return c.printHistory(cmd, cl, id)
			}
			job, err := cl.Job(cmd.Context(), id)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(job)
			}
			return c.printJob(job)
		},
	}
	cmd.Flags().BoolVar(&history, "history", false, "print the job's lifecycle events instead")
	return cmd
}

func parseID(s string) (uint64, error) {
	id, err := spool.ParseJobID(s)
	if err != nil {
		return 0, usageErrorf("job id %q: want an unsigned decimal integer", s)
	}
	return id, nil
}

// printJob prints a job's fields, one a line.
func (c *cli) printJob(j *spool.Job) error {
	now := time.Now()
	tw := c.table()
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("id", strconv.FormatUint(j.ID, 10))
	row("queue", j.Queue)
	row("type", dash(j.Type))
	row("state", string(j.State))
	row("priority", strconv.FormatUint(uint64(j.Priority), 10))
	row("attempts", fmt.Sprintf("%d of %d", j.Attempts, j.MaxAttempts))
	row("lease", fmtDuration(j.Lease))
	if j.UniqueKey != "" {
		row("unique key", j.UniqueKey)
	}
	if len(j.Metadata) > 0 {
		keys := make([]string, 0, len(j.Metadata))
		for k := range j.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		pairs := make([]string, len(keys))
		for i, k := range keys {
			pairs[i] = k + "=" + j.Metadata[k]
		}
		row("metadata", strings.Join(pairs, " "))
	}
	row("created", fmtTime(j.CreatedAt, now))
	if !j.RunAt.IsZero() {
		row("run at", fmtTime(j.RunAt, now))
	}
	if !j.ReservedAt.IsZero() {
		row("reserved", fmtTime(j.ReservedAt, now))
	}
	if !j.LeaseExpiresAt.IsZero() && j.State == spool.StateReserved {
		row("lease expires", fmtTime(j.LeaseExpiresAt, now))
	}
	if !j.FinishedAt.IsZero() {
		row("finished", fmtTime(j.FinishedAt, now))
	}
	if j.LastError != "" {
		row("last error", j.LastError)
	}
	row("counts", fmt.Sprintf("releases %d, buries %d, kicks %d, timeouts %d", j.Releases, j.Buries, j.Kicks, j.Timeouts))
	if j.Payload != nil {
		row("payload", fmtPayload(j.Payload, 0))
	}
	if len(j.Result) > 0 {
		row("result", string(j.Result))
	}
	return tw.Flush()
}

// fmtPayload prints a payload: JSON or text as it is, other bytes in base64; limit > 0
// shortens it to about that many characters, and keeps it on one line.
func fmtPayload(p []byte, limit int) string {
	var s string
	switch {
	case json.Valid(p), utf8.Valid(p) && !strings.ContainsRune(string(p), 0):
		s = string(p)
	default:
		s = "base64:" + base64.StdEncoding.EncodeToString(p)
	}
	if limit > 0 {
		s = strings.Join(strings.Fields(s), " ")
		if r := []rune(s); len(r) > limit {
			s = string(r[:limit-1]) + "…"
		}
	}
	return s
}

func (c *cli) deleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID...",
		Aliases: []string{"cancel"},
		Short:   "Cancel jobs by id",
		Long:    "Cancel unfinished jobs. A reserved job's holder loses its lease.",
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return c.eachJob(cmd, a, "cancelled", func(ctx context.Context, cl *spool.Client, id uint64) (*spool.Job, error) {
				return cl.Cancel(ctx, id)
			})
		},
	}
}

// eachJob applies op to the jobs of the given ids, one by one, with progress for several; a
// failure of one of several is reported and the others go on. done is the past tense of the
// action, for the report ("cancelled job 12").
func (c *cli) eachJob(cmd *cobra.Command, raw []string, done string, op func(context.Context, *spool.Client, uint64) (*spool.Job, error)) error {
	ids := make([]uint64, len(raw))
	for i, s := range raw {
		id, err := parseID(s)
		if err != nil {
			return err
		}
		ids[i] = id
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var (
		jobs   []*spool.Job
		failed int
		p      = newProgress(c.stderr)
	)
	for _, id := range ids {
		job, err := op(cmd.Context(), cl, id)
		switch {
		case err != nil && (len(ids) == 1 || cmd.Context().Err() != nil):
			return err
		case err != nil:
			failed++
			c.printError(err)
		default:
			jobs = append(jobs, job)
			if !c.json {
				fmt.Fprintf(c.stdout, "%s job %d (%s)\n", done, job.ID, job.State)
			}
		}
		if len(ids) > 1 {
			p.update(done, len(jobs), failed, len(ids))
		}
	}
	if c.json {
		if err := c.printJSON(map[string]any{"jobs": jobs}); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d jobs were not %s", failed, len(ids), done)
	}
	return nil
}

func (c *cli) peekCmd() *cobra.Command {
	var (
		state, cursor string
		limit         int
	)
	cmd := &cobra.Command{
		Use:   "peek QUEUE",
		Short: "List a queue's jobs in one state, oldest first",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			switch spool.State(state) {
			case spool.StateReady, spool.StateDelayed, spool.StateBuried:
			default:
				return usageErrorf("--state %q: want ready, delayed or buried", state)
			}
			if limit < 1 || limit > 1000 {
				return usageErrorf("--limit %d: want 1 to 1000", limit)
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			page, err := cl.ListJobs(cmd.Context(), a[0], spool.State(state), limit, cursor)
			if err != nil {
				return err
			}
			if c.json {
				out := map[string]any{"jobs": page.Jobs}
				if page.NextCursor != "" {
					out["next_cursor"] = page.NextCursor
				}
				return c.printJSON(out)
			}
			if len(page.Jobs) == 0 {
				fmt.Fprintf(c.stderr, "no %s jobs in %s\n", state, a[0])
				return nil
			}
			now := time.Now()
			tw := c.table()
			fmt.Fprintln(tw, "ID\tTYPE\tPRIORITY\tATTEMPTS\tCREATED\tRUN AT\tLAST ERROR\tPAYLOAD")
			for _, j := range page.Jobs {
				runAt := "-"
				if j.State == spool.StateDelayed {
					runAt = fmtAge(j.RunAt, now)
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d/%d\t%s\t%s\t%s\t%s\n", j.ID, dash(j.Type), j.Priority,
					j.Attempts, j.MaxAttempts, fmtAge(j.CreatedAt, now), runAt,
					dash(fmtPayload([]byte(j.LastError), 40)), dash(fmtPayload(j.Payload, 50)))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.NextCursor != "" {
				fmt.Fprintf(c.stderr, "more: spool peek %s --state %s --limit %d --cursor %s\n", a[0], state, limit, page.NextCursor)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "ready", "state of the jobs: ready, delayed or buried")
	f.IntVar(&limit, "limit", 20, "most jobs to list (1 to 1000)")
	f.StringVar(&cursor, "cursor", "", "continue a previous listing")
	return cmd
}

// maxMaxAttempts is the server's limit of max attempts (engine.MaxMaxAttempts).
const maxMaxAttempts = 1000

// checkMaxAttempts refuses a --max-attempts the server would refuse, 0 included: the flag
// left out means the queue's default, but an explicit 0 is a mistake.
func checkMaxAttempts(n int) error {
	if n < 1 || n > maxMaxAttempts {
		return usageErrorf("--max-attempts %d: want 1 to %d", n, maxMaxAttempts)
	}
	return nil
}

// nJobs says "1 job", "2 jobs".
func nJobs(n int) string {
	if n == 1 {
		return "1 job"
	}
	return fmt.Sprintf("%d jobs", n)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
