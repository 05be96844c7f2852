package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/beanstalk"
	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/httpapi"
	"github.com/spoolq/spool/internal/budget"
	"github.com/spoolq/spool/internal/connlimit"
	"github.com/spoolq/spool/internal/natsd"
	"github.com/spoolq/spool/internal/tlsconf"
	"github.com/spoolq/spool/ui"
)

// Run starts a spool node and serves until ctx is cancelled, then shuts down gracefully:
// it stops accepting requests, lets in-flight ones finish (long polls end at once), closes
// the engine and flushes the embedded JetStream server to disk.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	log := cfg.Logger

	var ns *natsserver.Server
	var guard *natsd.Guard
	var nc *nats.Conn
	var err error
	addrs := Addrs{}
	if cfg.NATSURL == "" {
		// Before anything else: a second server on the same data folder fails here, at
		// once, instead of running a second JetStream store over the same files.
		unlock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return err
		}
		defer unlock()
	}
	// security: TLS files (reloaded on change), the beanstalkd allow-list
	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	tlsr, err := openTLS(tctx, cfg)
	if err != nil {
		return err
	}
	allow, err := parseAllow(cfg.BeanstalkAllow)
	if err != nil {
		return err
	}
	// end security
	// The listeners are bound before the engine opens, so that a busy port fails at once
	// rather than after the store's recovery; requests wait in the backlog until served.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	defer ln.Close()
	var bln net.Listener
	if cfg.BeanstalkAddr != "" {
		if bln, err = net.Listen("tcp", cfg.BeanstalkAddr); err != nil {
			return fmt.Errorf("beanstalkd listen: %w", err)
		}
		defer bln.Close()
	}
	var btln net.Listener
	if cfg.BeanstalkTLSAddr != "" {
		if btln, err = net.Listen("tcp", cfg.BeanstalkTLSAddr); err != nil {
			return fmt.Errorf("beanstalkd TLS listen: %w", err)
		}
		defer btln.Close()
	}
	// SQS-compatible front: bound now, served once the engine is open.
	var sqsLn net.Listener
	if cfg.SQSAddr != "" {
		if sqsLn, err = net.Listen("tcp", cfg.SQSAddr); err != nil {
			return fmt.Errorf("sqs listen: %w", err)
		}
		defer sqsLn.Close()
	}
	if cfg.NATSURL != "" {
		nopts := []nats.Option{nats.Name("spool"), nats.MaxReconnects(-1)}
		if tlsr != nil && strings.HasPrefix(cfg.NATSURL, "tls://") {
			nopts = append(nopts, nats.Secure(tlsr.ClientConfig()))
		}
		nc, err = nats.Connect(cfg.NATSURL, append(nopts,
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "err", err) }),
			nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrl()) }))...)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", cfg.NATSURL, err)
		}
		log.Info("using external NATS", "url", nc.ConnectedUrl())
	} else {
		// The guard reports a full or failing disk and recovers the store once space returns.
		guard = natsd.NewGuard(cfg.DataDir, cfg.MinFree, log)
		nopts := natsd.Options{StoreDir: cfg.DataDir, Listen: cfg.NATSListen, Fsync: cfg.Fsync, Logger: log, Guard: guard}
		if tlsr != nil {
			nopts.TLS = tlsr.ServerConfig()
		}
		if cfg.ClusterName != "" {
			rt := cfg.RouteTLS
			if rt == nil && tlsr != nil {
				// The node's certificate on both ends of each route, verified by the CA.
				if rt, err = tlsr.RouteConfig(); err != nil {
					return fmt.Errorf("cluster routes: %w", err)
				}
			}
			nopts.Cluster = &natsd.Cluster{
				Name: cfg.ClusterName, Node: cfg.Node, Listen: cfg.ClusterListen,
				Advertise: cfg.ClusterAdvertise, Peers: cfg.Peers, TLS: rt, RaftTiming: cfg.RaftTiming,
			}
		}
		ns, err = natsd.Start(ctx, nopts)
		if err != nil {
			return err
		}
		defer func() {
			guard.Close()
			ns.Shutdown()
			ns.WaitForShutdown()
			log.Info("engine stopped")
		}()
		if cfg.NATSListen != "" {
			addrs.NATS = ns.ClientURL()
		}
		nc, err = natsd.Connect(ns, "spool")
		if err != nil {
			return err
		}
		log.Info("embedded engine started", "data", cfg.DataDir, "fsync", fsyncName(cfg.Fsync), "nats", addrs.NATS)
		if cfg.ClusterName != "" {
			addrs.Cluster = clusterAddr(ns)
			log.Info("cluster node", "cluster", cfg.ClusterName, "node", cfg.Node, "routes", addrs.Cluster, "peers", cfg.Peers, "replicas", cfg.Replicas)
			// However long the other nodes take to come up: without a majority the
			// cluster takes no writes.
			if err := natsd.WaitJetStream(ctx, ns, log); err != nil {
				return err
			}
			log.Info("cluster has a meta leader", "leader", natsd.MetaLeader(ns))
		}
	}
	defer nc.Close()

	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	var storeErr func() error
	if guard != nil {
		storeErr = guard.Err
	}
	eng, err := engine.Open(openCtx, nc, engine.Config{
		Replicas: cfg.Replicas, Retention: cfg.Retention, MaxPayload: cfg.MaxPayload, Logger: log, StoreErr: storeErr,
		Node: cfg.Node, EventsMaxAge: cfg.EventsMaxAge, EventsMaxBytes: cfg.EventsMaxBytes,
		Peers: peerCount(ns),
	})
	cancel()
	if err != nil {
		return err
	}
	defer eng.Close()

	// schedules: every node runs the scheduler; it stops before the engine closes
	sched, err := startSchedules(ctx, nc, eng, cfg)
	if err != nil {
		return err
	}
	defer sched.Close()
	// end schedules

	// webhooks: every node dispatches and delivers; they stop before the engine closes
	hooks, err := startWebhooks(ctx, nc, eng, cfg)
	if err != nil {
		return err
	}
	defer hooks.Close()
	// end webhooks

	if cfg.PprofAddr != "" {
		stop, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	authSvc, err := openAuth(ctx, nc, cfg)
	if err != nil {
		return err
	}
	defer authSvc.Close()
	warnExposure(log, cfg, tlsr != nil, authSvc.Enabled())

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	cluster := &clusterView{name: cfg.ClusterName, ns: ns, js: js}
	// One memory budget for the request bodies of every front (docs/limits.md).
	inflight := budget.New(cfg.MaxInflight)
	api := httpapi.New(eng, httpapi.Options{MaxPayload: cfg.MaxPayload, Logger: log, Version: cfg.Version, Schedules: sched,
		MetricsQueues: cfg.MetricsQueues, Auth: authSvc, ProtectMetrics: cfg.AuthMetrics, Cluster: cluster,
		Budget: inflight, WriteTimeout: cfg.HTTPWriteTimeout, StoreErr: storeErr, Webhooks: hooks})
	var handler http.Handler = api
	if !cfg.NoUI {
		handler = ui.Mount(api, ui.Options{Version: cfg.Version}) // the dashboard, at /ui/
	}
	addrs.HTTP = ln.Addr().String()
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	scheme := "http://"
	// Connections over the cap are refused before TLS (a TLS client reads a failed handshake).
	hln := connlimit.NewListener(ln, cfg.HTTPMaxConns, httpapi.ConnRefusal(cfg.HTTPMaxConns))
	if tlsr != nil {
		// The handshake runs in the connection's goroutine, bounded by ReadHeaderTimeout.
		srv.TLSConfig = tlsr.ServerConfig()
		scheme = "https://"
		go func() { errc <- srv.ServeTLS(hln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(hln) }()
	}

	// beanstalkd protocol front: on when cfg.BeanstalkAddr is set.
	var bs *beanstalk.Server
	bserr := make(chan error, 1)
	if bln != nil || btln != nil {
		// A job the engine would refuse is too big for the front too.
		bs = beanstalk.New(eng, beanstalk.Options{MaxJobSize: min(cfg.BeanstalkMaxJobSize, cfg.MaxPayload), Version: cfg.Version, Logger: log,
			MaxConns: cfg.BeanstalkMaxConns, ReadTimeout: cfg.BeanstalkTimeout, Budget: inflight})
		serve := func(l net.Listener) {
			if len(allow) > 0 {
				l = &allowListener{Listener: l, allow: allow, log: log}
			}
			go func() {
				if err := bs.Serve(context.WithoutCancel(ctx), l); !errors.Is(err, beanstalk.ErrServerClosed) {
					bserr <- err
				}
			}()
		}
		if bln != nil {
			addrs.Beanstalk = bln.Addr().String()
			serve(bln)
		}
		if btln != nil {
			addrs.BeanstalkTLS = btln.Addr().String()
			serve(tlsconf.Listener(btln, tlsr.ServerConfig(), 0))
		}
	}
	// end beanstalkd protocol front

	if sqsLn != nil {
		// The HTTP API's connection cap, before TLS; TLS on every port.
		sqsLn = connlimit.NewListener(sqsLn, cfg.HTTPMaxConns, httpapi.ConnRefusal(cfg.HTTPMaxConns))
		if tlsr != nil {
			sqsLn = tlsconf.Listener(sqsLn, tlsr.ServerConfig(), 0)
		}
	}
	sqsFront, sqsErr := startSQS(sqsLn, eng, cfg, inflight, &addrs)
	defer sqsFront.close()

	log.Info("spool serving", "http", scheme+addrs.HTTP, "beanstalkd", addrs.Beanstalk, "beanstalkd_tls", addrs.BeanstalkTLS,
		"sqs", addrs.SQS, "auth", authSvc.Enabled(), "mtls", tlsr != nil && tlsr.MutualTLS(), "version", cfg.Version)
	if cfg.Ready != nil {
		cfg.Ready(addrs)
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		if bs != nil {
			bs.Close()
		}
		return fmt.Errorf("http server: %w", err)
	case err := <-bserr:
		srv.Close()
		return fmt.Errorf("beanstalkd front: %w", err)
	case err := <-sqsErr:
		srv.Close()
		if bs != nil {
			bs.Close()
		}
		return fmt.Errorf("sqs front: %w", err)
	}
	log.Info("shutting down")
	hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
	cluster.handOff(hctx, nc, log)
	hcancel()
	api.Drain()
	sqsFront.drain()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// beanstalkd front: end waiting reserves, release held jobs, close connections, all
	// before the engine closes.
	if bs != nil {
		if err := bs.Shutdown(sctx); err != nil {
			log.Warn("beanstalkd shutdown", "err", err)
		}
	}
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	sqsFront.shutdown(sctx)
	sched.Close() // schedules: no fire after this point
	hooks.Close() // webhooks: the POSTs in flight end first
	if err := eng.Close(); err != nil {
		log.Warn("engine close", "err", err)
	}
	if err := nc.Drain(); err != nil {
		log.Warn("nats drain", "err", err)
	}
	return nil
}

func fsyncName(s string) string {
	if s == "" {
		return "default (2m interval)"
	}
	return s
}
