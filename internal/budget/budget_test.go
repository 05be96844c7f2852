package budget_test

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/spoolq/spool/internal/budget"
)

func TestAcquireRelease(t *testing.T) {
	b := budget.New(100)
	if !b.TryAcquire(60) || b.TryAcquire(41) || !b.TryAcquire(40) || b.TryAcquire(1) {
		t.Fatal("acquire past or within the limit")
	}
	b.Release(100)
	if b.Used() != 0 || b.Limit() != 100 {
		t.Fatalf("used %d limit %d", b.Used(), b.Limit())
	}
	var none *budget.Budget = budget.New(0)
	if none != nil || !none.TryAcquire(1<<40) || none.Used() != 0 {
		t.Fatal("a zero limit is no budget")
	}
	none.Release(5)
}

func TestConcurrentNeverOver(t *testing.T) {
	b := budget.New(1000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10000 {
				if b.TryAcquire(7) {
					if u := b.Used(); u > 1000 {
						t.Errorf("used %d over the limit", u)
					}
					b.Release(7)
				}
			}
		})
	}
	wg.Wait()
	if b.Used() != 0 {
		t.Fatalf("used %d after all releases", b.Used())
	}
}

func TestReader(t *testing.T) {
	b := budget.New(100)
	r := budget.NewReader(b, strings.NewReader(strings.Repeat("a", 30)), 3)
	if _, err := io.ReadAll(r); err != nil || b.Used() != 90 || r.Charged() != 90 {
		t.Fatalf("read 30 bytes at 3x: err %v, used %d", err, b.Used())
	}
	r.Close()
	if b.Used() != 0 {
		t.Fatalf("used %d after Close", b.Used())
	}
	// Over the budget: the read fails, and what was charged is given back at Close.
	r = budget.NewReader(b, strings.NewReader(strings.Repeat("a", 50)), 3)
	buf := make([]byte, 20)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, budget.ErrExceeded) {
		t.Fatalf("read past the budget: %v", err)
	}
	r.Close()
	if b.Used() != 0 {
		t.Fatalf("used %d after Close", b.Used())
	}
}
