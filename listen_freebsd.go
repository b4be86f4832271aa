package reuseport

import "golang.org/x/sys/unix"

// FreeBSD's SO_REUSEPORT only permits duplicate binds; SO_REUSEPORT_LB puts
// the socket in a load-balancing group (FreeBSD 12 and later).
const (
	soReusePortLB = unix.SO_REUSEPORT_LB
	balances      = true
)
