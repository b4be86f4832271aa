//go:build !unix

package fasthttpdrain

import "net"

// pendingInput cannot peek at a socket here; reap relies on the idle
// spell's number alone.
func pendingInput(net.Conn) bool { return false }
