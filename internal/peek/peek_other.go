//go:build !unix

package peek

import "net"

func pending(net.Conn) bool { return false }
