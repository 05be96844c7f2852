package natsd

import (
	"sync"
	"time"
	_ "unsafe" // go:linkname: nats-server's RAFT timing has no option

	_ "github.com/nats-io/nats-server/v2/server" // the variables linked below
)

// The values of Cluster.RaftTiming.
const (
	RaftFast = "fast"
	RaftNATS = "nats"
)

// RAFT timing of nats-server's JetStream cluster. Its defaults (a heartbeat a second, an
// election after 4–9 s without one) leave the streams and consumers a killed node led
// without a leader for 4–9 s: no write to them in that time. nats-server offers no option
// for it, only these package variables (its own tests lower them the same way), so spool
// sets them, once per process, before its first cluster node starts.
//
// Heartbeats every 250 ms and an election after 1–1.6 s of silence bring the gap after a
// leader's death to about 1–2 s; a follower must miss four heartbeats in a row before it
// calls an election, and a needless election is safe in RAFT (a new term, no data lost).
// An idle RAFT group (each replicated stream and consumer) costs its followers four small
// heartbeat messages a second instead of one: measured on three local nodes, the idle CPU
// of 1,000 queues in use (their R3 consumers) doubled, 0.6 to 1.2–1.45 cores. A cluster
// with many replicated queues in use may prefer nats-server's timing (RaftNATS).
const (
	raftHeartbeat   = 250 * time.Millisecond
	raftElectionMin = 1000 * time.Millisecond
	raftElectionMax = 1600 * time.Millisecond
)

// The defaults these variables hold in the nats-server version spool pins; a test checks
// them, so that an upgrade that renames or retypes them is noticed.
const (
	natsHeartbeatDefault   = 1 * time.Second
	natsElectionMinDefault = 4 * time.Second
	natsElectionMaxDefault = 9 * time.Second
)

//go:linkname natsHeartbeat github.com/nats-io/nats-server/v2/server.hbInterval
var natsHeartbeat time.Duration

//go:linkname natsElectionMin github.com/nats-io/nats-server/v2/server.minElectionTimeout
var natsElectionMin time.Duration

//go:linkname natsElectionMax github.com/nats-io/nats-server/v2/server.maxElectionTimeout
var natsElectionMax time.Duration

// natsDefaults are the values the variables held when this package was initialised (after
// nats-server's, which it imports).
var natsDefaults = [3]time.Duration{natsHeartbeat, natsElectionMin, natsElectionMax}

// raftTiming sets spool's RAFT timing. The variables are nats-server's, shared by every
// server of the process; they are read by RAFT goroutines, so they are written once, before
// any cluster node of this process runs.
var raftTiming sync.Once

func setRaftTiming() {
	raftTiming.Do(func() {
		natsHeartbeat = raftHeartbeat
		natsElectionMin = raftElectionMin
		natsElectionMax = raftElectionMax
	})
}
