package lameduck

import "net"

// pending reports whether bytes are waiting to be read on nc, or on the
// connection it wraps (through NetConn methods), without reading them: what
// the drain checks before it closes a connection it believes quiet. Go's
// sockets are non-blocking, so a peek at an empty socket fails with EAGAIN
// at once; it runs through RawConn.Control, which does not wait for a Read
// that a server has pending on the connection. Where it cannot look (not
// a socket, or not a Unix system) it reports false.
func pending(nc net.Conn) bool {
	for {
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = u.NetConn()
	}
	return peek(nc)
}
