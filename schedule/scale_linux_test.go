//go:build linux

package schedule

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestScale measures what schedules cost a node: heap per schedule once loaded, storage
// per schedule, and CPU while they fire (the process's CPU time, which includes the
// embedded JetStream server). It takes about three minutes:
//
//	SPOOL_SCHEDULE_SCALE=1 go test -run TestScale -v -timeout 20m ./schedule
//
// SPOOL_SCHEDULE_SCALE may also list sizes, e.g. "1000,10000"; SPOOL_SCHEDULE_SCALE_SPEC
// picks one spec ("@every 1m" or "@every 1s").
func TestScale(t *testing.T) {
	env := os.Getenv("SPOOL_SCHEDULE_SCALE")
	if env == "" {
		t.Skip("set SPOOL_SCHEDULE_SCALE=1 to measure")
	}
	sizes := []int{1000, 10000}
	if env != "1" {
		sizes = nil
		for _, f := range splitComma(env) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("SPOOL_SCHEDULE_SCALE=%q", env)
			}
			sizes = append(sizes, n)
		}
	}
	for _, spec := range []struct {
		every  string
		window time.Duration
	}{{"@every 1m", 60 * time.Second}, {"@every 1s", 10 * time.Second}} {
		if only := os.Getenv("SPOOL_SCHEDULE_SCALE_SPEC"); only != "" && only != spec.every {
			continue
		}
		for _, n := range sizes {
			t.Run(fmt.Sprintf("%d×%s", n, spec.every), func(t *testing.T) { measureScale(t, n, spec.every, spec.window) })
		}
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func measureScale(t *testing.T, n int, spec string, window time.Duration) {
	ns := startNATS(t)
	// Create the schedules with a node whose scheduler is then stopped.
	a := newNode(t, ns)
	sa := a.start(t, SystemClock{})
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				d := def(fmt.Sprintf("s%06d", i), spec, "scale")
				if _, _, err := sa.Put(ctxT(t), d); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	created := time.Since(start)
	sa.Close()

	// The node under measurement loads them all.
	b := newNode(t, ns)
	before := heapAfterGC()
	loadStart := time.Now()
	sb := b.start(t, SystemClock{})
	load := time.Since(loadStart)
	heap := heapAfterGC() - before
	info, err := sb.defs.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}

	// Fire for a window.
	cpu0, fired0, t0 := cpuTime(), sb.Stats().Fired, time.Now()
	time.Sleep(window)
	cpu, fired, elapsed := cpuTime()-cpu0, sb.Stats().Fired-fired0, time.Since(t0)
	st := sb.Stats()
	fires, err := sb.fires.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d schedules %s: created in %s (%.0f/s), loaded in %s; heap %.0f B/schedule (%.2f MiB per 1000); definitions stored %.0f B/schedule",
		n, spec, created.Round(time.Millisecond), float64(n)/created.Seconds(), load.Round(time.Millisecond),
		float64(heap)/float64(n), float64(heap)/float64(n)*1000/(1<<20), float64(info.Bytes())/float64(n))
	t.Logf("%d schedules %s: %d fires in %s (%.0f/s, coalesced %d, missed %d, failed %d); CPU %s = %.1f%% of one core; %.0f µs CPU per fire; fires stored %.0f B/schedule",
		n, spec, fired, elapsed.Round(time.Millisecond), float64(fired)/elapsed.Seconds(), st.Coalesced, st.Missed, st.Failed,
		cpu.Round(time.Millisecond), 100*cpu.Seconds()/elapsed.Seconds(), float64(cpu.Microseconds())/max(float64(fired), 1),
		float64(fires.Bytes())/float64(n))
	sb.Close()
}
