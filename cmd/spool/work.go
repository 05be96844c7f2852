package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spoolq/spool"
)

// Limits of what 'spool work' keeps of a command's output.
const (
	workStdoutTail = 60 << 10 // the result: at most 64 KiB of JSON on the server
	workStderrTail = 3 << 10  // the error: at most 4 KiB on the server
	workKillGrace  = time.Second
)

func (c *cli) workCmd() *cobra.Command {
	var (
		queues          []string
		strict          bool
		concurrency     int
		jobTimeout      time.Duration
		shutdownTimeout time.Duration
		name            string
		logLevel        string
		logFormat       string
	)
	cmd := &cobra.Command{
		Use:   "work --queue QUEUE[:WEIGHT]... [flags] [--] COMMAND [ARG...]",
		Short: "Run a command for each job of some queues",
		Long: `Take jobs from the queues and run COMMAND for each one, so that any program or
script can process jobs.

The command gets the job's payload on standard input and the job in its environment:
SPOOL_JOB_ID, SPOOL_JOB_TYPE, SPOOL_JOB_QUEUE, SPOOL_JOB_ATTEMPT, SPOOL_JOB_MAX_ATTEMPTS,
SPOOL_JOB_PRIORITY, SPOOL_JOB_METADATA (the metadata as a JSON object),
SPOOL_JOB_META_<KEY> for each metadata entry (the key upper-cased, other characters than
letters and digits as '_') and, when the job has a timeout, SPOOL_JOB_DEADLINE (RFC 3339).

Exit status 0 acknowledges the job with the result {"output", "exit_code", "duration_ms",
"host"}: output is the end of standard output (up to 60 KiB), as JSON when it is JSON, else
as a JSON string. Any other exit status, or a signal, fails the attempt (retried after the
queue's backoff, buried once its attempts are used up) with the status, the host, the run
time and the end of standard error as the job's error.

The job's lease is extended while the command runs. At the job's timeout (its own, set at
enqueue, else --timeout) the command is sent SIGTERM, then SIGKILL a second later, and the
attempt fails. The command runs in a process group of its own.

On SIGINT or SIGTERM the worker takes no more jobs and waits up to --shutdown-timeout
for the running commands, then terminates them and releases their jobs back to their
queues; a second signal does that at once.

--queue may be repeated; QUEUE:WEIGHT shares the worker among the queues by weight
(default 1 each), and --strict takes them in the order given instead.`,
		Example: `  spool work --queue email -- ./send-email
  spool work -q critical:6 -q default:3 -q low --concurrency 8 --timeout 10m -- python3 job.py
  spool work -q thumbnails -- sh -c 'convert - -resize 128x128 png:- | upload "$SPOOL_JOB_ID"'`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			logger, err := newLogger(c.stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			opts := spool.WorkerOptions{
				StrictOrder:     strict,
				Concurrency:     concurrency,
				JobTimeout:      jobTimeout,
				ShutdownTimeout: shutdownTimeout,
				Name:            name,
				Logger:          logger,
			}
			if opts.Queues, opts.Weights, err = parseWorkQueues(queues); err != nil {
				return err
			}
			if concurrency < 1 {
				return usageErrorf("--concurrency %d: want at least 1", concurrency)
			}
			if jobTimeout < 0 || shutdownTimeout <= 0 {
				return usageErrorf("--timeout must not be negative and --shutdown-timeout must be positive")
			}
			if _, err := exec.LookPath(argv[0]); err != nil {
				return usageErrorf("command %q: %v", argv[0], err)
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			// A name the server refuses would end the worker at its first reservation: ask
			// the server now. A missing queue is fine (it may come later), and so is a
			// server not up yet.
			for _, q := range opts.Queues {
				if _, err := cl.Queue(cmd.Context(), q); errors.Is(err, spool.ErrInvalidArgument) {
					return &usageError{fmt.Errorf("--queue %q: %w", q, err)}
				}
			}
			w, err := spool.NewWorker(cl, opts)
			if err != nil {
				return &usageError{err}
			}
			w.Use(spool.Logging(logger))
			host, _ := os.Hostname()
			w.HandleDefault(&commandHandler{argv: argv, host: host})
			return w.RunUntilSignal(cmd.Context())
		},
	}
	// Everything after the command's name belongs to the command.
	cmd.Flags().SetInterspersed(false)
	f := cmd.Flags()
	f.StringArrayVarP(&queues, "queue", "q", nil, "queue to take jobs from, QUEUE or QUEUE:WEIGHT (repeatable; at least one)")
	f.BoolVar(&strict, "strict", false, "take from the queues strictly in the order given, instead of by weight")
	f.IntVarP(&concurrency, "concurrency", "c", 1, "commands run at once")
	f.DurationVar(&jobTimeout, "timeout", 0, "terminate a command running longer than this and fail its attempt, unless the job has its own timeout (0: no limit)")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGINT or SIGTERM, how long running commands may finish before they are terminated and their jobs released")
	f.StringVar(&name, "name", "", "worker name shown in the jobs' status (default hostname/pid)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// parseWorkQueues reads the --queue values: QUEUE or QUEUE:WEIGHT (queue names never
// contain ':').
func parseWorkQueues(raw []string) ([]string, map[string]int, error) {
	if len(raw) == 0 {
		return nil, nil, usageErrorf("no queue: give at least one --queue")
	}
	var queues []string
	weights := map[string]int{}
	for _, r := range raw {
		for _, item := range strings.Split(r, ",") {
			name, w, hasWeight := strings.Cut(strings.TrimSpace(item), ":")
			if name == "" {
				return nil, nil, usageErrorf("--queue %q: empty queue name", r)
			}
			if hasWeight {
				n, err := strconv.Atoi(w)
				if err != nil || n < 1 {
					return nil, nil, usageErrorf("--queue %q: weight %q: want a whole number of at least 1", r, w)
				}
				weights[name] = n
			}
			queues = append(queues, name)
		}
	}
	return queues, weights, nil
}

// commandHandler runs a command for each job.
type commandHandler struct {
	argv []string
	host string // recorded with each job's outcome
}

func (h *commandHandler) Work(ctx context.Context, job *spool.Job) error {
	cmd := exec.Command(h.argv[0], h.argv[1:]...)
	cmd.Stdin = bytes.NewReader(job.Payload)
	cmd.Env = append(os.Environ(), jobEnv(job)...)
	if deadline, ok := ctx.Deadline(); ok {
		cmd.Env = append(cmd.Env, "SPOOL_JOB_DEADLINE="+deadline.UTC().Format(time.RFC3339Nano))
	}
	stdout := &tailBuffer{max: workStdoutTail}
	stderr := &tailBuffer{max: workStderrTail}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	setProcessGroup(cmd)
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", h.argv[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var err error
	select {
	case err = <-exited:
	case <-ctx.Done():
		// Timeout, shutdown or lost lease: SIGTERM, then SIGKILL after a grace.
		signalGroup(cmd, false)
		select {
		case err = <-exited:
		case <-time.After(workKillGrace):
			signalGroup(cmd, true)
			err = <-exited
		}
		if err == nil {
			err = errors.New("exited on SIGTERM with status 0")
		}
		// The worker tells why (timeout, shutdown) from the context.
		return fmt.Errorf("%s: %v%s%s", h.argv[0], err, h.where(started), stderrSuffix(stderr))
	}
	if err != nil {
		return fmt.Errorf("%s: %v%s%s", h.argv[0], err, h.where(started), stderrSuffix(stderr))
	}
	return spool.SetResult(ctx, commandStatus{Output: commandResult(stdout.Bytes()), ExitCode: 0,
		DurationMS: time.Since(started).Milliseconds(), Host: h.host})
}

// commandStatus is the result of a job whose command succeeded, as a container task's
// status: its output, exit code, run time and host.
type commandStatus struct {
	Output     json.RawMessage `json:"output,omitempty"`
	ExitCode   int             `json:"exit_code"`
	DurationMS int64           `json:"duration_ms"`
	Host       string          `json:"host"`
}

// where tells, in a failed attempt's error, where the command ran and for how long (the
// error itself has the exit status or signal).
func (h *commandHandler) where(started time.Time) string {
	return fmt.Sprintf(" (host %s, after %s)", h.host, time.Since(started).Round(time.Millisecond))
}

func stderrSuffix(b *tailBuffer) string {
	s := strings.TrimSpace(string(b.Bytes()))
	if s == "" {
		return ""
	}
	if b.cut {
		s = "..." + s
	}
	return "\n" + s
}

// commandResult turns a command's standard output into the job's result: the output
// itself when it is JSON, else the output as a JSON string; nil when it is empty.
func commandResult(out []byte) json.RawMessage {
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 {
		return nil
	}
	if json.Valid(trimmed) {
		return trimmed
	}
	for {
		data, _ := json.Marshal(string(trimmed))
		if len(data) <= workStdoutTail {
			return data
		}
		// Escapes made it longer than the limit: keep less of the end.
		trimmed = trimmed[len(trimmed)-len(trimmed)/2:]
	}
}

// jobEnv describes the job to the command.
func jobEnv(job *spool.Job) []string {
	env := []string{
		"SPOOL_JOB_ID=" + strconv.FormatUint(job.ID, 10),
		"SPOOL_JOB_TYPE=" + job.Type,
		"SPOOL_JOB_QUEUE=" + job.Queue,
		"SPOOL_JOB_ATTEMPT=" + strconv.Itoa(job.Attempts),
		"SPOOL_JOB_MAX_ATTEMPTS=" + strconv.Itoa(job.MaxAttempts),
		"SPOOL_JOB_PRIORITY=" + strconv.FormatUint(uint64(job.Priority), 10),
	}
	md := job.Metadata
	if md == nil {
		md = map[string]string{}
	}
	data, _ := json.Marshal(md)
	env = append(env, "SPOOL_JOB_METADATA="+string(data))
	for k, v := range md {
		env = append(env, "SPOOL_JOB_META_"+envKey(k)+"="+v)
	}
	return env
}

// envKey makes a metadata key a portable environment variable name part.
func envKey(k string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		case 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
			return r
		}
		return '_'
	}, k)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
	cut bool // bytes were dropped from the front
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		b.cut = true
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.cut = true
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

// Bytes returns the kept bytes.
func (b *tailBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}
