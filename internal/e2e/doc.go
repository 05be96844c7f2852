// Package e2e holds end-to-end tests of the Go client (package spool) against a real
// spool server started in-process. It has no code of its own: the tests live here so that
// the client package does not depend on the server.
package e2e
