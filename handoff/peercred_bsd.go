//go:build darwin || freebsd

package handoff

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// xucredVersion is XUCRED_VERSION, the layout GetsockoptXucred decodes.
const xucredVersion = 0

// peerUID returns the effective uid of the process at the other end of a
// connected unix socket, as the kernel recorded it at connect or listen.
func peerUID(fd int) (int, error) {
	cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return -1, os.NewSyscallError("getsockopt LOCAL_PEERCRED", err)
	}
	if cred.Version != xucredVersion {
		return -1, fmt.Errorf("LOCAL_PEERCRED returned xucred version %d, want %d", cred.Version, xucredVersion)
	}
	return int(cred.Uid), nil
}
