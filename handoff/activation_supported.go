//go:build darwin || freebsd || linux

package handoff

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// listenFDsStart is the first descriptor systemd passes (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// activate, which Start calls only with Config.Activation set and once
// nothing else can fail, takes the sockets systemd passed under the socket activation
// protocol (sd_listen_fds(3)): LISTEN_FDS descriptors from 3 on, named by
// LISTEN_FDNAMES, meant for this process if LISTEN_PID is its pid. It
// unsets the variables whatever they say, so that no child process takes
// descriptors 3 and up for sockets.
func (h *Handoff) activate() {
	pid, nfds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	if pid == "" && nfds == "" {
		return
	}
	if pid != strconv.Itoa(os.Getpid()) {
		h.log.Warn("handoff: ignoring LISTEN_FDS: LISTEN_PID is not this process", "LISTEN_FDS", nfds, "LISTEN_PID", pid, "pid", os.Getpid())
		return
	}
	n, err := strconv.Atoi(nfds)
	if err != nil || n < 0 || n > maxSockets {
		h.log.Warn("handoff: ignoring LISTEN_FDS: not a count of descriptors", "LISTEN_FDS", nfds)
		return
	}
	var nameList []string
	if names != "" {
		nameList = strings.Split(names, ":")
	}
	for i := range n {
		fd := listenFDsStart + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			h.log.Warn("handoff: activated descriptor unusable", "LISTEN_FDS", n, "fd", fd, "err", err)
			continue
		}
		name := ""
		if i < len(nameList) {
			name = nameList[i]
		}
		info, err := describeSocket(fd)
		if err != nil {
			// Kept, so that Ready closes it with a log line.
			h.log.Warn("handoff: activated descriptor cannot be claimed", "fd", fd, "name", name, "err", err)
			info = sockInfo{}
		}
		fileName := name
		if fileName == "" {
			fileName = "LISTEN_FD_" + strconv.Itoa(fd)
		}
		o := activated
		if name == fdStoreName {
			o = stored
		}
		h.offered = append(h.offered, &candidate{file: os.NewFile(uintptr(fd), fileName), info: info, origin: o, name: name})
	}
}
