package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// A delivery's URL comes from whoever may enqueue (a job's callback_url) or manage hooks:
// without a check, the server would POST wherever they point it, inside its own network
// included (server-side request forgery). The check is made on the address actually dialled,
// after name resolution, so a name that resolves to a refused address is refused too.

// ErrAddressRefused is a delivery's error when its URL leads to an address deliveries may
// not reach.
var ErrAddressRefused = errors.New("webhook: address refused")

// refusedAddr reports why ip may not be dialled, or "" when it may. Link-local addresses
// (cloud metadata services answer on 169.254.169.254) are always refused; with denyPrivate,
// so are loopback, private (RFC 1918, fc00::/7), unspecified and multicast ones.
func refusedAddr(ip netip.Addr, denyPrivate bool) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case !denyPrivate:
		return ""
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "not a unicast address"
	}
	return ""
}

// guardedClient is the default delivery client: no redirects followed, no proxy from the
// environment (a proxy would dial for it, unchecked), and every dial checked.
func guardedClient(timeout time.Duration, denyPrivate bool) *http.Client {
	d := &net.Dialer{
		Timeout: timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrAddressRefused, address)
			}
			if why := refusedAddr(ap.Addr(), denyPrivate); why != "" {
				return fmt.Errorf("%w: %s is %s", ErrAddressRefused, ap.Addr(), why)
			}
			return nil
		},
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = d.DialContext
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
