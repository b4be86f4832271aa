package steer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var sys platform = linux{}

type linux struct{}

func (linux) supported() error { return nil }

// attach sets SO_ATTACH_REUSEPORT_CBPF on conn, which replaces the program
// of its whole reuseport group and needs no privilege.
func (linux) attach(conn *net.UDPConn, t slotTable, cidLen int, k key) error {
	prog, err := program(t, cidLen, k)
	if err != nil {
		return err
	}
	return attachProgram(conn, prog)
}

func attachProgram(conn *net.UDPConn, prog []unix.SockFilter) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog)
	})
	if err != nil {
		return err
	}
	if errors.Is(serr, unix.ENOPROTOOPT) {
		// Linux before 4.5, or an emulator that does not pass the
		// option on (qemu-user does not).
		return fmt.Errorf("steer: cannot attach a program to a reuseport group here (%w): %w",
			os.NewSyscallError("setsockopt SO_ATTACH_REUSEPORT_CBPF", serr), errors.ErrUnsupported)
	}
	return os.NewSyscallError("setsockopt SO_ATTACH_REUSEPORT_CBPF", serr)
}

// answerWhileJoining answers the probes that reach m's socket until stop
// is called, reading with MSG_PEEK first, so that the first packet that
// is not a probe stays queued for the caller's reader. It waits for
// packets with poll(2) in short slices rather than through the runtime's
// poller, so that stopping it needs no read deadline: the caller's own
// deadline on the socket stays as it set it.
func (linux) answerWhileJoining(m *Member) func() {
	rc, err := m.conn.SyscallConn()
	if err != nil {
		return func() {}
	}
	var stopped atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, controlLen)
		for !stopped.Load() {
			ready, err := pollIn(rc, joinPollSlice)
			if err != nil {
				return
			}
			if !ready {
				continue
			}
			n, from, err := recv(rc, buf, unix.MSG_PEEK|unix.MSG_TRUNC)
			if err != nil || n != controlLen || !IsControl(buf) {
				return
			}
			if _, _, err := recv(rc, buf, 0); err != nil {
				return
			}
			m.HandleControl(buf, from, m.conn.WriteTo)
		}
	}()
	return func() {
		stopped.Store(true)
		<-done
	}
}

// joinPollSlice bounds how long stopping answerWhileJoining waits.
const joinPollSlice = 10 * time.Millisecond

// pollIn reports whether the socket has a datagram to read, waiting at
// most d.
func pollIn(rc syscall.RawConn, d time.Duration) (bool, error) {
	var (
		n    int
		perr error
	)
	err := rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, perr = unix.Poll(fds, int(d.Milliseconds()))
	})
	if err != nil {
		return false, err
	}
	if errors.Is(perr, unix.EINTR) {
		return false, nil
	}
	return n > 0, perr
}

// recv reads one datagram that is already waiting (MSG_DONTWAIT).
func recv(rc syscall.RawConn, buf []byte, flags int) (int, net.Addr, error) {
	var (
		n    int
		from unix.Sockaddr
		err  error
	)
	cerr := rc.Control(func(fd uintptr) {
		n, from, err = unix.Recvfrom(int(fd), buf, flags|unix.MSG_DONTWAIT)
	})
	if cerr != nil {
		return 0, nil, cerr
	}
	if err != nil {
		return 0, nil, err
	}
	switch sa := from.(type) {
	case *unix.SockaddrInet4:
		return n, &net.UDPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}, nil
	case *unix.SockaddrInet6:
		return n, &net.UDPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}, nil
	}
	return 0, nil, errors.New("steer: datagram from an unknown kind of address")
}
