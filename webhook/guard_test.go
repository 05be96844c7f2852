package webhook

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestRefusedAddresses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		addr                string
		refused, refusedDen bool
	}{
		{"169.254.169.254", true, true}, // cloud metadata
		{"fe80::1", true, true},
		{"127.0.0.1", false, true},
		{"::1", false, true},
		{"10.1.2.3", false, true},
		{"192.168.0.10", false, true},
		{"fd00::5", false, true},
		{"::ffff:10.0.0.1", false, true},
		{"0.0.0.0", false, true},
		{"8.8.8.8", false, false},
		{"2001:4860::8888", false, false},
	} {
		ip := netip.MustParseAddr(c.addr)
		if got := refusedAddr(ip, false) != ""; got != c.refused {
			t.Errorf("%s refused by default: %v, want %v", c.addr, got, c.refused)
		}
		if got := refusedAddr(ip, true) != ""; got != c.refusedDen {
			t.Errorf("%s refused with DenyPrivate: %v, want %v", c.addr, got, c.refusedDen)
		}
	}
}

// The default client checks the address it dials: a loopback receiver is reached by
// default and refused with DenyPrivate, a link-local one always, before any connection.
func TestGuardedClientDials(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	resp, err := guardedClient(5*time.Second, false).Get(srv.URL)
	if err != nil {
		t.Fatalf("loopback receiver by default: %v", err)
	}
	resp.Body.Close()
	if _, err := guardedClient(5*time.Second, true).Get(srv.URL); !errors.Is(err, ErrAddressRefused) {
		t.Fatalf("loopback receiver with DenyPrivate: %v", err)
	}
	if _, err := guardedClient(5*time.Second, false).Get("http://169.254.169.254/latest/meta-data/"); !errors.Is(err, ErrAddressRefused) {
		t.Fatalf("metadata address: %v", err)
	}
}
