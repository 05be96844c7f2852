package connlimit_test

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/connlimit"
	"github.com/spoolq/spool/internal/spooltest"
)

func TestListenerRefusesOverCap(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := connlimit.NewListener(inner, 2, []byte("FULL\n"))
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	s1, s2 := <-accepted, <-accepted
	defer s2.Close()
	// The third is refused with the message, even when it sends a request first.
	c := dial()
	c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if string(b) != "FULL\n" || err != nil {
		t.Fatalf("over the cap: read %q, %v", b, err)
	}
	if ln.Refused() != 1 || ln.Open() != 2 {
		t.Fatalf("refused %d open %d", ln.Refused(), ln.Open())
	}
	// Below the cap again: accepted.
	s1.Close()
	s1.Close() // counted once
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("a connection below the cap was not accepted")
	}
	spooltest.Eventually(t, 5*time.Second, func() error {
		if ln.Open() != 1 {
			return fmt.Errorf("open %d, want 1", ln.Open())
		}
		return nil
	})
}
