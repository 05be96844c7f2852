// Package testlog holds what tests share to read what a server logged or a command printed.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that a logger's (or a child process's) goroutines and a test can
// use at once.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
