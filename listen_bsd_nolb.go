//go:build aix || darwin || dragonfly || netbsd || openbsd

package reuseport

import "runtime"

// DragonFly's SO_REUSEPORT balances connections across the group by itself
// (since 3.6). Darwin, NetBSD and OpenBSD deliver each new connection to one
// socket of the group until it closes: on Darwin the oldest of wildcard
// binds and the newest of specific-address binds, on the others the newest.
// AIX balances only once an administrator sets `no -o soreuseport_lb=1`
// (7.2.5 and later), which a process cannot see or rely on.
const (
	soReusePortLB = -1
	balances      = runtime.GOOS == "dragonfly"
)
