package drain

import (
	"context"
	"net"

	"github.com/b93f8b21/reuseport/internal/lameduck"
)

// Listener wraps a [net.Listener] so that an accept loop can be drained:
// [Listener.Close] ends accepting, and [Listener.Wait] waits for the
// connections already accepted to be closed.
//
// The connections it returns wrap those of the inner listener; their
// NetConn method returns the original. They keep the inner connection's
// ReadFrom, WriteTo and CloseWrite, so sendfile and splice still apply.
//
// For an [http.Server] use [Server], which knows when a connection has had
// its response; Listener only knows when a connection is closed.
type Listener struct {
	l *lameduck.Listener
}

var _ net.Listener = (*Listener)(nil)

// NewListener returns a Listener that accepts from ln.
func NewListener(ln net.Listener) *Listener {
	return &Listener{lameduck.NewListener(ln)}
}

// Accept waits for and returns the next connection. After Close it returns
// an error that wraps [net.ErrClosed]. An Accept already waiting in the
// inner listener when Close runs may still return a connection the kernel
// handed over at that instant: serve it, its client is waiting.
//
// Other errors of the inner listener are returned as they are, so a caller
// such as [http.Server.Serve] still backs off on temporary ones (EMFILE).
func (l *Listener) Accept() (net.Conn, error) { return l.l.Accept() }

// Addr returns the address of the inner listener.
func (l *Listener) Addr() net.Addr { return l.l.Addr() }

// Close stops accepting: a pending Accept returns, and later ones fail. It
// closes this listener's descriptor and never calls shutdown(2), so a socket
// that another process (or another descriptor in this one) also holds keeps
// listening, and the connections waiting in its queue go to that holder.
// If no one else holds the socket, closing it resets its queue, as closing
// any listener does. Close is safe to call more than once and concurrently;
// every call returns the error of the first.
func (l *Listener) Close() error { return l.l.Close() }

// Wait blocks until the listener has drained: Close has been called, no
// Accept call is still running, and every connection it returned has been
// closed. If ctx ends first, Wait returns ctx.Err() and leaves the
// connections alone.
func (l *Listener) Wait(ctx context.Context) error { return l.l.Wait(ctx) }

// WaitClaimed blocks until Close has been called, no Accept call is still
// running, and the server has taken up every connection Accept returned:
// it has read, written, set a deadline on or closed it (asking for its
// addresses does not count). If ctx ends first, WaitClaimed returns
// ctx.Err().
//
// It is the barrier between Close and a server's own graceful stop. A
// server's accept loop hands each connection to a goroutine of its own,
// and a graceful stop that begins before that goroutine has registered the
// connection may drop it unanswered: grpc-go's GracefulStop closes such a
// connection without a word. Once WaitClaimed returns, every connection
// has reached the code that serves it. A server that holds an accepted
// connection unused for a while (a queue for a worker pool) holds
// WaitClaimed as long.
func (l *Listener) WaitClaimed(ctx context.Context) error { return l.l.WaitClaimed(ctx) }
