//go:build darwin || freebsd || linux

package handoff

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// keepPass registers c, a predecessor's connection that hands over
// connections, so that Close cuts it off; it refuses once closed.
func (h *Handoff) keepPass(c *net.UnixConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state == closed {
		return false
	}
	if h.sys.passes == nil {
		h.sys.passes = make(map[*net.UnixConn]struct{})
	}
	h.sys.passes[c] = struct{}{}
	return true
}

// takeConns receives the connections a predecessor drains, one per conn
// message, and answers each with took: 1 if a listener of this process
// took it up as if it had accepted it, 0 if not (the predecessor then
// closes it its own way).
func (h *Handoff) takeConns(c *net.UnixConn, w *wire, pid uint32) {
	defer func() {
		w.closeFDs()
		c.Close()
		h.mu.Lock()
		delete(h.sys.passes, c)
		h.mu.Unlock()
	}()
	took, refused := 0, 0
	defer func() {
		h.log.Info("handoff: took connections from the predecessor", "predecessor_pid", pid, "took", took, "refused", refused)
	}()
	// No deadline: the predecessor hands connections over as each goes
	// idle, for as long as its drain lasts; Close cuts this off, and the
	// predecessor's exit ends it.
	c.SetDeadline(time.Time{})
	for {
		t, p, err := readFrame(w)
		if err != nil {
			return // io.EOF: the predecessor is done
		}
		// Each conn brings one descriptor, in order; later ones may have
		// come in the same read.
		if t != msgConn || len(w.fds) == 0 {
			h.log.Warn("handoff: ignoring a predecessor handing over connections", "predecessor_pid", pid, "err", protocolErrorf("%v with %d descriptors", t, len(w.fds)))
			return
		}
		fd := w.fds[0]
		w.fds = w.fds[1:]
		info, err := parseSockInfo(p)
		ok := err == nil && h.adoptConn(info, fd) // closes fd unless it took it
		if err != nil {
			unix.Close(fd)
		}
		var b byte
		if ok {
			b, took = 1, took+1
		} else {
			refused++
		}
		if err := w.writeFrame(msgTook, []byte{b}, -1); err != nil {
			return
		}
	}
}

// adoptConn gives fd, a connection accepted on the listener info, to the
// receiver registered for that listener, and reports whether it took it.
// fd is adoptConn's: it is closed unless taken.
func (h *Handoff) adoptConn(info sockInfo, fd int) bool {
	h.mu.Lock()
	receive := h.receivers[info]
	h.mu.Unlock()
	if receive == nil || checkConn(fd, info) != nil {
		unix.Close(fd)
		return false
	}
	f := os.NewFile(uintptr(fd), "handed-over "+info.String())
	nc, err := net.FileConn(f)
	f.Close() // fd; FileConn made its own descriptor
	if err != nil {
		return false
	}
	if !receive(nc) {
		nc.Close()
		return false
	}
	return true
}

// checkConn fails unless fd is a connected TCP socket on info's port.
func checkConn(fd int, info sockInfo) error {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_STREAM {
		return errors.New("not a stream socket")
	}
	if l, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || l != 0 {
		return errors.New("a listening socket")
	}
	if _, err := unix.Getpeername(fd); err != nil {
		return errors.New("not connected")
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	var port int
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		port = sa.Port
	case *unix.SockaddrInet6:
		port = sa.Port
	}
	if port != int(info.addr.Port()) {
		return fmt.Errorf("a connection on port %d, not %d", port, info.addr.Port())
	}
	return nil
}

// listenerInfo describes a listener as the protocol names it.
func listenerInfo(ln net.Listener) (sockInfo, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return sockInfo{}, fmt.Errorf("a %T has no descriptor", ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return sockInfo{}, err
	}
	var info sockInfo
	var derr error
	if err := raw.Control(func(fd uintptr) { info, derr = describeSocket(int(fd)) }); err != nil {
		return sockInfo{}, err
	}
	return info, derr
}

// passer is this process's side of handing connections to its successor.
type passer struct {
	w      *wire
	failed bool // once an exchange failed, nothing more is handed over
}

// passConn hands nc, accepted on the listener info, to the successor that
// now answers on Path, and reports whether the successor took it. Calls
// are serialized; the first one connects.
func (h *Handoff) passConn(info sockInfo, nc net.Conn) bool {
	h.passMu.Lock()
	defer h.passMu.Unlock()
	h.mu.Lock()
	p := h.sys.pass
	if p == nil && h.state != closed {
		p = new(passer)
		h.sys.pass = p
	}
	h.mu.Unlock()
	if p == nil || p.failed {
		return false
	}
	if p.w == nil {
		if err := h.dialPass(p); err != nil {
			p.failed = true
			h.log.Warn("handoff: cannot hand connections to the successor; closing them when idle", "err", err)
			return false
		}
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	fd, err := dupConn(sc)
	if err != nil {
		return false
	}
	defer unix.Close(fd) // the message carried a reference of its own
	p.w.conn.SetDeadline(time.Now().Add(h.cfg.Timeout))
	err = p.w.writeFrame(msgConn, info.append(nil), fd)
	var t msgType
	var b []byte
	if err == nil {
		t, b, err = p.w.readPlainFrame()
	}
	if err == nil && (t != msgTook || len(b) != 1) {
		err = protocolErrorf("got %v, want took", t)
	}
	if err != nil {
		// Whether the successor took it is unknown. It may serve it
		// already, so this process must never read or write it again:
		// count it released. If the successor did not take it, the
		// client sees it close.
		p.failed = true
		h.log.Warn("handoff: handing a connection to the successor failed; letting it go", "err", err)
		return true
	}
	return b[0] == 1
}

// dialPass connects to the successor on Path.
func (h *Handoff) dialPass(p *passer) error {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: h.cfg.Path, Net: "unix"})
	if err != nil {
		return err
	}
	if err := checkPeer(c); err != nil {
		c.Close()
		return err
	}
	w, err := newWire(c)
	if err == nil {
		c.SetDeadline(time.Now().Add(h.cfg.Timeout))
		err = w.writeFrame(msgPass, passHello(os.Getpid()), -1)
	}
	if err != nil {
		c.Close()
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state == closed { // closePasses has run
		c.Close()
		return errClosed
	}
	p.w = w
	return nil
}

// dupConn returns a close-on-exec duplicate of the descriptor behind c.
func dupConn(c syscall.Conn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var serr error
	err = raw.Control(func(fd uintptr) {
		if nfd, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); serr != nil {
			serr = os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", serr)
		}
	})
	if err == nil {
		err = serr
	}
	return nfd, err
}

// closePasses closes the exchanges that hand over connections, both ways.
func closePasses(s platform) {
	for c := range s.passes {
		c.Close()
	}
	if s.pass != nil && s.pass.w != nil {
		s.pass.w.conn.Close()
	}
}
