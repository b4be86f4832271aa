package lameduck

import (
	"errors"
	"io"
	"net"
	"os"
	"time"
)

// Release is the drain of a server that speaks a sequential protocol: one
// request at a time on a connection, each answered before the next is
// read, and nothing read beyond the request being answered (DNS over TCP,
// memcached's text protocol behind a client pool, many line protocols).
// Such a connection is idle whenever the server waits to read and has
// written since it last read: nothing it has read waits for an answer.
//
// From the moment Release is called, every connection of l is offered to
// release once it is idle: a Read the server is blocked in is woken by a
// deadline in the past (which reads nothing), and that Read, like every
// later one, first offers the connection. If release returns true, the
// connection is no longer the server's: Read returns io.EOF, so that the
// server closes it, and Write fails. If it returns false, the Read goes on
// as usual, and the connection is offered again the next time it is idle.
//
// release receives the connection the inner listener accepted. To hand it
// to another process, send a copy of its descriptor: closing this
// process's descriptor then ends nothing, as the socket lives on in the
// other process, with any bytes the client sent meanwhile. To close it,
// return true only when no bytes wait on it (see [Pending]): a request
// the client sends after that look is lost, a race no server-side close
// can avoid.
//
// Release returns at once; [Listener.Wait] waits for the connections.
func (l *Listener) Release(release func(net.Conn) bool) {
	l.mu.Lock()
	l.release = release
	// Before the snapshot: a connection accepted after it sees the flag
	// at its first Read.
	l.releasing.Store(true)
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.wake()
	}
}

// aLongTimeAgo is a deadline in the past: it wakes a blocked Read, which
// then returns os.ErrDeadlineExceeded and reads nothing.
var aLongTimeAgo = time.Unix(1, 0)

// Pending reports whether bytes wait to be read on nc, without reading
// them.
func Pending(nc net.Conn) bool { return pending(nc) }

func (l *Listener) releaser() func(net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.release
}

// wake interrupts a Read that c's server is blocked in while c is idle.
// c.mu orders it with the Read's restoring of the server's deadline, so
// that a deadline in the past never outlives its wake.
func (c *conn) wake() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inRead.Load() && !c.readSinceWrite.Load() && !c.woken.Load() {
		c.woken.Store(true)
		c.Conn.SetReadDeadline(aLongTimeAgo)
	}
}

// unwake undoes wake after the Read it woke returned, and reports whether
// there was one to undo.
func (c *conn) unwake() (woken bool, deadline time.Time) {
	if !c.woken.Load() {
		return false, time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.woken.Load() {
		return false, time.Time{}
	}
	c.woken.Store(false)
	c.Conn.SetReadDeadline(c.readDeadline)
	return true, c.readDeadline
}

// tryRelease offers c, idle, to the listener's release function, and
// reports whether c is released.
func (c *conn) tryRelease() bool {
	if c.released.Load() {
		return true
	}
	release := c.l.releaser()
	if release == nil || !release(c.Conn) {
		return false
	}
	c.released.Store(true)
	return true
}

// read is Read: the inner Read, between offers of c to a release.
func (c *conn) read(p []byte) (int, error) {
	for {
		c.inRead.Store(true)
		// After inRead is set, so that Release either sees inRead or is
		// seen here (both are sequentially consistent atomics).
		if c.l.releasing.Load() && !c.readSinceWrite.Load() && c.tryRelease() {
			c.inRead.Store(false)
			return 0, io.EOF
		}
		n, err := c.Conn.Read(p)
		c.inRead.Store(false)
		if n > 0 {
			c.readSinceWrite.Store(true)
		}
		woken, deadline := c.unwake()
		if !woken || n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return n, err // the server's own deadline has passed too
		}
		// Woken with nothing read: offer c, or read on.
	}
}

// errReleased is what Write returns on a released connection: it belongs
// to whoever release gave it to.
var errReleased = errors.New("lameduck: the connection was handed on by a drain")
