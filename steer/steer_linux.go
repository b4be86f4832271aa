package steer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

var sys platform = linux{}

type linux struct{}

func (linux) supported() error { return nil }

// attach sets SO_ATTACH_REUSEPORT_CBPF on conn, which replaces the program
// of its whole reuseport group and needs no privilege.
func (linux) attach(conn *net.UDPConn, t Table, cidLen int) error {
	prog, err := program(t, cidLen)
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

// answerWhileJoining reads m's socket with MSG_PEEK first, so that the
// first packet that is not a probe stays queued for the caller's reader.
func (linux) answerWhileJoining(m *Member) func() {
	rc, err := m.conn.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, controlLen)
		for {
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
		m.conn.SetReadDeadline(time.Now())
		<-done
		m.conn.SetReadDeadline(time.Time{})
	}
}

// recv reads one datagram through the runtime's poller, so that a read
// deadline ends it.
func recv(rc interface {
	Read(func(uintptr) bool) error
}, buf []byte, flags int) (int, net.Addr, error) {
	var (
		n    int
		from unix.Sockaddr
		err  error
	)
	rerr := rc.Read(func(fd uintptr) bool {
		n, from, err = unix.Recvfrom(int(fd), buf, flags|unix.MSG_DONTWAIT)
		return !errors.Is(err, unix.EAGAIN)
	})
	if rerr != nil {
		return 0, nil, rerr
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
