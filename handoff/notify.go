package handoff

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// A notifier speaks systemd's notification protocol (sd_notify(3)): one
// datagram per message, newline-separated VAR=value lines, descriptors
// as SCM_RIGHTS, to the unix socket NOTIFY_SOCKET names. A nil notifier,
// for a process systemd does not listen to, sends nothing.
type notifier struct {
	addr *net.UnixAddr // its Name is the path, or "@" and an abstract name
	log  *slog.Logger
	warn sync.Once // a failure to send is logged once, then only counted
}

// newNotifier returns a notifier for NOTIFY_SOCKET, or nil if it is unset.
// NOTIFY_SOCKET stays set, so that a successor this process starts can
// speak to systemd too.
func newNotifier(log *slog.Logger) *notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	switch {
	case path == "":
		return nil
	case path[0] != '/' && path[0] != '@':
		// vsock: and other transports of later systemd releases.
		log.Warn("handoff: not telling systemd: NOTIFY_SOCKET is not a unix socket path", "NOTIFY_SOCKET", path)
		return nil
	}
	// The net package maps a leading '@' to Linux's abstract namespace.
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}, log: log}
}

// send sends state, with fds as SCM_RIGHTS if any, and reports whether it
// could. Failures are logged, once: systemd's notifications are advice,
// and a server does not stop serving for want of them.
func (n *notifier) send(state string, fds ...int) bool {
	if n == nil {
		return false
	}
	err := sendNotify(n.addr.Name, []byte(state), fds)
	if err != nil {
		n.warn.Do(func() {
			n.log.Warn("handoff: telling systemd failed", "NOTIFY_SOCKET", n.addr.Name, "state", firstLine(state), "err", err)
		})
		return false
	}
	return true
}

func firstLine(s string) string {
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// reloading is the message that starts a reload: systemd 253's
// Type=notify-reload needs MONOTONIC_USEC beside RELOADING=1, to tell this
// reload from an earlier one.
func reloading(status string) string {
	msg := "RELOADING=1\nSTATUS=" + status
	if usec, ok := monotonicUsec(); ok {
		msg += "\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10)
	}
	return msg
}

// handOverUnit tells systemd that pid, a successor in this unit, is now
// the unit's main process and serves. The current main process may send
// MAINPID=, so this works with the default NotifyAccess=main; READY=1
// ends a reload that the upgrade signal began.
func (n *notifier) handOverUnit(pid int, took time.Duration) bool {
	// STATUS= is the unit's, and the unit now is the successor: say that
	// it serves, not that this process drains.
	return n.send(fmt.Sprintf("MAINPID=%d\nREADY=1\nSTATUS=serving: pid %d took over from pid %d in %v",
		pid, pid, os.Getpid(), took.Round(time.Millisecond)))
}
