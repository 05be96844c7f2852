// Command spool runs a spool server (spool serve) and performs every operator action on
// one over its HTTP API: enqueue jobs, list and inspect queues and jobs, pause, resume,
// kick, purge, statistics.
//
// Exit status: 0 on success, 1 on an error, 2 on a usage error.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
