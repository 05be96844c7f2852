package sqs_test

import (
	"os/exec"
	"testing"
)

// The tests with the AWS SDKs for Go live in a module of their own (sqs/sdktest), which keeps
// the SDKs out of spool's dependencies. This runs them, so that the suite's one command,
// go test ./..., covers them too.
func TestAWSSDKsForGo(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: the AWS SDK tests build a module of their own")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to test sqs/sdktest: %v", err)
	}
	cmd := exec.Command(goBin, "test", "-count=1", "./...")
	cmd.Dir = "sdktest"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test in sqs/sdktest: %v\n%s", err, out)
	}
	t.Logf("sqs/sdktest:\n%s", out)
}
