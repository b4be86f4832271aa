//go:build darwin || freebsd || linux

package handoff

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxFDsPerRead sizes the ancillary buffer of one recvmsg. An honest peer
// sends one descriptor per frame and the kernel returns at most one
// sender's descriptors per call; more means a broken peer, and the kernel
// closes what does not fit (MSG_CTRUNC).
const maxFDsPerRead = 8

// wire frames messages over a connected unix stream socket and collects the
// descriptors that arrive with them. Every descriptor it receives is its
// own until takeFDs hands it on; closeFDs closes the rest, so no error
// path can leak one.
type wire struct {
	conn *net.UnixConn
	raw  syscall.RawConn
	buf  [1024]byte
	r, w int   // buf[r:w] is received and not yet read
	fds  []int // received, close-on-exec, in arrival order
	oob  []byte
}

func newWire(c *net.UnixConn) (*wire, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &wire{conn: c, raw: raw, oob: make([]byte, unix.CmsgSpace(maxFDsPerRead*4))}, nil
}

// Read reads the byte stream; descriptors that come with it pile up in fds.
func (w *wire) Read(p []byte) (int, error) {
	if w.r == w.w {
		if err := w.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, w.buf[w.r:w.w])
	w.r += n
	return n, nil
}

func (w *wire) fill() error {
	var (
		n         int
		fds       []int
		truncated bool
		rerr      error
	)
	err := w.raw.Read(func(fd uintptr) bool {
		for {
			n, fds, truncated, rerr = recvmsg(int(fd), w.buf[:], w.oob)
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN
			}
		}
	})
	w.fds = append(w.fds, fds...)
	switch {
	case err != nil:
		return err // a deadline, or the connection was closed
	case rerr != nil:
		return os.NewSyscallError("recvmsg", rerr)
	case truncated:
		return protocolErrorf("the peer sent more than %d descriptors at once", maxFDsPerRead)
	case n == 0:
		return io.EOF
	}
	w.r, w.w = 0, n
	return nil
}

// parseRights returns the descriptors in a control message buffer.
func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil // the kernel wrote it; it does not happen
	}
	var fds []int
	for i := range msgs {
		if msgs[i].Header.Level == unix.SOL_SOCKET && msgs[i].Header.Type == unix.SCM_RIGHTS {
			if rights, err := unix.ParseUnixRights(&msgs[i]); err == nil {
				fds = append(fds, rights...)
			}
		}
	}
	return fds
}

// takeFDs hands the received descriptors to the caller.
func (w *wire) takeFDs() []int {
	fds := w.fds
	w.fds = nil
	return fds
}

func (w *wire) closeFDs() {
	closeFDs(w.takeFDs())
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// writeFrame sends one message, with fd attached if it is not negative.
func (w *wire) writeFrame(t msgType, payload []byte, fd int) error {
	frame := appendFrame(make([]byte, 0, frameHeaderLen+len(payload)), t, payload)
	if fd < 0 {
		_, err := w.conn.Write(frame)
		return err
	}
	n, _, err := w.conn.WriteMsgUnix(frame, unix.UnixRights(fd), nil)
	if err == nil && n < len(frame) {
		// A stream socket may take part of a message; the descriptor went
		// with the first part.
		_, err = w.conn.Write(frame[n:])
	}
	return err
}

// readPlainFrame reads one frame, closing any descriptor that came with it:
// only the successor ever receives descriptors, and only in socket messages.
func (w *wire) readPlainFrame() (msgType, []byte, error) {
	t, p, err := readFrame(w)
	if len(w.fds) > 0 {
		w.closeFDs()
		if err == nil {
			err = protocolErrorf("%v came with descriptors", t)
		}
	}
	return t, p, err
}

// isTimeout tells a deadline from other failures, for log lines.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
