package reuseport

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// setReusePort lets the socket join a reuseport group. SO_REUSEADDR goes on
// stream sockets only: on a UDP socket it would let a socket of another user
// that also sets it bind the same port, skipping the kernel's same-uid check
// that SO_REUSEPORT enforces. A listener skips it because package net has
// already set it on every TCP listener, and Linux balances any group, so
// listening needs nothing more.
func setReusePort(fd uintptr, stream, listening bool) error {
	if stream && !listening {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
		}
	}
	if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		if errors.Is(err, unix.ENOPROTOOPT) {
			return fmt.Errorf("reuseport: this kernel has no SO_REUSEPORT (Linux 3.9 or later has): %w (%w)",
				errors.ErrUnsupported, os.NewSyscallError("setsockopt SO_REUSEPORT", err))
		}
		return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
	}
	return nil
}

// probe asks the kernel rather than trusting the OS name: kernels before 3.9
// and some sandboxes refuse SO_REUSEPORT. A kernel that accepts it balances.
func probe() Capability {
	if err := probeSetReusePort(); err != nil {
		return Capability{Err: err}
	}
	return Capability{Share: true, Balance: true}
}
