package lameduck

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// conn is a connection returned by a Listener. It tells the listener, and
// the Server if there is one, when it is used and when it closes.
type conn struct {
	net.Conn
	l   *Listener
	key net.Addr // its key in Server.byAddr, or nil

	// claimed is set once the server has used the connection (any I/O or
	// deadline) or closed it; see Listener.WaitClaimed.
	claimed atomic.Bool

	mu     sync.Mutex
	closed bool // the inner connection has been closed

	// What the Server learns of the connection.
	state       State // last state reported; New is the zero value
	classified  bool  // multiplexed is known
	multiplexed bool
	idleAt      time.Time // when it last went quiet (Server.quietState)
	sniffing    atomic.Bool
	head        [MaxSniff]byte // the first bytes read, while sniffing
	headLen     int

	// idleGen changes whenever the state does, and when bytes arrive on
	// the connection while it may be quiet, so that a close scheduled for
	// one quiet spell never hits a connection that has since been used.
	idleGen   atomic.Uint64
	watchIdle atomic.Bool // Read bumps idleGen

	// What Listener.Release needs to know of a sequential protocol.
	inRead         atomic.Bool // the server is in Read
	readSinceWrite atomic.Bool // it has read bytes since it last wrote
	woken          atomic.Bool // Release woke its Read; c.mu orders changes
	released       atomic.Bool // handed to the release function
	readDeadline   time.Time   // the server's own; guarded by c.mu
}

var (
	_ io.ReaderFrom = (*conn)(nil)
	_ io.WriterTo   = (*conn)(nil)
)

func (l *Listener) newConn(nc net.Conn) *conn {
	c := &conn{Conn: nc, l: l}
	l.open.Add(1)
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	if s := l.srv; s != nil {
		if s.cfg.Sniff > 0 {
			c.sniffing.Store(true)
		}
		// New is its state until the library reports one, a moment after
		// Accept returns; if that is quiet, its grace counts from now, not
		// from the zero time, should a drain begin in that moment.
		c.idleAt = time.Now()
		c.watchIdle.Store(s.quietState(New))
		s.track(c)
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
	if c.released.Load() {
		return 0, c.opError("write", errReleased)
	}
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.readSinceWrite.Store(false)
	}
	return n, err
}

func (c *conn) SetDeadline(t time.Time) error {
	c.claim()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	if c.woken.Load() {
		// Keep the wake; the woken Read puts t in place.
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.claim()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	if c.woken.Load() {
		return nil // the woken Read puts t in place
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.claim()
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) Read(p []byte) (int, error) {
	c.claim()
	n, err := c.read(p)
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
			s.forget(c)
			if wasBusy {
				s.busy.Add(-1)
			}
		}
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.pending.Add(-1)
		c.l.open.Add(-1)
	}
	return err
}

// ReadFrom keeps sendfile(2) and splice(2) for the server's file responses
// and io.Copy.
func (c *conn) ReadFrom(r io.Reader) (n int64, err error) {
	c.claim()
	if c.released.Load() {
		return 0, c.opError("write", errReleased)
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.Conn}, r)
	}
	if n > 0 {
		c.readSinceWrite.Store(false)
	}
	return n, err
}

// WriteTo keeps splice(2) for io.Copy from the connection.
func (c *conn) WriteTo(w io.Writer) (n int64, err error) {
	c.claim()
	if c.released.Load() {
		return 0, nil // EOF
	}
	// Not a sequential protocol's way of reading; never idle meanwhile.
	c.readSinceWrite.Store(true)
	if wt, ok := c.Conn.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c.Conn})
}

// CloseWrite lets http.Server half-close a connection before it closes it,
// so that the client reads the response rather than a reset.
func (c *conn) CloseWrite() error {
	c.claim()
	if c.released.Load() {
		return c.opError("close", errReleased)
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.opError("close", errors.ErrUnsupported)
}

func (c *conn) opError(op string, err error) error {
	e := &net.OpError{Op: op, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	if e.Source != nil {
		e.Net = e.Source.Network()
	}
	return e
}

// sniff keeps the first bytes read, for Config.Multiplexed and
// Config.QuietNew.
func (c *conn) sniff(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	want := c.l.srv.cfg.Sniff
	c.headLen += copy(c.head[c.headLen:want], p)
	if c.headLen == want {
		c.sniffing.Store(false)
	}
}

// busyLocked reports whether a drain must wait for c before the library's
// own shutdown, which would drop a request it reads on c from then on, and
// close c at once if it is idle: c is open, and either its request may
// still be on its way (New; for TLS this includes the handshake) or its
// protocol is not multiplexed, so that its only way to say "no more
// requests here" is a response that closes it.
func (c *conn) busyLocked() bool {
	if c.closed {
		return false
	}
	switch c.state {
	case New:
		return true
	case Active, Idle:
		return !c.multiplexed
	}
	return false
}

// quietLocked reports whether c has no request in progress and nothing on
// its way that the server has seen: idle in keep-alive and not
// multiplexed, or, with Config.QuietNew, accepted and silent since.
func (c *conn) quietLocked() bool {
	if c.closed {
		return false
	}
	switch c.state {
	case Idle:
		return !c.multiplexed
	case New:
		return c.l.srv.cfg.QuietNew && c.headLen == 0
	}
	return false
}

// setState records a state the library reported for c; nc is the
// connection it reported it for, c itself or a wrapper around c.
func (c *conn) setState(nc net.Conn, state State) {
	s := c.l.srv
	var classify bool
	var head [MaxSniff]byte
	if s.cfg.Multiplexed != nil && (state == Active || state == Idle) {
		c.mu.Lock()
		classify, head = !c.classified, c.head
		c.mu.Unlock()
	}
	var multiplexed bool
	if classify {
		// Outside c.mu: a TLS connection's ConnectionState takes the TLS
		// locks, which a Read holds when it calls c.Read.
		multiplexed = s.cfg.Multiplexed(nc, head)
	}

	quiet := s.quietState(state)
	c.mu.Lock()
	wasBusy := c.busyLocked()
	if classify {
		c.classified, c.multiplexed = true, multiplexed
		c.sniffing.Store(false)
	}
	c.state = state
	c.idleGen.Add(1)
	c.watchIdle.Store(quiet)
	if quiet {
		c.idleAt = time.Now()
	}
	isBusy := c.busyLocked()
	open := !c.closed
	c.mu.Unlock()

	switch {
	case wasBusy && !isBusy:
		s.busy.Add(-1)
	case !wasBusy && isBusy:
		s.busy.Add(1)
	}
	switch {
	case quiet:
		if s.draining.Load() {
			c.scheduleReap()
		}
	case state == Hijacked:
		// The handler owns it now; CloseConns leaves it alone, as
		// http.Server.Close does.
		s.forget(c)
	case state == Closed && open:
		// The library has closed it already, through c.Close or through
		// a wrapper around c; make sure.
		c.close()
	}
}

// scheduleReap arranges for c to be closed once it has been quiet for the
// server's grace, if it is quiet now and stays so. Drain calls it for every
// connection when it begins, and setState for every one that goes quiet
// after that.
func (c *conn) scheduleReap() {
	c.mu.Lock()
	quiet := c.quietLocked()
	due, gen := c.idleAt.Add(c.l.srv.grace), c.idleGen.Load()
	c.mu.Unlock()
	if quiet {
		time.AfterFunc(time.Until(due), func() { c.reap(gen) })
	}
}

// reap closes c if no bytes of a request are waiting on it and it is still
// in the quiet spell numbered gen. It looks at the socket first, so that
// bytes the server reads in between bump gen before gen is compared. A
// request the client sends from the look on, before it sees c close, is
// lost: the race that the drain's documentation describes.
func (c *conn) reap(gen uint64) {
	if pending(c.Conn) {
		// Being used: the server reads the request and answers it with
		// "Connection: close".
		return
	}
	c.mu.Lock()
	quiet := c.quietLocked() && c.idleGen.Load() == gen
	c.mu.Unlock()
	if quiet {
		c.close()
	}
}
