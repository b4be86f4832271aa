package handoff

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// mergeListener is a listener whose Accept also returns the connections a
// predecessor handed over (push), as if it had accepted them itself. A
// push wakes an Accept blocked in the inner listener with a deadline in
// the past.
type mergeListener struct {
	net.Listener
	deadline interface{ SetDeadline(time.Time) error }

	mu     sync.Mutex
	queue  []net.Conn
	closed bool
	woken  atomic.Bool // a push set the deadline; changed under mu
}

// newMergeListener returns ln wrapped, or nil if ln has no deadline.
func newMergeListener(ln net.Listener) *mergeListener {
	d, ok := ln.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return nil
	}
	return &mergeListener{Listener: ln, deadline: d}
}

// push queues c for Accept and reports whether it will be returned.
func (m *mergeListener) push(c net.Conn) bool {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return false
	}
	m.queue = append(m.queue, c)
	// Under m.mu, ordered with Accept's clearing of the deadline: a wake
	// set after that clear always has woken set with it.
	m.woken.Store(true)
	m.deadline.SetDeadline(aLongTimeAgo)
	m.mu.Unlock()
	return true
}

var aLongTimeAgo = time.Unix(1, 0)

func (m *mergeListener) pop() net.Conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 {
		return nil
	}
	c := m.queue[0]
	m.queue[0] = nil
	m.queue = m.queue[1:]
	return c
}

func (m *mergeListener) Accept() (net.Conn, error) {
	for {
		if c := m.pop(); c != nil {
			return c, nil
		}
		c, err := m.Listener.Accept()
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && m.unwake() {
			continue // a push woke it: look at the queue again
		}
		return c, err
	}
}

// unwake clears a wake that push set, and reports whether there was one.
// A push from then on sets it anew, after the clear.
func (m *mergeListener) unwake() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.woken.Swap(false) {
		return false
	}
	m.deadline.SetDeadline(time.Time{})
	return true
}

// Close closes the inner listener, and the handed-over connections no
// Accept returned.
func (m *mergeListener) Close() error {
	m.mu.Lock()
	m.closed = true
	q := m.queue
	m.queue = nil
	m.mu.Unlock()
	for _, c := range q {
		c.Close()
	}
	return m.Listener.Close()
}
