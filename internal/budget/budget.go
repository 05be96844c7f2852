// Package budget bounds the memory that requests of every front hold at once: the bytes of
// request bodies read and not yet answered. A request that would take the total over the
// limit is refused (HTTP 503 overloaded, beanstalkd OUT_OF_MEMORY), never queued, so that a
// burst of large bodies costs a bounded amount of memory and the client retries later.
package budget

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// ErrExceeded is returned when the budget has no room for a request's bytes.
var ErrExceeded = errors.New("memory budget exceeded")

// Budget counts bytes in flight against a limit. It is safe for concurrent use. A nil
// *Budget has no limit.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// New returns a budget of limit bytes; limit <= 0 means no limit (nil).
func New(limit int64) *Budget {
	if limit <= 0 {
		return nil
	}
	return &Budget{limit: limit}
}

// TryAcquire takes n bytes if they fit, and reports whether they did.
func (b *Budget) TryAcquire(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// Release gives back n bytes taken with TryAcquire.
func (b *Budget) Release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	if b.used.Add(-n) < 0 {
		panic("budget: released more than acquired")
	}
}

// Used is the number of bytes taken now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit is the budget's limit in bytes, 0 when unlimited.
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// Reader charges the bytes read from r to the budget as they arrive, times factor (what a
// byte read costs until the request is answered, e.g. its decoded copies). A read whose
// bytes do not fit fails with ErrExceeded. Close gives back everything charged; call it once
// the request is answered and its decoded form is dropped.
type Reader struct {
	r       io.Reader
	b       *Budget
	factor  int64
	charged int64
}

// NewReader returns a Reader over r charging factor times each byte read to b.
func NewReader(b *Budget, r io.Reader, factor int64) *Reader {
	return &Reader{r: r, b: b, factor: max(factor, 1)}
}

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		c := int64(n) * r.factor
		if !r.b.TryAcquire(c) {
			return 0, ErrExceeded
		}
		r.charged += c
	}
	return n, err
}

// Charged is what the reader holds of the budget.
func (r *Reader) Charged() int64 { return r.charged }

// Close gives back what the reader charged. It does not close the underlying reader.
func (r *Reader) Close() error {
	r.b.Release(r.charged)
	r.charged = 0
	return nil
}

// ChargeBody makes the bytes of r's body charge b as they are read, factor times each, for
// a front that reads its requests' bodies whole; release gives the charge back once the
// request is answered.
func ChargeBody(b *Budget, r *http.Request, factor int64) (release func()) {
	br := NewReader(b, r.Body, factor)
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	return func() { br.Close() }
}
