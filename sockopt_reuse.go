//go:build aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd

package reuseport

import (
	"os"

	"golang.org/x/sys/unix"
)

// setReusePort lets the socket join a reuseport group: SO_REUSEPORT, and on
// a listening socket SO_REUSEPORT_LB where the OS has it (FreeBSD 12+),
// which makes the kernel balance connections across the group rather than
// merely allow duplicate binds; recent FreeBSD refuses connect(2) on a
// socket that has it.
//
// SO_REUSEADDR goes on stream sockets only: on a UDP socket it would let a
// socket of another user that also sets it bind the same port, skipping the
// kernel's same-uid check that SO_REUSEPORT enforces. A listener skips it
// because package net has already set it on every TCP listener.
func setReusePort(fd uintptr, stream, listening bool) error {
	if stream && !listening {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
		}
	}
	if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return reusePortError(err)
	}
	if listening && soReusePortLB >= 0 {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, soReusePortLB, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEPORT_LB", err)
		}
	}
	return nil
}

// probe asks the kernel rather than trusting the OS name: old kernels and
// some sandboxes refuse SO_REUSEPORT.
func probe() Capability {
	if err := probeSetReusePort(); err != nil {
		return Capability{Err: err}
	}
	return Capability{Share: true, Balance: balances}
}
