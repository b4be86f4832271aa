package handoff

import (
	"os"

	"golang.org/x/sys/unix"
)

// peerUID returns the effective uid of the process at the other end of a
// connected unix socket, as the kernel recorded it at connect or listen.
func peerUID(fd int) (int, error) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return -1, os.NewSyscallError("getsockopt SO_PEERCRED", err)
	}
	return int(cred.Uid), nil
}
