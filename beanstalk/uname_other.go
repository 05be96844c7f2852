//go:build !linux

package beanstalk

import "runtime"

// uname returns Go's names of the operating system and architecture, in place of
// beanstalkd's uname(2) version and machine.
func uname() (version, machine string) { return runtime.GOOS, runtime.GOARCH }
