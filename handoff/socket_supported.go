//go:build darwin || freebsd || linux

package handoff

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// describeSocket asks the kernel what fd is, so that nothing about a
// received or activated socket is taken on trust: it must be a listening
// TCP socket or a bound UDP socket.
func describeSocket(fd int) (sockInfo, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return sockInfo{}, os.NewSyscallError("getsockopt SO_TYPE", err)
	}
	var proto string
	switch typ {
	case unix.SOCK_STREAM:
		proto = "tcp"
		listening, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err != nil {
			return sockInfo{}, os.NewSyscallError("getsockopt SO_ACCEPTCONN", err)
		}
		if listening == 0 {
			return sockInfo{}, errors.New("a stream socket that is not listening")
		}
	case unix.SOCK_DGRAM:
		proto = "udp"
	default:
		return sockInfo{}, fmt.Errorf("a socket of type %d, neither stream nor datagram", typ)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return sockInfo{}, os.NewSyscallError("getsockname", err)
	}
	var s sockInfo
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		s = sockInfo{proto + "4", netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))}
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			ip = ip.WithZone(strconv.FormatUint(uint64(sa.ZoneId), 10))
		}
		v6only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		if err != nil {
			return sockInfo{}, os.NewSyscallError("getsockopt IPV6_V6ONLY", err)
		}
		network := proto
		if v6only != 0 {
			network += "6"
		}
		s = sockInfo{network, netip.AddrPortFrom(ip, uint16(sa.Port))}
	default:
		return sockInfo{}, fmt.Errorf("a %s socket that is not IPv4 or IPv6", proto)
	}
	if s.addr.Port() == 0 {
		return sockInfo{}, fmt.Errorf("a %s socket bound to no port", proto)
	}
	return s, nil
}

// dupSocket returns a close-on-exec duplicate of the descriptor behind c
// and what it is. It fails once c is closed, which is how a listener the
// application closed drops out of the handoff.
func dupSocket(c syscall.Conn) (int, sockInfo, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, sockInfo{}, err
	}
	nfd, info := -1, sockInfo{}
	var serr error
	err = raw.Control(func(fd uintptr) {
		if info, serr = describeSocket(int(fd)); serr != nil {
			return
		}
		if nfd, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); serr != nil {
			serr = os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", serr)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return -1, sockInfo{}, err
	}
	return nfd, info, nil
}

// checkPeer fails unless the process at the other end of c runs as the
// same effective user as this one. Only that user may take the sockets,
// or hand this process sockets.
func checkPeer(c syscall.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	uid := -1
	var uerr error
	if err := raw.Control(func(fd uintptr) { uid, uerr = peerUID(int(fd)) }); err != nil {
		return err
	}
	if uerr != nil {
		return uerr
	}
	if me := os.Geteuid(); uid != me {
		return fmt.Errorf("the peer runs as uid %d, not %d: %w", uid, me, os.ErrPermission)
	}
	return nil
}
