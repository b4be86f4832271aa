//go:build aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd

package reuseport

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// probeSetReusePort sets this package's options on a throwaway TCP socket,
// IPv4 or else IPv6, to learn whether the kernel accepts them.
func probeSetReusePort() error {
	fd, err := probeSocket(unix.AF_INET)
	if errors.Is(err, unix.EAFNOSUPPORT) {
		fd, err = probeSocket(unix.AF_INET6)
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return setReusePort(uintptr(fd), true, true)
}

func probeSocket(family int) (int, error) {
	// Not every OS here has SOCK_CLOEXEC; the fork lock keeps the fd out
	// of a child started before CloseOnExec.
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := unix.Socket(family, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	unix.CloseOnExec(fd)
	return fd, nil
}
