package natsd

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// Start waits for the server without a time limit, so a listen address that is taken must
// fail at once rather than leave it waiting for a server that never listens.
func TestStartBusyPortFailsAtOnce(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	ns, err := Start(context.Background(), Options{StoreDir: t.TempDir(), Listen: ln.Addr().String()})
	if err == nil {
		ns.Shutdown()
		t.Fatal("started on a busy port")
	}
	if !strings.Contains(err.Error(), "nats listen address") || time.Since(start) > 5*time.Second {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
}

func TestStartAndConnect(t *testing.T) {
	t.Parallel()
	ns, err := Start(context.Background(), Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := Connect(ns, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.JetStream(); err != nil {
		t.Fatal(err)
	}
}
