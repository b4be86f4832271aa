package reuseport

import "golang.org/x/sys/unix"

// FreeBSD's SO_REUSEPORT only permits duplicate binds; SO_REUSEPORT_LB puts
// the socket in a load-balancing group (FreeBSD 12 and later, at most 256
// sockets a group). FreeBSD never adds a dual-stack IPv6 wildcard socket to
// such a group: listen on "tcp4"/"tcp6" or a specific address to balance.
const (
	soReusePortLB = unix.SO_REUSEPORT_LB
	balances      = true
)
