package lameduck

import (
	"context"
	"sync"
)

// A gauge counts outstanding work and lets callers wait until there is
// none. The zero value is 0 and ready to use.
type gauge struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // made by the first waiter, closed and cleared when n reaches 0
}

// Add adds delta, which may be negative, to the count.
func (g *gauge) Add(delta int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n += delta
	if g.n == 0 && g.zero != nil {
		close(g.zero)
		g.zero = nil
	}
}

// Wait returns nil once the count is 0, or ctx.Err() if ctx ends first.
func (g *gauge) Wait(ctx context.Context) error {
	g.mu.Lock()
	if g.n == 0 {
		g.mu.Unlock()
		return nil
	}
	if g.zero == nil {
		g.zero = make(chan struct{})
	}
	zero := g.zero
	g.mu.Unlock()
	select {
	case <-zero:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
