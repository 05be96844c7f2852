package spool_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/spooltest"
	"github.com/spoolq/spool/internal/testcert"
	"github.com/spoolq/spool/server"
)

// startSecureServer starts, for ExampleWithToken, a server with TLS and a bootstrap admin
// token, and sets $SPOOL_SECURE_SERVER, $SPOOL_CA_FILE and $SPOOL_ADMIN_TOKEN as an operator
// would hand them to a program.
func startSecureServer() (stop func(), err error) {
	dir, err := os.MkdirTemp("", "spool-secure-")
	if err != nil {
		return nil, err
	}
	t := testcert.Panicker{}
	ca := testcert.NewCA(t, "example CA")
	cert, key := ca.Issue(t, "spool").Write(t, dir, "spool")
	caFile := ca.WriteCA(t, dir, "ca")
	const admin = "example-admin-token-0123456789"
	srv, err := spooltest.Run(dir+"/data", func(c *server.Config) { c.TLSCert, c.TLSKey, c.AdminToken = cert, key, admin })
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	os.Setenv("SPOOL_SECURE_SERVER", "https://"+srv.Addrs.HTTP)
	os.Setenv("SPOOL_CA_FILE", caFile)
	os.Setenv("SPOOL_ADMIN_TOKEN", admin)
	return func() { srv.Stop(); os.RemoveAll(dir) }, nil
}

// Talk to a server with TLS and API tokens: an admin makes a token that may only enqueue
// into the email queues, and a producer uses it.
func ExampleWithToken() {
	ctx := context.Background()
	// The CA that signed the server's certificate ("" trusts the system's roots); with mutual
	// TLS, also the client's certificate and key files.
	tlsConf, err := spool.TLSConfig(os.Getenv("SPOOL_CA_FILE"), "", "")
	if err != nil {
		log.Fatal(err)
	}
	url := os.Getenv("SPOOL_SECURE_SERVER") // https://...
	admin, err := spool.NewClient(url, spool.WithTLSConfig(tlsConf), spool.WithToken(os.Getenv("SPOOL_ADMIN_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, "web app", []spool.Grant{{Queues: "email*", Perms: []string{spool.PermEnqueue}}})
	if err != nil {
		log.Fatal(err)
	}

	// tok.Secret is shown this once: hand it to the producer (e.g. as $SPOOL_TOKEN).
	producer, err := spool.NewClient(url, spool.WithTLSConfig(tlsConf), spool.WithToken(tok.Secret))
	if err != nil {
		log.Fatal(err)
	}
	job, err := producer.Enqueue(ctx, "email", "email.send", map[string]string{"to": "a@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("enqueued:", job.State)

	_, err = producer.Enqueue(ctx, "billing", "invoice", nil)
	var apiErr *spool.APIError
	if errors.As(err, &apiErr) {
		fmt.Println("billing:", apiErr.Status, apiErr.Code)
	}
	_, err = producer.Stats(ctx) // statistics need the read permission
	if errors.As(err, &apiErr) {
		fmt.Println("stats:", apiErr.Status, apiErr.Code)
	}
	// Output:
	// enqueued: ready
	// billing: 403 forbidden
	// stats: 403 forbidden
}
