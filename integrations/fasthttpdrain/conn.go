package fasthttpdrain

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/b93f8b21/reuseport/internal/peek"
)

// listener wraps the listener given to Serve, so that the Server learns of
// every connection accepted and can stop accepting.
type listener struct {
	ln  net.Listener
	srv *Server

	closeOnce sync.Once
	closeErr  error // set by closeOnce

	mu      sync.Mutex
	stopped bool // once true, Accept calls the inner listener no more
}

func (l *listener) Accept() (net.Conn, error) {
	if !l.begin() {
		return nil, l.closedError()
	}
	nc, err := l.ln.Accept()
	if err != nil {
		l.srv.busy.Add(-1)
		if l.isStopped() {
			return nil, l.closedError()
		}
		return nil, err
	}
	c := &conn{Conn: nc, srv: l.srv, open: true}
	l.srv.track(c)
	return c, nil
}

// Close closes the inner listener once; every call returns the result of
// the first.
func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
		l.closeErr = l.ln.Close()
	})
	return l.closeErr
}

func (l *listener) Addr() net.Addr { return l.ln.Addr() }

// begin counts an Accept call about to start, unless the listener stopped:
// a connection the inner listener returns while Shutdown begins is then
// counted before Shutdown looks.
func (l *listener) begin() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.srv.busy.Add(1)
	return true
}

func (l *listener) isStopped() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopped
}

// closedError is what net.TCPListener.Accept returns after Close, which
// fasthttp.Server.Serve takes for the end of serving.
func (l *listener) closedError() error {
	err := &net.OpError{Op: "accept", Addr: l.ln.Addr(), Err: net.ErrClosed}
	if err.Addr != nil {
		err.Net = err.Addr.Network()
	}
	return err
}

// conn is a connection the listener accepted. It tells the Server when it
// closes, and when bytes arrive on it while it is idle.
type conn struct {
	net.Conn
	srv *Server
	key net.Addr // its key in srv.byAddr, or nil

	mu     sync.Mutex
	open   bool               // neither closed nor hijacked: counted in srv.busy
	state  fasthttp.ConnState // last state reported; StateNew is the zero value
	idleAt time.Time          // when it last went idle (StateIdle)

	// idleGen changes whenever the state does, and when bytes arrive on
	// the connection while it is idle, so that a close scheduled for one
	// idle spell never hits a connection that has since been used.
	idleGen   atomic.Uint64
	watchIdle atomic.Bool // in StateIdle: Read bumps idleGen
}

var _ io.ReaderFrom = (*conn)(nil)

// NetConn returns the connection the inner listener accepted.
func (c *conn) NetConn() net.Conn { return c.Conn }

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.watchIdle.Load() {
		c.idleGen.Add(1)
	}
	return n, err
}

// ReadFrom keeps sendfile(2) for fasthttp's file responses.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *conn) Close() error { return c.close() }

func (c *conn) close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// release stops counting c, once: it has closed or been hijacked.
func (c *conn) release() {
	c.mu.Lock()
	wasOpen := c.open
	c.open = false
	c.mu.Unlock()
	if wasOpen {
		c.srv.untrack(c)
	}
}

// setState records a state fasthttp reported for c.
func (c *conn) setState(state fasthttp.ConnState) {
	c.mu.Lock()
	if !c.open {
		c.mu.Unlock()
		return
	}
	c.state = state
	c.idleGen.Add(1)
	c.watchIdle.Store(state == fasthttp.StateIdle)
	if state == fasthttp.StateIdle {
		c.idleAt = time.Now()
	}
	c.mu.Unlock()

	switch state {
	case fasthttp.StateIdle:
		if c.srv.draining.Load() {
			c.scheduleReap()
		}
	case fasthttp.StateHijacked:
		// The handler owns it now; Close leaves it alone.
		c.release()
	case fasthttp.StateClosed:
		// fasthttp has closed it already; make sure.
		c.close()
	}
}

// scheduleReap arranges for c to be closed once it has been idle for the
// server's grace, if it is idle in keep-alive now and stays so. The drain
// calls it for every connection when it begins, and setState for every
// one that goes idle after that.
func (c *conn) scheduleReap() {
	c.mu.Lock()
	idle := c.open && c.state == fasthttp.StateIdle
	due, gen := c.idleAt.Add(c.srv.grace), c.idleGen.Load()
	c.mu.Unlock()
	if idle {
		time.AfterFunc(time.Until(due), func() { c.reap(gen) })
	}
}

// reap closes c if no bytes of a request are waiting on it and it is still
// in the idle spell numbered gen. It looks at the socket first, so that
// bytes fasthttp reads in between bump gen before gen is compared. A
// request the client sends from the look on, before it sees c close, is
// lost: the race in the package documentation.
func (c *conn) reap(gen uint64) {
	if peek.Pending(c.Conn) {
		// Being used: fasthttp reads the request and answers it with
		// "Connection: close".
		return
	}
	c.mu.Lock()
	idle := c.open && c.state == fasthttp.StateIdle && c.idleGen.Load() == gen
	c.mu.Unlock()
	if idle {
		c.close()
	}
}
