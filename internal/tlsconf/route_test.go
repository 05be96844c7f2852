package tlsconf_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/internal/testcert"
	"github.com/spoolq/spool/internal/testlog"
	"github.com/spoolq/spool/internal/tlsconf"
)

// TestNATSRoutes: nats-server cluster routes configured with RouteConfig connect the nodes of
// the cluster's CA and refuse a node whose certificate another CA signed. (Clustering is the
// server's business; this checks that the configuration works with nats-server's routes.)
func TestNATSRoutes(t *testing.T) {
	t.Parallel()
	cluster := testcert.NewCA(t, "cluster CA")
	var aLog testlog.Buffer
	node := func(ca *testcert.CA, name string, routes ...string) *natsserver.Server {
		dir := t.TempDir()
		cert, key := ca.Issue(t, name).Write(t, dir, name)
		r, err := tlsconf.New(tlsconf.Options{CertFile: cert, KeyFile: key, ClientCAFile: cluster.WriteCA(t, dir, "ca")})
		if err != nil {
			t.Fatal(err)
		}
		conf, err := r.RouteConfig()
		if err != nil {
			t.Fatal(err)
		}
		o := &natsserver.Options{ServerName: name, Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoSigs: true}
		o.Cluster.Name, o.Cluster.Host, o.Cluster.Port = "spool", "127.0.0.1", natsserver.RANDOM_PORT
		o.Cluster.TLSConfig, o.Cluster.TLSTimeout = conf, 5
		for _, u := range routes {
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			o.Routes = append(o.Routes, pu)
		}
		ns, err := natsserver.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		if name == "a" {
			ns.SetLoggerV2(errLogger{&aLog}, false, false, false)
		}
		go ns.Start()
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server not ready")
		}
		return ns
	}
	a := node(cluster, "a")
	routeURL := fmt.Sprintf("nats://%s", a.ClusterAddr().String())
	b := node(cluster, "b", routeURL)
	spooltest.Eventually(t, 20*time.Second, func() error {
		if a.NumRoutes() == 0 || b.NumRoutes() == 0 {
			return fmt.Errorf("routes: a %d, b %d; want the nodes of one CA connected", a.NumRoutes(), b.NumRoutes())
		}
		return nil
	})
	// A stranger: its certificate is of another CA (it trusts the cluster's CA, so only a's
	// check of the client certificate stops it). a refuses its route at the handshake.
	x := node(testcert.NewCA(t, "other CA"), "x", routeURL)
	spooltest.Eventually(t, 20*time.Second, func() error {
		if !strings.Contains(aLog.String(), "certificate") {
			return fmt.Errorf("a logged no refused route handshake:\n%s", aLog.String())
		}
		return nil
	})
	rz, err := a.Routez(nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range rz.Routes {
		names[r.RemoteName] = true
	}
	if !names["b"] || names["x"] {
		t.Errorf("a's routes go to %v; want b, not x (a node of another CA)", names)
	}
	if x.NumRoutes() != 0 {
		t.Errorf("x, a node of another CA, has %d routes", x.NumRoutes())
	}
}

// errLogger keeps nats-server's errors.
type errLogger struct{ b *testlog.Buffer }

func (l errLogger) Noticef(string, ...any)    {}
func (l errLogger) Warnf(string, ...any)      {}
func (l errLogger) Fatalf(f string, v ...any) { fmt.Fprintf(l.b, f+"\n", v...) }
func (l errLogger) Errorf(f string, v ...any) { fmt.Fprintf(l.b, f+"\n", v...) }
func (l errLogger) Debugf(string, ...any)     {}
func (l errLogger) Tracef(string, ...any)     {}
