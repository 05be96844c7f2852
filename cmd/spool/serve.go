package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spoolq/spool/httpapi"
	"github.com/spoolq/spool/server"
)

func (c *cli) serveCmd() *cobra.Command {
	var (
		cfg       server.Config
		logLevel  string
		logFormat string
		withUI    bool
		// adminTokenFile: --admin-token-file, else $SPOOL_ADMIN_TOKEN (never a flag default).
		adminTokenFile string
		sqsKey         string
		sqsSecret      string
		inflightMiB    int64
		minFreeMiB     int64
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a spool server",
		Long: `Run a spool server until interrupted (SIGINT or SIGTERM), then shut down gracefully.

By default the server embeds its JetStream engine, storing under --data. With --nats it
uses an existing NATS JetStream server or cluster instead.

Durability: an acknowledged enqueue survives a crash of the process in every mode (the
data is in the OS page cache). To survive a power loss, use --fsync always (slow: every
write is synced) or a replicated cluster.

Cluster: three (or five) nodes started with the same --cluster-name and --peers form one
JetStream cluster; queues are replicated on three nodes by default, any node serves any
request, and the cluster takes writes while a majority of its nodes is up:

  spool serve --cluster-name prod --node n1 --cluster 0.0.0.0:6222 \
    --peers n1:6222,n2:6222,n3:6222 --http 0.0.0.0:7420 --data /var/lib/spool`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, n := range clientOnlyFlags {
				if f := cmd.Flag(n); f != nil && f.Changed {
					return usageErrorf("--%s is for the commands that talk to a server, not for serve (see --http)", n)
				}
			}
			logger, err := newLogger(c.stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			if err := checkFsync(cfg.Fsync); err != nil {
				return err
			}
			if err := checkCluster(cmd, &cfg); err != nil {
				return err
			}
			if cfg.Replicas < 0 || cfg.MaxPayload < 0 || cfg.BeanstalkMaxJobSize < 0 || cfg.Retention < 0 || cfg.EventsMaxAge < 0 || cfg.EventsMaxBytes < 0 {
				return usageErrorf("--replicas, --max-payload, --beanstalkd-max-job-size and --retention must not be negative")
			}
			if cfg.Retention%time.Second != 0 {
				// JetStream's per-message TTL counts whole seconds.
				return usageErrorf("--retention must be whole seconds (0: keep no finished job)")
			}
			if cfg.Retention == 0 {
				cfg.Retention = server.NoRetention
			}
			cfg.NoUI = !withUI
			if adminTokenFile != "" {
				if cfg.AdminToken, err = server.ReadAdminToken(adminTokenFile); err != nil {
					return usageErrorf("%v", err)
				}
			} else {
				cfg.AdminToken = c.getenv("SPOOL_ADMIN_TOKEN")
			}
			if sqsSecret == "" {
				sqsSecret = os.Getenv("SPOOL_SQS_SECRET_KEY")
			}
			if (sqsKey == "") != (sqsSecret == "") {
				return usageErrorf("--sqs-access-key and --sqs-secret-key (or SPOOL_SQS_SECRET_KEY) go together")
			}
			if sqsKey != "" {
				cfg.SQSCredentials = map[string]string{sqsKey: sqsSecret}
			}
			if cfg.HTTPReadHeaderTimeout < 0 || cfg.HTTPReadTimeout < 0 || cfg.HTTPWriteTimeout < 0 || cfg.HTTPIdleTimeout < 0 ||
				cfg.BeanstalkTimeout < 0 || cfg.HTTPMaxConns < 0 || cfg.BeanstalkMaxConns < 0 {
				return usageErrorf("the --http-*-timeout, --http-max-conns, --beanstalkd-timeout and --beanstalkd-max-conns flags must not be negative")
			}
			if minFreeMiB < 0 {
				return usageErrorf("--min-free must not be negative")
			}
			cfg.MinFree = minFreeMiB << 20
			if inflightMiB < 0 {
				cfg.MaxInflight = -1
			} else {
				cfg.MaxInflight = inflightMiB << 20
			}
			cfg.Logger = logger
			cfg.Version = programVersion()
			err = server.Run(cmd.Context(), cfg)
			if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				return nil // stopped by a signal: a graceful shutdown
			}
			return err
		},
	}
	// The client's global flags do not apply to serve: keep them out of its help.
	cmd.SetHelpFunc(func(cmd *cobra.Command, a []string) {
		for _, n := range clientOnlyFlags {
			if f := cmd.Root().PersistentFlags().Lookup(n); f != nil {
				f.Hidden = true
			}
		}
		cmd.Root().HelpFunc()(cmd, a)
	})
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", "./spool-data", "directory of the embedded engine's data, locked by the server while it runs")
	f.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:7420", "HTTP API listen address (port 0 picks one)")
	f.StringVar(&cfg.BeanstalkAddr, "beanstalkd", "", "beanstalkd protocol listen address, e.g. 127.0.0.1:11300 (empty: off)")
	f.IntVar(&cfg.BeanstalkMaxJobSize, "beanstalkd-max-job-size", 65535, "largest job the beanstalkd front accepts, in bytes (beanstalkd -z)")
	f.StringVar(&cfg.SQSAddr, "sqs", "", "SQS-compatible API listen address, e.g. 127.0.0.1:9324 (empty: off; docs/sqs.md)")
	f.StringVar(&sqsKey, "sqs-access-key", "", "access key id whose SigV4 signatures the SQS API requires (empty: requests are not verified)")
	f.StringVar(&sqsSecret, "sqs-secret-key", "", "secret key of --sqs-access-key (or the environment variable SPOOL_SQS_SECRET_KEY)")
	f.IntVar(&cfg.BeanstalkMaxConns, "beanstalkd-max-conns", server.DefaultBeanstalkMaxConns, "most open beanstalkd connections; a new one over it is sent OUT_OF_MEMORY and closed")
	f.DurationVar(&cfg.BeanstalkTimeout, "beanstalkd-timeout", server.DefaultBeanstalkTimeout, "beanstalkd: longest read of one command and longest write of replies to a client that does not read")
	f.DurationVar(&cfg.HTTPReadHeaderTimeout, "http-read-header-timeout", server.DefaultHTTPReadHeaderTimeout, "HTTP: longest read of a request's header")
	f.DurationVar(&cfg.HTTPReadTimeout, "http-read-timeout", server.DefaultHTTPReadTimeout, "HTTP: longest read of a whole request, header and body")
	f.DurationVar(&cfg.HTTPWriteTimeout, "http-write-timeout", server.DefaultHTTPWriteTimeout, "HTTP: longest handling and answer of a request, after its header (a long poll gets its wait on top)")
	f.DurationVar(&cfg.HTTPIdleTimeout, "http-idle-timeout", server.DefaultHTTPIdleTimeout, "HTTP: close a kept-alive connection idle this long")
	f.IntVar(&cfg.HTTPMaxConns, "http-max-conns", server.DefaultHTTPMaxConns, "most open HTTP connections; a new one over it is answered 503 too_many_connections")
	f.Int64Var(&inflightMiB, "max-inflight", server.DefaultMaxInflight>>20, "memory budget of request bodies in flight, all fronts together, in MiB; over it a request is refused (HTTP 503 overloaded, beanstalkd OUT_OF_MEMORY); -1: no budget")
	f.Int64Var(&minFreeMiB, "min-free", server.DefaultMinFree>>20, "free space (MiB) of the --data filesystem under which new jobs are refused (retryable) and /healthz answers 503, keeping room for acks")
	f.StringVar(&cfg.NATSURL, "nats", "", "URL of an external NATS JetStream server or cluster to use instead of the embedded engine")
	f.StringVar(&cfg.NATSListen, "nats-listen", "", "let the embedded engine accept NATS clients on this address, e.g. 127.0.0.1:4222")
	f.StringVar(&cfg.Fsync, "fsync", "", `sync policy of the embedded engine: "always" (every write), or a period such as "1s" (default: JetStream's)`)
	f.IntVar(&cfg.Replicas, "replicas", 0, "replicas of each new stream, 1 to 5 (default 1 alone, 3 in a cluster); existing streams are never lowered")
	f.StringVar(&cfg.ClusterName, "cluster-name", "", "form a JetStream cluster of spool nodes with this name (see docs/cluster.md)")
	f.StringVar(&cfg.Node, "node", "", "this node's name in the cluster and in lifecycle events: unique, stable across restarts (default: the host name)")
	f.StringVar(&cfg.ClusterListen, "cluster", server.DefaultClusterListen, "address the other nodes' routes connect to")
	f.StringVar(&cfg.ClusterAdvertise, "cluster-advertise", "", "route address told to the other nodes instead of --cluster (containers, NAT)")
	f.StringSliceVar(&cfg.Peers, "peers", nil, "route addresses (host:port, comma-separated) of the cluster's nodes; this node's own may be listed")
	f.StringVar(&cfg.RaftTiming, "raft-timing", "fast", `RAFT timing of the cluster: "fast" (writes resume ~1.2 s after a leader dies) or "nats" (nats-server's: 5-10 s, a quarter of the heartbeats, for many replicated queues in use)`)
	f.IntVar(&cfg.MaxPayload, "max-payload", 1<<20, "largest job payload in bytes")
	f.IntVar(&cfg.MetricsQueues, "metrics-queues", httpapi.DefaultMetricsQueues, "queues with series on /metrics, the first by name (a scrape reads each); -1: none")
	f.DurationVar(&cfg.Retention, "retention", time.Hour, "how long a finished job stays queryable, at least its last lease plus a minute (each kept job costs ~200 bytes of memory); 0 keeps none, so that an ack is one JetStream operation; a queue's own retention overrides it")
	f.DurationVar(&cfg.EventsMaxAge, "events-max-age", 24*time.Hour, "how long lifecycle events are kept (docs/events.md)")
	f.Int64Var(&cfg.EventsMaxBytes, "events-max-bytes", 1<<30, "bound of the lifecycle events stream in bytes; the oldest go first")
	f.BoolVar(&cfg.WebhookDenyPrivate, "webhook-deny-private", false, "refuse webhook deliveries to loopback and private addresses (link-local ones are always refused)")
	f.StringVar(&cfg.SchedulesFile, "schedules", "", "YAML or JSON file of schedules to create or update at start (see docs/schedules.md)")
	f.StringVar(&cfg.PprofAddr, "pprof", "", "serve Go profiles (net/http/pprof) on this address, e.g. 127.0.0.1:6060 (empty: off)")
	f.BoolVar(&withUI, "ui", true, "serve the web dashboard at /ui/ on the HTTP address (--ui=false: off)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (chain) for TLS on the HTTP API, --beanstalkd-tls and --nats-listen; reloaded on SIGHUP and on change")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.TLSClientCA, "tls-client-ca", "", "PEM CA certificates: every TLS listener then requires a client certificate they sign (mutual TLS)")
	f.StringVar(&cfg.BeanstalkTLSAddr, "beanstalkd-tls", "", "beanstalkd protocol listen address over TLS, beside or instead of --beanstalkd (empty: off)")
	f.StringSliceVar(&cfg.BeanstalkAllow, "beanstalkd-allow", nil, "client addresses or CIDR prefixes allowed on the beanstalkd listeners, comma-separated (empty: all)")
	f.StringVar(&adminTokenFile, "admin-token-file", "", "file holding the bootstrap admin token (default $SPOOL_ADMIN_TOKEN); with it, or once an API token exists, requests need a token")
	f.BoolVar(&cfg.AuthMetrics, "auth-metrics", false, "require a token on /metrics, /healthz and /v1/openapi.yaml too")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// checkCluster checks the cluster flags: they need --cluster-name and the embedded engine.
func checkCluster(cmd *cobra.Command, cfg *server.Config) error {
	set := func(n string) bool { return cmd.Flag(n).Changed }
	if cfg.ClusterName == "" {
		for _, n := range []string{"node", "cluster", "cluster-advertise", "peers", "raft-timing"} {
			if set(n) {
				return usageErrorf("--%s needs --cluster-name", n)
			}
		}
		if cfg.Replicas > 1 && cfg.NATSURL == "" {
			return usageErrorf("--replicas %d needs a cluster (--cluster-name, or --nats with a NATS cluster)", cfg.Replicas)
		}
	} else {
		if cfg.NATSURL != "" {
			return usageErrorf("--cluster-name forms a cluster of embedded engines; with --nats the NATS cluster is yours")
		}
		if len(cfg.Peers) == 0 {
			return usageErrorf("--cluster-name needs --peers: the route addresses of the other nodes")
		}
		if cfg.RaftTiming != "fast" && cfg.RaftTiming != "nats" {
			return usageErrorf(`--raft-timing %q: want "fast" or "nats"`, cfg.RaftTiming)
		}
	}
	if cfg.Replicas > 5 {
		return usageErrorf("--replicas %d: at most 5", cfg.Replicas)
	}
	return nil
}

// clientOnlyFlags are the root's flags for the commands that talk to a server.
var clientOnlyFlags = []string{"server", "json", "timeout", "retry-for", "token", "ca-file", "client-cert", "client-key"}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format %q: want text or json", format)
}

func checkFsync(s string) error {
	if s == "" || s == "always" {
		return nil
	}
	if d, err := time.ParseDuration(s); err != nil || d <= 0 {
		return usageErrorf("--fsync %q: want \"always\" or a positive duration such as \"1s\"", s)
	}
	return nil
}
