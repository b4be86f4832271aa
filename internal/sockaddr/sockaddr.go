// Package sockaddr holds what package reuseport and package handoff share
// about the sockets they make, whichever kind they are.
package sockaddr

import "net"

// Local is the local address of s: Addr of a [net.Listener], LocalAddr of
// a [net.PacketConn], and nil for anything else.
func Local(s any) net.Addr {
	switch s := s.(type) {
	case net.Listener:
		return s.Addr()
	case net.PacketConn:
		return s.LocalAddr()
	}
	return nil
}
