package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spoolq/spool/auth"
	"github.com/spoolq/spool/internal/natsd"
	"github.com/spoolq/spool/internal/spooltest"
)

// TestServiceAcrossNodes: two services over one JetStream (two nodes) see each other's
// tokens and revocations; authentication turns on with the first token and stays on.
func TestServiceAcrossNodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := natsd.Start(ctx, natsd.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	open := func(bootstrap string) (*auth.Service, error) {
		nc, err := natsd.Connect(ns, "auth-test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return auth.Open(ctx, nc, auth.Config{Bootstrap: bootstrap})
	}
	if _, err := open("short"); err == nil {
		t.Fatal("a bootstrap token of 5 bytes was accepted")
	}
	a, err := open("")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := open("")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Enabled() {
		t.Fatal("authentication on without any token")
	}
	tok, secret, err := a.Create(ctx, "w", []auth.Grant{{Queues: "q*", Perms: []auth.Perm{auth.Work}}})
	if err != nil {
		t.Fatal(err)
	}
	spooltest.Eventually(t, 10*time.Second, func() error {
		p, err := b.Authenticate(secret)
		if err != nil {
			return err
		}
		if !b.Enabled() || !p.Can(auth.Work, "q1") || p.Can(auth.Work, "r") || p.ID != tok.ID {
			return errors.New("the other node's principal is wrong")
		}
		return nil
	})
	// (Its last character changed: to "A", or to "B" when it was "A" already, which made
	// this check fail once in 64 runs.)
	altered := secret[:len(secret)-1] + "A"
	if altered == secret {
		altered = secret[:len(secret)-1] + "B"
	}
	if _, err := b.Authenticate(altered); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("altered secret: %v", err)
	}
	if err := a.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(secret); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("revoked, same node: %v", err)
	}
	spooltest.Eventually(t, 10*time.Second, func() error {
		if _, err := b.Authenticate(secret); !errors.Is(err, auth.ErrUnauthenticated) {
			return errors.New("the other node still accepts a revoked token")
		}
		return nil
	})
	if !a.Enabled() || !b.Enabled() || len(a.List()) != 0 {
		t.Errorf("after revoking the last token: enabled %v %v, %d tokens", a.Enabled(), b.Enabled(), len(a.List()))
	}
	if err := a.Revoke(ctx, tok.ID); !errors.Is(err, auth.ErrTokenNotFound) {
		t.Errorf("revoke twice: %v", err)
	}
	// A node started now, without tokens, still requires one.
	c, err := open("")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Enabled() {
		t.Error("a node started after the last token was revoked does not require a token")
	}
}

// BenchmarkAuthenticate: the cost a token check adds to a request (memory only).
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	ns, err := natsd.Start(ctx, natsd.Options{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := natsd.Connect(ns, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	s, err := auth.Open(ctx, nc, auth.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	_, secret, err := s.Create(ctx, "b", []auth.Grant{{Queues: "q*", Perms: []auth.Perm{auth.Work}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := s.Authenticate(secret)
			if err != nil || !p.Can(auth.Work, "q1") {
				b.Fatal("refused")
			}
		}
	})
}
