package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/budget"
	"github.com/spoolq/spool/sqs"
)

// sqsMaxWait is SQS's longest long poll (ReceiveMessage's WaitTimeSeconds).
const sqsMaxWait = 20 * time.Second

// sqsFront is the running SQS-compatible front (nil when off).
type sqsFront struct {
	h   *sqs.Handler
	srv *http.Server
}

// startSQS serves the SQS front on ln, if set; errors of its server arrive on the channel.
// The front has the HTTP API's limits (docs/limits.md): its timeouts (a write's long enough
// for SQS's longest poll, 20 s) and the shared memory budget; ln is capped already.
func startSQS(ln net.Listener, eng *engine.Engine, cfg Config, inflight *budget.Budget, addrs *Addrs) (*sqsFront, <-chan error) {
	errc := make(chan error, 1)
	if ln == nil {
		return nil, errc
	}
	opt := sqs.Options{Logger: cfg.Logger, MaxMessageSize: min(cfg.MaxPayload, 1<<20), Budget: inflight}
	if len(cfg.SQSCredentials) > 0 {
		opt.Credentials = sqs.StaticCredentials(cfg.SQSCredentials)
	}
	h := sqs.New(eng, opt)
	f := &sqsFront{h: h, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout + sqsMaxWait,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}}
	addrs.SQS = ln.Addr().String()
	go func() {
		if err := f.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return f, errc
}

// drain ends the long polls: they answer with what they have.
func (f *sqsFront) drain() {
	if f != nil {
		f.h.Drain()
	}
}

// shutdown waits for the requests in flight and stops the move tasks.
func (f *sqsFront) shutdown(ctx context.Context) {
	if f == nil {
		return
	}
	if err := f.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		f.srv.Close()
	}
	f.h.Close()
}

// close stops the front at once (an early return of Run).
func (f *sqsFront) close() {
	if f == nil {
		return
	}
	f.srv.Close()
	f.h.Close()
}
