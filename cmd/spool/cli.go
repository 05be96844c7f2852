package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spoolq/spool"
)

// version is the program's version; release builds set it with
// -ldflags "-X main.version=v1.2.3". Otherwise it comes from the module's build info.
var version string

func programVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// buildInfo is what the binary knows of its build: the module version (or -X main.version),
// and the VCS revision and commit time that 'go build' stamps in a checkout.
type buildInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"` // built from a checkout with uncommitted changes
	Go       string `json:"go"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: programVersion(), Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	return b
}

// String prints the build on one line: "v1.2.0 (rev 81e8027e1a2b, 2026-12-06T08:00:00Z, go1.26.8)".
func (b buildInfo) String() string {
	var parts []string
	if b.Revision != "" {
		rev := b.Revision[:min(len(b.Revision), 12)]
		if b.Modified {
			rev += "+modified"
		}
		parts = append(parts, "rev "+rev)
	}
	if b.Time != "" {
		parts = append(parts, b.Time)
	}
	parts = append(parts, b.Go)
	return fmt.Sprintf("%s (%s)", b.Version, strings.Join(parts, ", "))
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is a mistake in the command line: the program exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// cli holds the streams and global flags of one run of the program.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	server  string
	json    bool
	timeout time.Duration
	// token is --token; $SPOOL_TOKEN when unset (never a flag default: --help shows those).
	token                         string
	caFile, clientCert, clientKey string
	// retryFor bounds the retries of a request while the servers are unavailable.
	retryFor time.Duration
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := c.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	// A flag error can stop the parse before --json is read: look for it in the arguments.
	if !c.json && wantsJSON(args) {
		c.json = true
	}
	if cmd != nil && cmd.Name() == "serve" {
		c.json = false // serve refuses --json: it prints logs, not results
	}
	c.printError(err)
	var ue *usageError
	if errors.As(err, &ue) {
		if cmd != nil && !c.json {
			fmt.Fprintf(stderr, "usage: %s\nRun '%s --help' for more.\n", cmd.UseLine(), cmd.CommandPath())
		}
		return exitUsage
	}
	return exitError
}

// wantsJSON reports whether --json is among the program's own arguments.
func wantsJSON(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--json", "--json=true":
			return true
		}
	}
	return false
}

// printError writes err on stderr: "error: ..." as text, or with --json in the API's error
// form, {"error": {"code": ..., "message": ...}}, with the server's code when the server
// answered with one.
func (c *cli) printError(err error) {
	if !c.json {
		fmt.Fprintf(c.stderr, "error: %s\n", err)
		return
	}
	e := errorJSON{Code: "error", Message: err.Error()}
	var (
		api *spool.APIError
		ue  *usageError
	)
	switch {
	case errors.As(err, &api) && api.Code != "":
		e.Code, e.Field = api.Code, api.Field
	case errors.As(err, &ue):
		e.Code = spool.CodeInvalidArgument
	case errors.Is(err, spool.ErrUnavailable):
		e.Code = spool.CodeUnavailable
	}
	enc := json.NewEncoder(c.stderr)
	enc.SetEscapeHTML(false)
	enc.Encode(map[string]errorJSON{"error": e})
}

// errorJSON is an error as the HTTP API writes it.
type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "spool",
		Short: "spool is a background-job server",
		Long: `spool is a background-job server: durable named queues, jobs with leases and
heartbeats, retries with backoff, delays, buried jobs and kicks, pause and resume.

Run a server with 'spool serve'. The other commands talk to a server over its HTTP API:
--server (or $SPOOL_SERVER) names it, several comma-separated URLs fail over. With --json,
errors too are JSON: the API's {"error": {"code", "message"}} on stderr.`,
		Args:          cobra.ArbitraryArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
				if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
				}
				return usageErrorf("%s", msg)
			}
			return cmd.Help()
		},
	}
	root.SuggestionsMinimumDistance = 2
	root.Version = readBuildInfo().String()
	root.Flags().BoolP("version", "v", false, "print the version of this program")
	root.SetVersionTemplate("spool {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })

	defServer := c.getenv("SPOOL_SERVER")
	if defServer == "" {
		defServer = spool.DefaultURL
	}
	pf := root.PersistentFlags()
	pf.StringVar(&c.server, "server", defServer, "server base URL, or several comma-separated for failover ($SPOOL_SERVER)")
	pf.BoolVar(&c.json, "json", false, "print the result as JSON (the API's format) for scripts")
	pf.DurationVar(&c.timeout, "timeout", spool.DefaultTimeout, "bound of each HTTP request")
	pf.StringVar(&c.token, "token", "", "API token for servers with authentication (default $SPOOL_TOKEN)")
	pf.StringVar(&c.caFile, "ca-file", c.getenv("SPOOL_CA_FILE"), "PEM file of the CA that signs the server's certificate, for https:// servers ($SPOOL_CA_FILE; default: the system's)")
	pf.StringVar(&c.clientCert, "client-cert", c.getenv("SPOOL_CLIENT_CERT"), "PEM client certificate for servers with mutual TLS ($SPOOL_CLIENT_CERT)")
	pf.StringVar(&c.clientKey, "client-key", c.getenv("SPOOL_CLIENT_KEY"), "PEM key of --client-cert ($SPOOL_CLIENT_KEY)")
	pf.DurationVar(&c.retryFor, "retry-for", spool.DefaultRetryFor, "how long to keep trying while every server answers 503 unavailable or cannot be reached (0: once)")

	root.AddCommand(
		c.serveCmd(),
		c.enqueueCmd(),
		c.jobCmd(),
		c.deleteCmd(),
		c.peekCmd(),
		c.queuesCmd(),
		c.queueCmd(),
		c.pauseCmd(),
		c.resumeCmd(),
		c.kickCmd(),
		c.purgeCmd(),
		c.statsCmd(),
		c.clusterCmd(),
		c.cronCmd(),
		c.tokenCmd(),
		c.eventsCmd(),
		c.hookCmd(),
		c.workCmd(),
		c.importCmd(),
		c.versionCmd(),
	)
	return root
}

// args wraps a positional-argument check so that its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

// exclusive fails with a usage error when more than one of the flags is set.
func exclusive(cmd *cobra.Command, names ...string) error {
	var set []string
	for _, n := range names {
		if cmd.Flags().Changed(n) {
			set = append(set, "--"+n)
		}
	}
	if len(set) > 1 {
		return usageErrorf("%s cannot be used together", strings.Join(set, " and "))
	}
	return nil
}

func (c *cli) client() (*spool.Client, error) {
	opts := []spool.ClientOption{spool.WithTimeout(c.timeout), spool.WithRetryFor(c.retryFor), spool.WithUserAgent("spool-cli/" + programVersion())}
	token := c.token
	if token == "" {
		token = c.getenv("SPOOL_TOKEN")
	}
	if token != "" {
		opts = append(opts, spool.WithToken(token))
	}
	if c.caFile != "" || c.clientCert != "" || c.clientKey != "" {
		conf, err := spool.TLSConfig(c.caFile, c.clientCert, c.clientKey)
		if err != nil {
			return nil, &usageError{err}
		}
		opts = append(opts, spool.WithTLSConfig(conf))
	}
	cl, err := spool.NewClient(c.server, opts...)
	if err != nil {
		return nil, &usageError{err}
	}
	return cl, nil
}

// printJSON writes v as indented JSON on stdout.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table returns a writer that aligns tab-separated columns; Flush it.
func (c *cli) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
}

// confirm asks a yes/no question on stderr and reads the answer from stdin.
func (c *cli) confirm(question string) bool {
	fmt.Fprintf(c.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(c.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

// progress reports the advance of a bulk action on stderr: in place on a terminal, else
// a line at most every second and at the end.
type progress struct {
	w        io.Writer
	terminal bool
	last     time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

// update reports ok successes and failed failures out of total: "cancelled 2/3" counts only
// what succeeded, with ", 1 failed" once something failed. The last line comes once all
// are done.
func (p *progress) update(verb string, ok, failed, total int) {
	final := ok+failed >= total
	line := fmt.Sprintf("%s %d/%d", verb, ok, total)
	if failed > 0 {
		line += fmt.Sprintf(", %d failed", failed)
	}
	switch {
	case p.terminal:
		fmt.Fprintf(p.w, "\r%s", line)
		if final {
			fmt.Fprintln(p.w)
		}
	case final || time.Since(p.last) >= time.Second:
		fmt.Fprintln(p.w, line)
		p.last = time.Now()
	}
}

// fmtDuration prints a duration without zero units: "1h", "1h30m", "2.5s"; "-" for 0.
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// fmtAge prints how long ago t was, rounded for reading; "-" for the zero time.
func fmtAge(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + fmtSpan(-d)
	default:
		return fmtSpan(d) + " ago"
	}
}

// fmtSpan prints a span of time for reading, with less precision the longer it is: "2.5s",
// "12m3s", "5h20m", then days and hours ("25d18h") from two days on; "-" for 0.
func fmtSpan(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d < time.Hour:
		return fmtDuration(roundDuration(d))
	case d < 2*day:
		return fmtDuration(d.Round(time.Minute))
	}
	d = d.Round(time.Hour)
	days, hours := d/day, d%day/time.Hour
	if hours == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, hours)
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}

// fmtTime prints a time in the local zone with its age; "-" for the zero time.
func fmtTime(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", t.Local().Format(time.RFC3339), fmtAge(t, now))
}
