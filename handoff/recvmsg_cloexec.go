//go:build freebsd || linux

package handoff

import "golang.org/x/sys/unix"

// recvmsg receives bytes and descriptors, which MSG_CMSG_CLOEXEC marks
// close-on-exec atomically, so no child process can inherit one.
func recvmsg(fd int, p, oob []byte) (n int, fds []int, truncated bool, err error) {
	n, oobn, flags, _, err := unix.Recvmsg(fd, p, oob, unix.MSG_CMSG_CLOEXEC)
	if oobn > 0 {
		fds = parseRights(oob[:oobn])
	}
	return n, fds, flags&unix.MSG_CTRUNC != 0, err
}
