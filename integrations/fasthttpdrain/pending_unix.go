//go:build unix

package fasthttpdrain

import (
	"net"
	"syscall"
)

// pendingInput reports whether bytes are waiting to be read on nc, or on the
// connection it wraps, without reading them. Go's sockets are non-blocking,
// so a peek at an empty socket fails with EAGAIN at once; RawConn.Control
// does not wait for the Read fasthttp has pending on an idle connection.
func pendingInput(nc net.Conn) bool {
	for {
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = u.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	pending := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		pending = err == nil && n > 0
	})
	return pending
}
