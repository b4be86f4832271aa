package drain

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
)

// h2Preface starts every cleartext HTTP/2 connection (RFC 9113 §3.4);
// net/http reads this much of it before it looks at the rest.
const h2Preface = "PRI * HTTP/2.0"

// busyLocked reports whether Server.Shutdown must wait for c before it
// calls http.Server.Shutdown, which would drop a request it reads on c from
// then on: c is open, and either its request may still be on its way
// (StateNew; for TLS this includes the handshake) or an HTTP/1 request is
// being handled. HTTP/2 connections need no wait once their preface is read:
// http.Server.Shutdown ends them with GOAWAY, which answers every stream the
// server has seen and tells the client to retry the others elsewhere.
func (c *conn) busyLocked() bool {
	if c.closed {
		return false
	}
	return c.state == http.StateNew || c.state == http.StateActive && !c.http2
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
	c.underTLS = nc != net.Conn(c)
	isBusy := c.busyLocked()
	open := !c.closed
	c.mu.Unlock()

	switch {
	case wasBusy && !isBusy:
		s.busy.add(-1)
	case !wasBusy && isBusy:
		s.busy.add(1)
	}
	switch state {
	case http.StateHijacked:
		// The handler owns it now; Close leaves it alone, as http.Server.Close does.
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	case http.StateClosed:
		// net/http has closed it already, unless holdClose held that back.
		if open {
			c.close()
		}
	}
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
