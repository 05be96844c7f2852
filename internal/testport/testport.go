// Package testport gives tests loopback addresses for servers that must know each other's
// addresses before they start (a cluster's routes, a child process's listeners).
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Addr returns a loopback address whose port was free a moment ago. The port is taken
// below the range the system gives outgoing connections their source ports from: a port
// from that range (what listening on port 0 picks) can be taken by any connection of a test
// running alongside before the server listens on it, and a cluster node without its route
// port never joins.
func Addr(tb testing.TB) string {
	tb.Helper()
	low := ephemeralLow()
	for range 1000 {
		p := 10000 + rand.IntN(max(low-10000, 1))
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // taken
		}
		ln.Close()
		return ln.Addr().String()
	}
	tb.Fatal("testport: no free port below the ephemeral range")
	return ""
}

// ephemeralLow is the first port of the system's ephemeral range (Linux's default 32768).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &lo, &hi); err == nil && lo > 11000 {
			return lo
		}
	}
	return 32768
}
