package server

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/spoolq/spool/internal/testlog"
)

func TestLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:7420": true, "[::1]:7420": true, "localhost:1": true, "127.0.0.2:0": true,
		":7420": false, "0.0.0.0:7420": false, "10.1.2.3:7420": false, "[::]:1": false, "example.com:1": false, "bad": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestWarnExposure: a listener beyond loopback without its protection is named in a
// warning at start; a protected or local one is not.
func TestWarnExposure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		cfg        Config
		tls, auth  bool
		wantWarned []string
	}{
		{"local", Config{HTTPAddr: "127.0.0.1:7420", BeanstalkAddr: "127.0.0.1:11300", NATSListen: "127.0.0.1:4222"}, false, false, nil},
		{"open http", Config{HTTPAddr: ":7420"}, false, false, []string{"without TLS", "without authentication"}},
		{"http with tls only", Config{HTTPAddr: ":7420"}, true, false, []string{"without authentication"}},
		{"http protected", Config{HTTPAddr: ":7420"}, true, true, nil},
		{"beanstalkd", Config{HTTPAddr: "127.0.0.1:1", BeanstalkAddr: "0.0.0.0:11300"}, true, true, []string{"beanstalkd port"}},
		{"beanstalkd allow-list", Config{HTTPAddr: "127.0.0.1:1", BeanstalkAddr: "0.0.0.0:11300", BeanstalkAllow: []string{"10.0.0.0/8"}}, true, true, nil},
		{"beanstalkd tls", Config{HTTPAddr: "127.0.0.1:1", BeanstalkTLSAddr: "0.0.0.0:11400"}, true, true, []string{"beanstalkd TLS port"}},
		{"beanstalkd mtls", Config{HTTPAddr: "127.0.0.1:1", BeanstalkTLSAddr: "0.0.0.0:11400", TLSClientCA: "ca.pem"}, true, true, nil},
		{"nats", Config{HTTPAddr: "127.0.0.1:1", NATSListen: ":4222"}, true, true, []string{"NATS port"}},
		{"nats mtls", Config{HTTPAddr: "127.0.0.1:1", NATSListen: ":4222", TLSClientCA: "ca.pem"}, true, true, nil},
	} {
		var buf testlog.Buffer
		warnExposure(slog.New(slog.NewTextHandler(&buf, nil)), tc.cfg, tc.tls, tc.auth)
		got := buf.String()
		if n := strings.Count(got, "INSECURE"); n != len(tc.wantWarned) {
			t.Errorf("%s: %d warnings, want %d:\n%s", tc.name, n, len(tc.wantWarned), got)
		}
		for _, w := range tc.wantWarned {
			if !strings.Contains(got, w) {
				t.Errorf("%s: no warning about %q:\n%s", tc.name, w, got)
			}
		}
	}
}

func FuzzParseAllow(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "127.0.0.1", "::1", "fe80::/10", "1.2.3.4/33", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parseAllow(strings.Split(s, ","))
		if err != nil {
			return
		}
		for _, p := range ps {
			if !p.IsValid() || p.Masked() != p {
				t.Fatalf("parseAllow(%q): %v", s, p)
			}
		}
	})
}
