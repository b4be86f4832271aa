package drain

import (
	"context"
	"net"
	"sync"

	"github.com/b93f8b21/reuseport/internal/gauge"
)

// Listener wraps a [net.Listener] so that an accept loop can be drained:
// [Listener.Stop] ends accepting, and [Listener.Wait] waits for the
// connections already accepted to be closed.
//
// The connections it returns wrap those of the inner listener; their
// NetConn method returns the original. They keep the inner connection's
// ReadFrom, WriteTo and CloseWrite, so sendfile and splice still apply.
//
// For an [http.Server] use [Server], which knows when a connection has had
// its response; Listener only knows when a connection is closed.
type Listener struct {
	ln  net.Listener
	srv *Server // the Server serving through this listener, or nil

	stopOnce sync.Once
	closeErr error // set by stopOnce

	mu      sync.Mutex
	stopped bool // once true, Accept calls the inner listener no more

	// pending is what Wait waits for: 1 until Stop, plus the Accept calls
	// in progress, plus the connections accepted and not yet closed.
	// Counting Accept calls in progress covers a connection that the inner
	// listener returns just as Stop runs.
	pending gauge.Gauge

	// unclaimed is what WaitClaimed waits for: 1 until Stop, plus the
	// Accept calls in progress, plus the connections returned that the
	// server has neither used nor closed yet.
	unclaimed gauge.Gauge
}

var _ net.Listener = (*Listener)(nil)

// NewListener returns a Listener that accepts from ln.
func NewListener(ln net.Listener) *Listener {
	l := &Listener{ln: ln}
	l.pending.Add(1)
	l.unclaimed.Add(1)
	return l
}

// Accept waits for and returns the next connection. After Stop or Close it
// returns an error that wraps [net.ErrClosed]. An Accept already waiting in
// the inner listener when Stop runs may still return a connection the kernel
// handed over at that instant: serve it, its client is waiting.
//
// Other errors of the inner listener are returned as they are, so a caller
// such as [http.Server.Serve] still backs off on temporary ones (EMFILE).
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

// Stop stops accepting: a pending Accept returns, and later ones fail. It
// closes this listener's descriptor and never calls shutdown(2), so a socket
// that another process (or another descriptor in this one) also holds keeps
// listening, and the connections waiting in its queue go to that holder.
// If no one else holds the socket, closing it resets its queue, as closing
// any listener does. Stop is safe to call more than once and concurrently.
func (l *Listener) Stop() { l.Close() }

// Close is [Listener.Stop] returning the error of closing the inner
// listener. Every call returns the result of the first.
func (l *Listener) Close() error {
	l.stopOnce.Do(func() {
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
		l.closeErr = l.ln.Close()
		l.pending.Add(-1)
		l.unclaimed.Add(-1)
	})
	return l.closeErr
}

// Wait blocks until the listener has drained: Stop or Close has been called,
// no Accept call is still running, and every connection it returned has
// been closed. If ctx ends first, Wait returns ctx.Err() and leaves the
// connections alone.
func (l *Listener) Wait(ctx context.Context) error { return l.pending.Wait(ctx) }

// WaitClaimed blocks until Stop or Close has been called, no Accept call is
// still running, and the server has taken up every connection Accept
// returned: it has read, written, set a deadline on or closed it (asking
// for its addresses does not count). If ctx ends first, WaitClaimed
// returns ctx.Err().
//
// It is the barrier between Stop and a server's own graceful stop. A
// server's accept loop hands each connection to a goroutine of its own,
// and a graceful stop that begins before that goroutine has registered the
// connection may drop it unanswered: grpc-go's GracefulStop closes such a
// connection without a word. Once WaitClaimed returns, every connection
// has reached the code that serves it. A server that holds an accepted
// connection unused for a while (a queue for a worker pool) holds
// WaitClaimed as long.
func (l *Listener) WaitClaimed(ctx context.Context) error { return l.unclaimed.Wait(ctx) }

// begin counts an Accept call about to start, unless the listener stopped.
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

// closedError is what net.TCPListener.Accept returns after Close.
func (l *Listener) closedError() error {
	err := &net.OpError{Op: "accept", Addr: l.ln.Addr(), Err: net.ErrClosed}
	if err.Addr != nil {
		err.Net = err.Addr.Network()
	}
	return err
}
