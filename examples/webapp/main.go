// Command webapp is a small web application that enqueues a job on a request and runs
// its own spool worker in the same process: the way many applications start with spool.
//
// With a spool server running (go run ./cmd/spool serve):
//
//	go run ./examples/webapp -listen 127.0.0.1:8080 -server http://127.0.0.1:7420
//	curl -s -XPOST 'localhost:8080/signup' -d 'email=a@example.com'
//	curl -s localhost:8080/jobs/<job_id>
//
// POST /signup enqueues an "email.welcome" job and answers 202 with the job's id at once;
// the worker sends the email in the background; GET /jobs/{id} shows the job's status.
// SIGINT or SIGTERM stop the HTTP server first (no new jobs), then the worker, which lets
// the running jobs finish.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spoolq/spool"
)

const (
	queue       = "webapp-email"
	welcomeType = "email.welcome"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], os.Getenv, logger, nil); err != nil {
		fmt.Fprintln(os.Stderr, "webapp:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done. ready, when not nil, is told the HTTP address once the
// application serves.
func run(ctx context.Context, args []string, getenv func(string) string, logger *slog.Logger, ready func(addr string)) error {
	fs := flag.NewFlagSet("webapp", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address")
	defServer := getenv("SPOOL_SERVER")
	if defServer == "" {
		defServer = spool.DefaultURL
	}
	server := fs.String("server", defServer, "spool server URL(s), comma-separated ($SPOOL_SERVER)")
	concurrency := fs.Int("concurrency", 4, "jobs the in-process worker runs at once")
	if err := fs.Parse(args); err != nil {
		return err
	}

	client, err := spool.NewClient(*server)
	if err != nil {
		return err
	}
	worker, err := spool.NewWorker(client, spool.WorkerOptions{
		Queues:          []string{queue},
		Concurrency:     *concurrency,
		JobTimeout:      time.Minute,
		ShutdownTimeout: 20 * time.Second,
		Logger:          logger,
	})
	if err != nil {
		return err
	}
	worker.Use(spool.Logging(logger))
	worker.Handle(welcomeType, spool.TypedHandler(sendWelcome))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	a := &app{client: client, log: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signup", a.signup)
	mux.HandleFunc("GET /jobs/{id}", a.job)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	if err := worker.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("webapp serving", "http", ln.Addr().String(), "spool", *server)
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	// Stop taking requests first (no new jobs), then let the worker finish its jobs.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = serr
	}
	if werr := worker.Shutdown(shutdownCtx); werr != nil && err == nil {
		err = werr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// welcome is the payload of an email.welcome job.
type welcome struct {
	Email string `json:"email"`
}

// sendWelcome is the job's handler. A real application would talk to its mail provider
// here; returning an error makes spool retry the job with backoff.
func sendWelcome(ctx context.Context, job *spool.Job, w welcome) error {
	select {
	case <-time.After(100 * time.Millisecond): // the mail provider's latency
	case <-ctx.Done():
		return ctx.Err()
	}
	return spool.SetResult(ctx, map[string]string{"sent_to": w.Email, "sent_at": time.Now().UTC().Format(time.RFC3339)})
}

type app struct {
	client *spool.Client
	log    *slog.Logger
}

// signup enqueues the welcome email and answers at once.
func (a *app) signup(w http.ResponseWriter, r *http.Request) {
	addr, err := mail.ParseAddress(r.FormValue("email"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "email: " + err.Error()})
		return
	}
	job, err := a.client.Enqueue(r.Context(), queue, welcomeType, welcome{Email: addr.Address},
		spool.MaxAttempts(5),
		spool.UniqueKey("welcome:"+addr.Address)) // a double submit does not send twice
	if err != nil {
		a.log.Error("enqueue", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "try again later"})
		return
	}
	id := strconv.FormatUint(job.ID, 10)
	writeJSON(w, http.StatusAccepted, map[string]any{"job_id": id, "status_url": "/jobs/" + id, "duplicate": job.Duplicate})
}

// job shows a job's status.
func (a *app) job(w http.ResponseWriter, r *http.Request) {
	id, err := spool.ParseJobID(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	job, err := a.client.Job(r.Context(), id)
	switch {
	case errors.Is(err, spool.ErrJobNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such job"})
		return
	case err != nil:
		a.log.Error("job status", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "try again later"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"job_id":     r.PathValue("id"),
		"state":      job.State,
		"attempts":   job.Attempts,
		"last_error": job.LastError,
		"result":     job.Result,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
