package natsd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spoolq/spool/internal/jsasset"
	"github.com/spoolq/spool/internal/testport"
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

// Three embedded servers given each other's route addresses form one JetStream cluster: a
// meta leader is elected, every node knows it, and an R3 stream is placed on all three.
func TestClusterOfThree(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("elects a RAFT leader")
	}
	routes := []string{testport.Addr(t), testport.Addr(t), testport.Addr(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var nodes []*server.Server
	for i, r := range routes {
		ns, err := Start(ctx, Options{StoreDir: t.TempDir(), Cluster: &Cluster{
			Name: "test", Node: fmt.Sprintf("n%d", i+1), Listen: r, Peers: routes,
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Shutdown()
		nodes = append(nodes, ns)
	}
	for _, ns := range nodes {
		if err := WaitJetStream(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	leader := MetaLeader(nodes[0])
	if !slices.Contains([]string{"n1", "n2", "n3"}, leader) {
		t.Fatalf("meta leader %q", leader)
	}
	nc, err := Connect(nodes[1], "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	// As spool makes its streams: each attempt bounded (a create may go unanswered while the
	// cluster settles) and tried again while the meta leader does not know every peer yet.
	st, err := jsasset.Stream(ctx, js, slog.New(slog.DiscardHandler), jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3"}, Replicas: 3})
	if err != nil {
		t.Fatalf("create an R3 stream: %v", err)
	}
	info := st.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info: %+v", info.Cluster)
	}
}

func TestClusterOptionsRefuseBadValues(t *testing.T) {
	t.Parallel()
	for _, c := range []Cluster{
		{Name: "", Node: "n1", Listen: "127.0.0.1:0"},
		{Name: "a b", Node: "n1", Listen: "127.0.0.1:0"},
		{Name: "c", Node: "", Listen: "127.0.0.1:0"},
		{Name: "c", Node: "n.1", Listen: "127.0.0.1:0"},
		{Name: "c", Node: "n1", Listen: "nohost"},
		{Name: "c", Node: "n1", Listen: "127.0.0.1:0", Peers: []string{"hostonly"}},
		{Name: "c", Node: "n1", Listen: "127.0.0.1:0", Peers: []string{"http://h:1"}},
		{Name: "c", Node: "n1", Listen: "127.0.0.1:0", RaftTiming: "slow"},
	} {
		ns, err := Start(context.Background(), Options{StoreDir: t.TempDir(), Cluster: &c})
		if err == nil {
			ns.Shutdown()
			t.Errorf("%+v: started", c)
		}
	}
}

// The peers list comes from a flag: any input is refused or gives routes with a host and
// a port, never a panic.
func FuzzClusterPeers(f *testing.F) {
	for _, s := range []string{"h:6222", "nats://h:1", "tls://[::1]:6222", "h", ":1", "http://h:1", "h:1,h2:2", " , ", "nats://h:1/x?y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, peers string) {
		c := Cluster{Name: "c", Node: "n", Peers: strings.Split(peers, ",")}
		urls, err := c.routes()
		if err != nil {
			return
		}
		for _, u := range urls {
			if u.Host == "" || u.Port() == "" {
				t.Fatalf("%q gave route %v", peers, u)
			}
		}
	})
}

// The RAFT timing spool sets is linked to nats-server's variables by name; an upgrade that
// renamed one would fail the build, one that changed its type or meaning shows here.
func TestRaftTimingLinked(t *testing.T) {
	want := [3]time.Duration{natsHeartbeatDefault, natsElectionMinDefault, natsElectionMaxDefault}
	if natsDefaults != want {
		t.Fatalf("nats-server's RAFT timing variables held %v at start, want %v: check internal/natsd/raft.go against the nats-server version", natsDefaults, want)
	}
	setRaftTiming()
	if got := [3]time.Duration{natsHeartbeat, natsElectionMin, natsElectionMax}; got != [3]time.Duration{raftHeartbeat, raftElectionMin, raftElectionMax} {
		t.Fatalf("RAFT timing after setRaftTiming: %v", got)
	}
}

// The embedded server takes more than nats-server's default of 1,000 consumers a stream:
// queues share shard streams, a consumer for each level in use.
func TestManyConsumersOnAStream(t *testing.T) {
	t.Parallel()
	ns, err := Start(context.Background(), Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := Connect(ns, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range 1001 {
		if _, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: fmt.Sprintf("c%d", i), FilterSubject: fmt.Sprintf("s.%d", i), MemoryStorage: true}); err != nil {
			t.Fatalf("consumer %d: %v", i+1, err)
		}
	}
}
