//go:build darwin || freebsd || linux

package handoff

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// platform is the unix half of a Handoff; h.mu guards it.
type platform struct {
	lock    *os.File          // holds the flock on Path+".lock" from Start to Ready
	pred    *wire             // the exchange with the predecessor, kept open until Ready
	predPID uint32            // for log lines
	ln      *net.UnixListener // answers successors, from Ready until retired or closed
	lnFile  os.FileInfo       // the socket file ln made, to remove Path only while it is ours
	peer    *net.UnixConn     // the successor being served, so that Close can cut it off
	served  chan struct{}     // closed when the serve goroutine has returned

	passes map[*net.UnixConn]struct{} // predecessors handing over connections (takeConns)
	pass   *passer                    // this process handing over its connections (passConn)
}

func (h *Handoff) lockPath() string { return h.cfg.Path + ".lock" }
func (h *Handoff) tempPath() string { return h.cfg.Path + ".new" }

func (h *Handoff) start(ctx context.Context) error {
	if limit := len(unix.RawSockaddrUnix{}.Path); len(h.tempPath()) >= limit {
		return fmt.Errorf("Config.Path %q is too long: a unix socket path must stay under %d bytes, including the 4 of %q",
			h.cfg.Path, limit, ".new")
	}
	lock, err := acquireLock(ctx, h.lockPath(), h.cfg.Timeout, h.log)
	if err == nil {
		h.sys.lock = lock
		err = h.inherit(ctx)
	}
	if err != nil {
		h.close()
		h.closeCandidates(h.offered, "unused")
		return err
	}
	// Last, so that a Start that fails leaves systemd's sockets and
	// variables as it found them.
	if h.cfg.Activation {
		h.activate()
	}
	return nil
}

// acquireLock takes the flock that makes successors take turns: the holder
// alone talks to the process on Path, until it has replaced Path with its
// own socket. The kernel drops the lock when the holder dies. The file is
// never removed, since a process could then lock a file another has
// already replaced.
func acquireLock(ctx context.Context, path string, timeout time.Duration, log *slog.Logger) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	wait, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := time.Millisecond
	for logged := false; ; {
		err := flock(f, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		if !logged {
			log.Info("handoff: waiting for another successor, which holds the lock", "lock", path)
			logged = true
		}
		select {
		case <-wait.Done():
			f.Close()
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("waiting for %s: %w", path, err)
			}
			return nil, fmt.Errorf("another process has held %s for %v: %w", path, timeout, os.ErrDeadlineExceeded)
		case <-time.After(delay):
			delay = min(2*delay, 50*time.Millisecond)
		}
	}
}

func flock(f *os.File, how int) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = unix.Flock(int(fd), how) }); err != nil {
		return err
	}
	return ferr
}

// inherit asks the process on Path for its sockets. A predecessor that is
// absent, dead, stalled, incompatible or broken leaves this process to
// bind fresh sockets; a Path that cannot be used, or is served by another
// user, and a cancelled ctx are errors.
func (h *Handoff) inherit(ctx context.Context) error {
	path := h.cfg.Path
	d := net.Dialer{Timeout: h.cfg.Timeout}
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, unix.ENOENT):
		h.log.Info("handoff: no predecessor: Path does not exist", "path", path)
		return nil
	case errors.Is(err, unix.ECONNREFUSED):
		// Left by a process that died; Ready renames over it. Anything
		// but a socket is not ours to replace.
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if fi.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("%s is not a unix socket but %v; refusing to replace it", path, fi.Mode().Type())
		}
		h.log.Info("handoff: no predecessor: nothing answers on Path, left by a process that has exited", "path", path)
		return nil
	default:
		return err
	}
	uc := c.(*net.UnixConn)
	if err := checkPeer(uc); err != nil {
		uc.Close()
		return fmt.Errorf("the process on %s: %w", path, err)
	}
	w, err := newWire(uc)
	if err != nil {
		uc.Close()
		return err
	}
	uc.SetDeadline(time.Now().Add(h.cfg.Timeout))
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Unix(1, 0)) })
	o, cands, err := h.exchange(w)
	stop()
	if ctx.Err() != nil {
		closeAll(cands)
		uc.Close()
		return ctx.Err()
	}
	if err != nil {
		uc.Close()
		h.log.Warn("handoff: binding fresh sockets: no sockets from the process on Path, which keeps serving if it is alive", "path", path, "err", err)
		stats.failedTakeovers.Add(1)
		return nil
	}
	uc.SetDeadline(time.Time{})
	h.sys.pred, h.sys.predPID = w, o.pid
	h.offered = cands // activated sockets, if any, come after these
	h.log.Info("handoff: received sockets from the predecessor", "count", len(cands), "predecessor_pid", o.pid)
	return nil
}

// exchange says hello and receives the predecessor's sockets.
func (h *Handoff) exchange(w *wire) (offer, []*candidate, error) {
	m := hello{minVersion: h.minVersion, maxVersion: h.maxVersion, pid: uint32(os.Getpid())}
	if err := w.writeFrame(msgHello, m.append(nil), -1); err != nil {
		return offer{}, nil, err
	}
	return receive(w, h.minVersion, h.maxVersion)
}

// receive reads the predecessor's answer to a hello: an offer, then one
// socket message per socket, each with its descriptor. Every descriptor is
// checked against what the message says it is. On error, receive closes
// every descriptor it received.
func receive(w *wire, lo, hi uint16) (offer, []*candidate, error) {
	defer w.closeFDs()
	t, p, err := readFrame(w)
	if err != nil {
		return offer{}, nil, err
	}
	if t == msgRefuse {
		r, err := parseRefusal(p)
		if err != nil {
			return offer{}, nil, err
		}
		return offer{}, nil, &refusedError{r}
	}
	if err := expect(t, msgOffer); err != nil {
		return offer{}, nil, err
	}
	o, err := parseOffer(p)
	if err != nil {
		return offer{}, nil, err
	}
	if o.version < lo || o.version > hi {
		return offer{}, nil, protocolErrorf("offer of version %d, want %d to %d", o.version, lo, hi)
	}
	infos := make([]sockInfo, o.count)
	for i := range infos {
		t, p, err := readFrame(w)
		if err == nil {
			err = expect(t, msgSocket)
		}
		if err == nil {
			infos[i], err = parseSockInfo(p)
		}
		if err == nil && len(w.fds) <= i {
			err = protocolErrorf("socket message %d came without a descriptor", i)
		}
		if err != nil {
			return offer{}, nil, err
		}
	}
	if len(w.fds) != len(infos) {
		return offer{}, nil, protocolErrorf("%d descriptors for %d sockets", len(w.fds), len(infos))
	}
	fds := w.takeFDs()
	cands := make([]*candidate, 0, len(fds))
	for i, fd := range fds {
		got, err := describeSocket(fd)
		if err == nil && got != infos[i] {
			err = fmt.Errorf("the predecessor declared %v but sent %v", infos[i], got)
		}
		if err != nil {
			closeFDs(fds[i:])
			closeAll(cands)
			return offer{}, nil, err
		}
		cands = append(cands, &candidate{file: os.NewFile(uintptr(fd), got.String()), info: got, origin: inherited})
	}
	return o, cands, nil
}

func closeAll(cs []*candidate) {
	for _, c := range cs {
		c.file.Close()
	}
}

// ready makes this process the one on Path: it binds its own socket beside
// Path, renames it over Path (atomically: a connecting successor finds one
// or the other), and only then tells the predecessor to stop accepting.
func (h *Handoff) ready() error {
	ln, fi, err := listenUnix(h.cfg.Path, h.tempPath())
	if err != nil {
		h.mu.Lock()
		h.state = closed
		h.mu.Unlock()
		h.close()
		return err
	}
	h.mu.Lock()
	h.state = serving
	h.sys.ln, h.sys.lnFile, h.sys.served = ln, fi, make(chan struct{})
	pred, pid, lock, served := h.sys.pred, h.sys.predPID, h.sys.lock, h.sys.served
	h.sys.pred, h.sys.lock = nil, nil
	h.mu.Unlock()
	go h.serve(ln, served)
	if pred != nil {
		pred.conn.SetDeadline(time.Now().Add(h.cfg.Timeout))
		err := pred.writeFrame(msgReady, nil, -1)
		pred.conn.Close()
		if err != nil {
			h.log.Warn("handoff: could not tell the predecessor to stop accepting; it serves until it exits", "predecessor_pid", pid, "err", err)
		} else {
			stats.tookOver.Add(1)
			h.log.Info("handoff: answering successors on Path; predecessor told to stop accepting", "path", h.cfg.Path, "predecessor_pid", pid, "took_over_in", time.Since(h.begun).Round(time.Microsecond))
		}
	} else {
		h.log.Info("handoff: answering successors on Path", "path", h.cfg.Path)
	}
	lock.Close() // lets the next successor in
	return nil
}

// listenUnix binds a socket at temp, open to this user only whatever the
// umask, and renames it over path.
func listenUnix(path, temp string) (*net.UnixListener, os.FileInfo, error) {
	if err := os.Remove(temp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: temp, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	// The file will be the successor's one day: never remove it on Close.
	ln.SetUnlinkOnClose(false)
	fi, err := os.Lstat(temp)
	if err == nil {
		err = os.Chmod(temp, 0o600)
	}
	if err == nil {
		err = os.Rename(temp, path)
	}
	if err != nil {
		ln.Close()
		os.Remove(temp)
		return nil, nil, err
	}
	return ln, fi, nil
}
