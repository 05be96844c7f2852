package spool_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spoolq/spool"
	"github.com/spoolq/spool/internal/testcert"
)

func TestTLSConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testcert.NewCA(t, "CA")
	caFile := ca.WriteCA(t, dir, "ca")
	cert, key := ca.Issue(t, "client").Write(t, dir, "client")
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := spool.TLSConfig(caFile, cert, key)
	if err != nil || conf.RootCAs == nil || len(conf.Certificates) != 1 || conf.MinVersion == 0 {
		t.Fatalf("TLSConfig: %+v, %v", conf, err)
	}
	for _, args := range [][3]string{
		{filepath.Join(dir, "missing"), "", ""},
		{junk, "", ""},
		{caFile, cert, ""},
		{caFile, "", key},
		{caFile, cert, caFile},
	} {
		if _, err := spool.TLSConfig(args[0], args[1], args[2]); err == nil {
			t.Errorf("TLSConfig%q: no error", args)
		}
	}
}
