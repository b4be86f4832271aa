package drain

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/b93f8b21/reuseport/internal/peek"
)

// h2Preface starts every cleartext HTTP/2 connection (RFC 9113 §3.4);
// net/http reads this much of it before it looks at the rest.
const h2Preface = "PRI * HTTP/2.0"

// busyLocked reports whether Server.Shutdown must wait for c before it
// calls http.Server.Shutdown, which would drop a request it reads on c from
// then on, and close c at once if it is idle: c is open, and either its
// request may still be on its way (StateNew; for TLS this includes the
// handshake) or it speaks HTTP/1, whose only way to say "no more requests
// here" is to answer one with "Connection: close" (see Server.Shutdown).
// HTTP/2 connections need no wait once their preface is read:
// http.Server.Shutdown ends them with GOAWAY, which answers every stream the
// server has seen and tells the client to retry the others elsewhere.
func (c *conn) busyLocked() bool {
	if c.closed {
		return false
	}
	return c.state == http.StateNew || !c.http2 && (c.state == http.StateActive || c.state == http.StateIdle)
}

// sniff keeps the first bytes read, for isHTTP2.
func (c *conn) sniff(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.headLen += copy(c.head[c.headLen:], p)
	if c.headLen == len(c.head) {
		c.sniffing.Store(false)
	}
}

// setState records a state the http.Server reported for c; nc is the
// connection it reported it for, c itself or a *tls.Conn around it.
func (c *conn) setState(nc net.Conn, state http.ConnState) {
	s := c.l.srv
	c.mu.Lock()
	classify := !c.classified && (state == http.StateActive || state == http.StateIdle)
	head := c.head
	c.mu.Unlock()
	var h2 bool
	if classify {
		// Outside c.mu: ConnectionState takes the TLS locks, which a Read
		// holds when it calls c.Read.
		h2 = isHTTP2(nc, head[:])
	}

	c.mu.Lock()
	wasBusy := c.busyLocked()
	if classify {
		c.classified, c.http2 = true, h2
		c.sniffing.Store(false)
	}
	c.state = state
	c.idleGen.Add(1)
	c.watchIdle.Store(state == http.StateIdle || state == http.StateNew)
	if state == http.StateIdle || state == http.StateNew {
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
	switch state {
	case http.StateNew, http.StateIdle:
		if s.draining.Load() {
			c.scheduleReap()
		}
	case http.StateHijacked:
		// The handler owns it now; Close leaves it alone, as http.Server.Close does.
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	case http.StateClosed:
		// net/http has closed it already, through c.Close or, for TLS,
		// through the *tls.Conn around c; make sure.
		if open {
			c.close()
		}
	}
}

// quietLocked reports whether c has no request in progress and nothing
// on its way that the server has seen: an HTTP/1 connection idle in
// keep-alive, or one accepted that has not sent a byte. Clients keep both
// kinds in their pools (Go's http.Transport keeps connections it dialed
// and did not need) and may send a request on them at any time.
func (c *conn) quietLocked() bool {
	if c.closed {
		return false
	}
	return !c.http2 && c.state == http.StateIdle || c.state == http.StateNew && c.headLen == 0
}

// scheduleReap arranges for c to be closed once it has been quiet for the
// server's grace, if it is quiet now and stays so. Server.Shutdown calls
// it for every connection when the drain begins, and setState for every
// one that goes quiet after that.
func (c *conn) scheduleReap() {
	c.mu.Lock()
	quiet := c.quietLocked()
	due, gen := c.idleAt.Add(c.l.srv.grace), c.idleGen.Load()
	c.mu.Unlock()
	if quiet {
		time.AfterFunc(time.Until(due), func() { c.reap(gen) })
	}
}

// reap closes c if it is still in the quiet spell numbered gen and no
// bytes of a request are waiting on it. A request the client sends from
// now on, before it sees c close, is lost: the race in the package docs.
func (c *conn) reap(gen uint64) {
	c.mu.Lock()
	quiet := c.quietLocked() && c.idleGen.Load() == gen
	c.mu.Unlock()
	if !quiet || peek.Pending(c.Conn) {
		// Being used: net/http reads the request and answers it with
		// "Connection: close".
		return
	}
	c.close()
}

// isHTTP2 tells an HTTP/2 connection from an HTTP/1 one once net/http has
// read from it. For TLS the handshake has settled it; in cleartext only
// HTTP/2 starts with its preface.
func isHTTP2(nc net.Conn, head []byte) bool {
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState().NegotiatedProtocol == "h2"
	}
	return bytes.Equal(head, []byte(h2Preface))
}
