//go:build !unix

package server

import (
	"fmt"
	"os"
)

// lockDataDir only creates dir: flock(2) is not available on this system, so two servers
// on one data folder are not detected here.
func lockDataDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	return func() {}, nil
}
