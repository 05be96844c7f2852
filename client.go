package spool

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultURL is the address a spool server listens on by default.
const DefaultURL = "http://127.0.0.1:7420"

// DefaultTimeout bounds each HTTP request of a Client unless WithTimeout says otherwise.
// A Reserve that long-polls gets its wait added to it.
const DefaultTimeout = 30 * time.Second

// maxErrorBody bounds how much of a non-JSON error answer is kept in APIError.Message.
const maxErrorBody = 512

// Client talks to spool servers over the HTTP API. It is safe for concurrent use.
//
// A Client knows one or several servers of the same cluster. It sends each request to
// the server that answered last and fails over to the next one when a server cannot be
// reached or answers 503 unavailable. A request that may have reached a server that did
// not answer (a timeout, a connection cut) is not sent again unless it is idempotent (a
// GET, PUT or DELETE), so that an enqueue is not stored twice; the next requests start at
// the next server. When every server failed so, it tries them again,
// backing off, for up to DefaultRetryFor (WithRetryFor): long enough to ride out a
// leader election in a cluster or a node's restart.
type Client struct {
	servers   []string // base URLs without a trailing slash
	hc        *http.Client
	timeout   time.Duration
	retryFor  time.Duration
	userAgent string
	token     string
	tlsConf   *tls.Config
	current   atomic.Uint32 // index in servers of the server to try first
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient makes the Client send its requests with hc (for TLS settings, proxies,
// instrumentation). The default is a client of its own with a copy of
// http.DefaultTransport that keeps up to 64 idle connections per server.
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) { c.hc = hc }
}

// WithTimeout bounds each HTTP request (each try when failing over) to d;
// 0 means no bound other than the context's. Default DefaultTimeout.
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) { c.timeout = d }
}

// DefaultRetryFor is how long a Client keeps trying servers that answer 503 unavailable or
// cannot be reached, unless WithRetryFor says otherwise.
const DefaultRetryFor = 15 * time.Second

// WithRetryFor bounds how long a request keeps being tried again while every server
// answers 503 unavailable or cannot be reached; 0 tries each server once.
func WithRetryFor(d time.Duration) ClientOption {
	return func(c *Client) { c.retryFor = d }
}

// WithUserAgent sets the User-Agent header of the requests. Default "spool-go".
func WithUserAgent(ua string) ClientOption {
	return func(c *Client) { c.userAgent = ua }
}

// WithToken makes the Client send an API token with every request (Authorization: Bearer).
// Servers with authentication answer requests without one 401 unauthenticated. spool
// commands read it from $SPOOL_TOKEN.
func WithToken(token string) ClientOption {
	return func(c *Client) { c.token = token }
}

// WithTLSConfig makes the Client's own transport use conf for https:// servers (see
// TLSConfig). It has no effect with WithHTTPClient, whose client carries its own.
func WithTLSConfig(conf *tls.Config) ClientOption {
	return func(c *Client) { c.tlsConf = conf }
}

// TLSConfig returns a TLS configuration for servers whose certificate caFile's CAs sign
// (empty: the system's roots), presenting the client certificate of certFile and keyFile
// when given (servers with mutual TLS require one).
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("spool: CA file: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("spool: CA file %s: no PEM certificate", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("spool: a client certificate needs both its certificate and its key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("spool: client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// NewClient returns a Client for the servers at urls: a base URL such as
// "http://127.0.0.1:7420", or several separated by commas
// ("http://10.0.0.1:7420,http://10.0.0.2:7420") to fail over between the nodes of a
// cluster. An empty urls means DefaultURL. A URL without a scheme gets "http://".
func NewClient(urls string, opts ...ClientOption) (*Client, error) {
	c := &Client{
		timeout:   DefaultTimeout,
		retryFor:  DefaultRetryFor,
		userAgent: "spool-go",
	}
	if strings.TrimSpace(urls) == "" {
		urls = DefaultURL
	}
	for _, raw := range strings.Split(urls, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if !strings.Contains(raw, "://") {
			raw = "http://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("spool: server URL %q: %w", raw, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("spool: server URL %q: scheme must be http or https", raw)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("spool: server URL %q: no host", raw)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("spool: server URL %q: must not have a query or fragment", raw)
		}
		c.servers = append(c.servers, strings.TrimRight(u.String(), "/"))
	}
	if len(c.servers) == 0 {
		return nil, errors.New("spool: no server URL")
	}
	for _, opt := range opts {
		opt(c)
	}
	if c.hc == nil {
		// Go's default transport keeps 2 idle connections per server: a worker (a long
		// poll, acks, heartbeats) and its producers use more at once, and would open and
		// close a connection per request beyond them.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = idleConnsPerServer
		t.TLSClientConfig = c.tlsConf
		c.hc = &http.Client{Transport: t}
	}
	return c, nil
}

// idleConnsPerServer is how many idle connections a Client keeps to each server.
const idleConnsPerServer = 64

// Servers returns the base URLs the Client talks to.
func (c *Client) Servers() []string {
	return append([]string(nil), c.servers...)
}

// request describes one API call.
type request struct {
	method string
	path   string     // escaped path, e.g. "/v1/jobs/12"
	query  url.Values // optional
	body   any        // marshalled to JSON when not nil
	out    any        // decoded from a 2xx answer when not nil
	// extra lengthens the per-try timeout (the long-poll wait of a reserve).
	extra time.Duration
}

// do sends the request to the current server, failing over to the next ones on
// connection errors and 503 answers. A POST is sent again only when it surely did not
// reach the server (the connection could not be made) or the server answered 503, so
// that an enqueue is not stored twice because an answer was lost.
func (c *Client) do(ctx context.Context, r request) error {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	} else if r.method == http.MethodPost {
		body = []byte("{}")
	}
	idempotent := r.method != http.MethodPost

	deadline := time.Now().Add(c.retryFor)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		again, err := c.round(ctx, r, body, idempotent)
		if !again || time.Now().Add(wait).After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// round tries each server once, from the current one. again reports that every server
// failed in a way that may pass (503 unavailable, or not reachable) and that sending the
// request again is safe.
func (c *Client) round(ctx context.Context, r request, body []byte, idempotent bool) (again bool, err error) {
	n := len(c.servers)
	start := int(c.current.Load()) % n
	for i := range n {
		idx := (start + i) % n
		err = c.try(ctx, c.servers[idx], r, body)
		if err == nil {
			c.current.Store(uint32(idx))
			return false, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		var apiErr *APIError
		var tErr *transportError
		switch {
		case errors.As(err, &apiErr):
			if apiErr.Status != http.StatusServiceUnavailable || apiErr.partial != nil {
				// A batch partly stored is the caller's to resend in part.
				c.current.Store(uint32(idx))
				return false, err
			}
		case errors.As(err, &tErr):
			if !idempotent && !isDialError(tErr.err) {
				// The request may have been taken: it is not sent again. But the server
				// took a connection and did not answer (hung, frozen, cut off behind a
				// connection that stays open): the next requests start at the next one,
				// else every request would wait for its timeout there.
				c.current.CompareAndSwap(uint32(idx), uint32((idx+1)%n))
				return false, err
			}
		default:
			return false, err
		}
	}
	return true, err
}

// sendBatch posts the items of a batch and, while the server answers that some were not
// stored for its own sake (a 5xx carrying per-item results, items "unavailable"), sends
// those again, alone, within the client's retry bound. post sends the items at idx and
// decodes their results into out (key names the results in the body); the results of all
// n items come back in order, those still unavailable with their error.
func sendBatch[R any](ctx context.Context, c *Client, n int, key string, post func(idx []int, out *[]R) error, unavailable func(R) bool) ([]R, error) {
	res := make([]R, n)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	deadline := time.Now().Add(c.retryFor)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var out []R
		err := post(idx, &out)
		var ae *APIError
		if err != nil {
			if !errors.As(err, &ae) || ae.partial == nil {
				return nil, err
			}
			var body map[string]json.RawMessage
			if json.Unmarshal(ae.partial, &body) != nil || json.Unmarshal(body[key], &out) != nil {
				return nil, err
			}
		}
		if len(out) != len(idx) {
			return nil, fmt.Errorf("server answered %d results for %d items", len(out), len(idx))
		}
		var again []int
		for k, i := range idx {
			res[i] = out[k]
			if err != nil && unavailable(out[k]) {
				again = append(again, i)
			}
		}
		if len(again) == 0 || time.Now().Add(wait).After(deadline) {
			return res, nil
		}
		idx = again
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, nil
		case <-t.C:
		}
	}
}

func (c *Client) try(ctx context.Context, base string, r request, body []byte) error {
	if timeout := c.timeout; timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout+r.extra)
		defer cancel()
	}
	u := base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &transportError{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readAPIError(resp)
	}
	if r.out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(r.out); err != nil {
		if ctx.Err() != nil {
			return &transportError{err: err}
		}
		return fmt.Errorf("decode answer of %s %s: %w", r.method, r.path, err)
	}
	return nil
}

// readAPIError builds an *APIError from an error answer, whether or not its body has
// the API's error form (a proxy in between may answer with HTML).
func readAPIError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode}
	var eb errorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
		e.Code, e.Message, e.Field = eb.Error.Code, eb.Error.Message, eb.Error.Field
		if eb.Jobs != nil || eb.Results != nil {
			e.partial = data
		}
		return e
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		e.Code = CodeUnavailable
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > maxErrorBody {
		msg = msg[:maxErrorBody] + "..."
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e.Message = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, msg)
	return e
}

// isDialError reports whether err happened before a connection was made, so that the
// request surely did not reach the server.
func isDialError(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
}

// pathJob is the path of a job, with an optional action ("ack", "kick", ...).
func pathJob(id uint64, action string) string {
	p := fmt.Sprintf("/v1/jobs/%d", id)
	if action != "" {
		p += "/" + action
	}
	return p
}

// pathQueue is the path of a queue, with an optional action; the name is escaped as one
// path segment (queue names may hold '/').
func pathQueue(name, action string) string {
	p := "/v1/queues/" + url.PathEscape(name)
	if action != "" {
		p += "/" + action
	}
	return p
}

// checkQueue rejects an empty queue name before it turns into another route.
func checkQueue(name string) error {
	if name == "" {
		return &APIError{Code: CodeInvalidArgument, Message: "queue: must not be empty", Field: "queue"}
	}
	return nil
}
