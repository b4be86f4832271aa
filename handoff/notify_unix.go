//go:build unix

package handoff

import (
	"os"

	"golang.org/x/sys/unix"
)

// sendNotify sends one datagram to the unix socket at path, with fds as
// SCM_RIGHTS. The socket is not connected: Go's UnixConn refuses
// WriteMsgUnix on a connected datagram socket, with or without an address.
func sendNotify(path string, state []byte, fds []int) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	unix.CloseOnExec(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	// x/sys maps a leading '@' to Linux's abstract namespace.
	if err := unix.Sendmsg(fd, state, oob, &unix.SockaddrUnix{Name: path}, 0); err != nil {
		return os.NewSyscallError("sendmsg", err)
	}
	return nil
}
