package bsimport_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/beanstalkd/go-beanstalk"

	"github.com/spoolq/spool/internal/bsimport"
)

// BenchmarkImportReady moves b.N ready jobs of 100 bytes from beanstalkd to spool, one
// connection, no rate limit: the import's own speed (a job is 4 beanstalkd commands and
// one enqueue with a unique key).
func BenchmarkImportReady(b *testing.B) {
	bs, bc, sc := start(b, nil)
	tb := beanstalk.NewTube(bc, "bench")
	body := make([]byte, 100)
	for i := range b.N {
		copy(body, fmt.Sprintf("%08d", i))
		if _, err := tb.Put(body, uint32(i%10), 0, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	rep, err := bsimport.Run(context.Background(), sc, bsimport.Options{From: bs.Addr, Tubes: []string{"bench"}})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if rep.Ready.Moved != b.N {
		b.Fatalf("moved %d of %d", rep.Ready.Moved, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
