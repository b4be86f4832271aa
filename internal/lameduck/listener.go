package lameduck

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
)

// Listener wraps a [net.Listener] so that its accept loop can be stopped
// and waited for; package drain documents it as drain.Listener.
type Listener struct {
	ln  net.Listener
	srv *Server // the Server tracking its connections, or nil

	closeOnce sync.Once
	closeErr  error // set by closeOnce

	mu      sync.Mutex
	stopped bool // once true, Accept calls the inner listener no more

	// pending is what Wait waits for: 1 until Close, plus the Accept calls
	// in progress, plus the connections accepted and not yet closed.
	// Counting Accept calls in progress covers a connection that the inner
	// listener returns just as Close runs.
	pending gauge

	// unclaimed is what WaitClaimed waits for: 1 until Close, plus the
	// Accept calls in progress, plus the connections returned that the
	// server has neither used nor closed yet.
	unclaimed gauge

	// open counts the connections returned and not closed yet.
	open atomic.Int64

	// conns is the connections returned and not closed, for Release,
	// and release the function it set; both guarded by mu.
	conns     map[*conn]struct{}
	release   func(net.Conn) bool
	releasing atomic.Bool // release is set
}

var _ net.Listener = (*Listener)(nil)

// NewListener returns a Listener that accepts from ln.
func NewListener(ln net.Listener) *Listener {
	l := &Listener{ln: ln, conns: make(map[*conn]struct{})}
	l.pending.Add(1)
	l.unclaimed.Add(1)
	return l
}

// Accept returns the next connection of the inner listener, wrapped, or
// after Close an error that wraps [net.ErrClosed]. Other errors of the
// inner listener are returned as they are.
func (l *Listener) Accept() (net.Conn, error) {
	if !l.begin() {
		return nil, l.closedError()
	}
	nc, err := l.ln.Accept()
	if err != nil {
		l.end()
		if l.isStopped() {
			return nil, l.closedError()
		}
		return nil, err
	}
	return l.newConn(nc), nil
}

// Addr returns the address of the inner listener.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting and closes the inner listener, once; every call
// returns the error of the first.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		// The inner Close under l.mu: an Accept that begins meanwhile
		// waits, and returns its closed error only once the socket is
		// closed, so that a server whose Serve has returned no longer
		// listens (fasthttp's Serve returned while a dial still got in).
		l.mu.Lock()
		l.stopped = true
		l.closeErr = l.ln.Close()
		l.mu.Unlock()
		l.pending.Add(-1)
		l.unclaimed.Add(-1)
	})
	return l.closeErr
}

// Open returns how many of the connections Accept returned are not closed.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Wait waits until Close has been called, no Accept call is running, and
// every connection returned has been closed, or until ctx ends.
func (l *Listener) Wait(ctx context.Context) error { return l.pending.Wait(ctx) }

// WaitClaimed waits until Close has been called, no Accept call is
// running, and the server has read, written, set a deadline on or closed
// every connection returned, or until ctx ends.
func (l *Listener) WaitClaimed(ctx context.Context) error { return l.unclaimed.Wait(ctx) }

// begin counts an Accept call about to start, unless the listener stopped:
// a connection the inner listener returns while a drain begins is then
// counted before the drain looks.
func (l *Listener) begin() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.pending.Add(1)
	l.unclaimed.Add(1)
	if l.srv != nil {
		l.srv.busy.Add(1)
	}
	return true
}

// end uncounts an Accept call that returned no connection. One that did
// hands its count to the connection.
func (l *Listener) end() {
	l.pending.Add(-1)
	l.unclaimed.Add(-1)
	if l.srv != nil {
		l.srv.busy.Add(-1)
	}
}

func (l *Listener) isStopped() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopped
}

// closedError is what net.TCPListener.Accept returns after Close, which
// http.Server.Serve and fasthttp.Server.Serve take for the end of serving.
func (l *Listener) closedError() error {
	err := &net.OpError{Op: "accept", Addr: l.ln.Addr(), Err: net.ErrClosed}
	if err.Addr != nil {
		err.Net = err.Addr.Network()
	}
	return err
}
