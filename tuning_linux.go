package reuseport

import (
	"os"

	"golang.org/x/sys/unix"
)

// The listener tuning of ListenConfig: FastOpenQueue and DeferAccept. Other
// systems refuse both (tuning_other.go).

func setFastOpen(fd uintptr, queue int) error {
	return os.NewSyscallError("setsockopt TCP_FASTOPEN", unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_FASTOPEN, queue))
}

func setDeferAccept(fd uintptr, seconds int) error {
	return os.NewSyscallError("setsockopt TCP_DEFER_ACCEPT", unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, seconds))
}
