//go:build aix || darwin || dragonfly || freebsd || netbsd || openbsd

package reuseport

import (
	"os"

	"golang.org/x/sys/unix"
)

// setReusePort sets SO_REUSEPORT, and on a listening socket SO_REUSEPORT_LB
// where it exists (FreeBSD 12+), which makes the kernel balance connections
// across the group rather than merely allow duplicate binds; recent FreeBSD
// refuses connect(2) on a socket that has it. SO_REUSEADDR goes on stream
// sockets only, as on Linux: on UDP it changes who may bind the port.
func setReusePort(fd uintptr, stream, listening bool) error {
	// Package net has already set SO_REUSEADDR on every TCP listener.
	if stream && !listening {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
		}
	}
	if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
	}
	if listening && soReusePortLB >= 0 {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, soReusePortLB, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEPORT_LB", err)
		}
	}
	return nil
}

func probe() Capability {
	if err := probeSetReusePort(); err != nil {
		return Capability{Err: err}
	}
	return Capability{Share: true, Balance: balances}
}
