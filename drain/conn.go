package drain

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// conn is a connection returned by a Listener. It tells the listener, and
// the Server if there is one, when it closes.
type conn struct {
	net.Conn
	l *Listener

	// claimed is set once the server has used the connection (any I/O or
	// deadline) or closed it; see Listener.WaitClaimed.
	claimed atomic.Bool

	mu     sync.Mutex
	closed bool // the inner connection has been closed

	// What a Server learns of the connection; see httpconn.go.
	state      http.ConnState // last state reported; StateNew is the zero value
	classified bool           // http2 is known
	http2      bool
	idleAt     time.Time // when it last went idle (StateIdle)
	sniffing   atomic.Bool
	head       [len(h2Preface)]byte // the first bytes read, while sniffing
	headLen    int

	// idleGen changes whenever the state does, and when bytes arrive on
	// the connection while it is idle, so that a close scheduled for one
	// idle spell never hits a connection that has since been used.
	idleGen   atomic.Uint64
	watchIdle atomic.Bool // in StateIdle: Read bumps idleGen
}

var (
	_ io.ReaderFrom = (*conn)(nil)
	_ io.WriterTo   = (*conn)(nil)
)

func (l *Listener) newConn(nc net.Conn) *conn {
	c := &conn{Conn: nc, l: l}
	if l.srv != nil {
		c.sniffing.Store(true)
		l.srv.track(c)
	}
	return c
}

// NetConn returns the connection the inner listener accepted.
func (c *conn) NetConn() net.Conn { return c.Conn }

// claim marks the connection as taken up by the server, once.
func (c *conn) claim() {
	if !c.claimed.Load() && c.claimed.CompareAndSwap(false, true) {
		c.l.unclaimed.Add(-1)
	}
}

func (c *conn) Write(p []byte) (int, error) {
	c.claim()
	return c.Conn.Write(p)
}

func (c *conn) SetDeadline(t time.Time) error {
	c.claim()
	return c.Conn.SetDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.claim()
	return c.Conn.SetReadDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.claim()
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) Read(p []byte) (int, error) {
	c.claim()
	n, err := c.Conn.Read(p)
	if n > 0 {
		if c.watchIdle.Load() {
			c.idleGen.Add(1)
		}
		if c.sniffing.Load() {
			c.sniff(p[:n])
		}
	}
	return n, err
}

func (c *conn) Close() error { return c.close() }

func (c *conn) close() error {
	c.claim()
	err := c.Conn.Close()
	c.mu.Lock()
	first, wasBusy := !c.closed, c.busyLocked()
	c.closed = true
	c.mu.Unlock()
	if first {
		if s := c.l.srv; s != nil {
			s.untrack(c, wasBusy)
		}
		c.l.pending.Add(-1)
	}
	return err
}

// ReadFrom keeps sendfile(2) and splice(2) for http.ServeContent and io.Copy.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	c.claim()
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// WriteTo keeps splice(2) for io.Copy from the connection.
func (c *conn) WriteTo(w io.Writer) (int64, error) {
	c.claim()
	if wt, ok := c.Conn.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c.Conn})
}

// CloseWrite lets http.Server half-close a connection before it closes it,
// so that the client reads the response rather than a reset.
func (c *conn) CloseWrite() error {
	c.claim()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	err := &net.OpError{Op: "close", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errors.ErrUnsupported}
	if err.Source != nil {
		err.Net = err.Source.Network()
	}
	return err
}
