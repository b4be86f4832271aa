//go:build aix || darwin || dragonfly || netbsd || openbsd

package reuseport

import "runtime"

// DragonFly's SO_REUSEPORT balances connections across the group by itself.
// Darwin, NetBSD and OpenBSD deliver each new connection to one socket (the
// last bound) until it closes; AIX is assumed to behave like them.
const (
	soReusePortLB = -1
	balances      = runtime.GOOS == "dragonfly"
)
