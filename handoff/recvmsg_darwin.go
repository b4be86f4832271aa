package handoff

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// recvmsg receives bytes and descriptors. Darwin has no MSG_CMSG_CLOEXEC,
// so the fork lock keeps a child from being started between receiving a
// descriptor and marking it close-on-exec. The socket is non-blocking, so
// the lock is held only for the call itself.
func recvmsg(fd int, p, oob []byte) (n int, fds []int, truncated bool, err error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	n, oobn, flags, _, err := unix.Recvmsg(fd, p, oob, 0)
	if oobn > 0 {
		fds = parseRights(oob[:oobn])
		for _, fd := range fds {
			unix.CloseOnExec(fd)
		}
	}
	return n, fds, flags&unix.MSG_CTRUNC != 0, err
}
