package main

import (
	"bufio"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// probe reads a server's CPU time and resident memory: from /proc for a process id, or from
// spool's own Prometheus metrics.
type probe struct {
	pid     int
	metrics string // URL of /metrics, when no pid
}

func newProbe(c config) probe {
	p := probe{pid: c.pid}
	if p.pid == 0 && strings.HasPrefix(c.mode, "http") {
		p.metrics = c.target + "/metrics"
	}
	return p
}

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat times.
const clockTick = 100

func (p probe) cpu() (time.Duration, bool) {
	if p.pid > 0 {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/stat")
		if err != nil {
			return 0, false
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			return 0, false
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * time.Second / clockTick, true
	}
	v, ok := p.metric("spool_process_cpu_seconds_total")
	return time.Duration(v * float64(time.Second)), ok
}

func (p probe) rss() (int64, bool) {
	if p.pid > 0 {
		f, err := os.Open("/proc/" + strconv.Itoa(p.pid) + "/status")
		if err != nil {
			return 0, false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
				return kb << 10, true
			}
		}
		return 0, false
	}
	v, ok := p.metric("spool_process_resident_memory_bytes")
	return int64(v), ok
}

func (p probe) metric(name string) (float64, bool) {
	if p.metrics == "" {
		return 0, false
	}
	resp, err := http.Get(p.metrics)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}
