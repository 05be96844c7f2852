//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package beanstalk

import "time"

// rusage is not available here: stats reports 0.
func rusage() (user, sys time.Duration) { return 0, 0 }
