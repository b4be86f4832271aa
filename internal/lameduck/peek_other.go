//go:build !unix

package lameduck

import "net"

func peek(net.Conn) bool { return false }
