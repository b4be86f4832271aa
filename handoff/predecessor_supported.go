//go:build darwin || freebsd || linux

package handoff

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// serve answers successors on ln, one at a time, until one takes over or
// Close is called. Nothing a peer does can stop it: each failed exchange
// is logged and forgotten, and the sockets it offered were only copies.
func (h *Handoff) serve(ln *net.UnixListener, served chan struct{}) {
	defer close(served)
	var delay time.Duration
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, most likely: wait and retry, as
			// net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			h.log.Warn("handoff: accepting on Path failed; retrying", "path", h.cfg.Path, "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if h.handOver(c) {
			h.retire(ln)
			return
		}
	}
}

// handOver runs one exchange and reports whether the successor took the
// sockets and is serving.
func (h *Handoff) handOver(c *net.UnixConn) bool {
	kept := false // by takeConns
	defer func() {
		if !kept {
			c.Close()
		}
	}()
	if !h.setPeer(c) {
		return false
	}
	defer h.setPeer(nil)
	w, err := newWire(c)
	if err != nil {
		h.log.Warn("handoff: successor connection", "err", err)
		return false
	}
	defer func() {
		if !kept {
			w.closeFDs()
		}
	}()
	c.SetDeadline(time.Now().Add(h.cfg.Timeout))
	if err := checkPeer(c); err != nil {
		h.log.Warn("handoff: refusing a successor", "err", err)
		w.writeFrame(msgRefuse, refusal{refusePermission, "not the same user"}.append(nil), -1)
		return false
	}
	// A pass's first conn, with its descriptor, may come in the same read.
	t, p, err := readFrame(w)
	if err == nil && t != msgPass && len(w.fds) > 0 {
		w.closeFDs()
		err = protocolErrorf("%v came with descriptors", t)
	}
	if err == nil && t == msgPass {
		// The predecessor, handing over the connections it drains.
		var pid uint32
		if pid, err = parsePassHello(p); err == nil && h.keepPass(c) {
			kept = true
			go h.takeConns(c, w, pid)
			return false
		}
	}
	if err == nil {
		err = expect(t, msgHello)
	}
	var m hello
	if err == nil {
		m, err = parseHello(p)
	}
	if isTimeout(err) {
		err = fmt.Errorf("no hello within %v", h.cfg.Timeout)
	}
	if err != nil {
		h.log.Warn("handoff: ignoring a peer on Path", "path", h.cfg.Path, "err", err)
		return false
	}
	v, ok := pickVersion(m, h.minVersion, h.maxVersion)
	if !ok {
		text := fmt.Sprintf("this process speaks protocol versions %d to %d, not %d to %d", h.minVersion, h.maxVersion, m.minVersion, m.maxVersion)
		h.log.Warn("handoff: refusing a successor", "successor_pid", m.pid, "reason", text)
		w.writeFrame(msgRefuse, refusal{refuseVersion, text}.append(nil), -1)
		return false
	}
	h.testHook("hello")
	begun := time.Now()
	if err := h.offer(w, v); err != nil {
		h.log.Warn("handoff: handing sockets to the successor failed; still serving", "successor_pid", m.pid, "err", err)
		return false
	}
	h.testHook("offered")
	// The successor takes as long as it needs to start serving; while
	// it lives, this process waits for it, and keeps serving meanwhile.
	c.SetDeadline(time.Time{})
	t, p, err = w.readPlainFrame()
	if err == nil {
		err = expect(t, msgReady)
	}
	if err == nil && len(p) != 0 {
		err = protocolErrorf("ready with a payload of %d bytes", len(p))
	}
	if err != nil {
		h.log.Warn("handoff: the successor took the sockets but did not become ready; still serving", "successor_pid", m.pid, "err", err)
		stats.failedTakeovers.Add(1)
		return false
	}
	took := time.Since(begun)
	pid := int(m.pid)
	inUnit := h.notify != nil && sameUnit(pid)
	h.mu.Lock()
	h.inUnit = inUnit
	h.mu.Unlock()
	stats.handedOver.Add(1)
	h.log.Info("handoff: the successor is serving; stop accepting", "successor_pid", m.pid, "handed_over_in", took.Round(time.Microsecond))
	if inUnit {
		// Before Done closes, so that the unit has its new main process
		// before this one can exit.
		if h.notify.handOverUnit(pid, took) {
			h.log.Info("handoff: the successor is now the systemd unit's main process", "successor_pid", pid)
		}
	} else if h.notify != nil {
		h.notify.send(fmt.Sprintf("STATUS=handed over to pid %d, another unit; draining", pid))
	}
	return true
}

// offer sends copies of the sockets Listen and ListenPacket returned.
func (h *Handoff) offer(w *wire, version uint16) error {
	fds, infos, err := h.snapshot()
	defer closeFDs(fds)
	if err != nil {
		return err
	}
	if len(fds) > maxSockets {
		text := fmt.Sprintf("%d sockets, more than the %d one handoff may carry", len(fds), maxSockets)
		w.writeFrame(msgRefuse, refusal{refuseTooMany, text}.append(nil), -1)
		return errors.New(text)
	}
	o := offer{version: version, pid: uint32(os.Getpid()), count: uint16(len(fds))}
	if err := w.writeFrame(msgOffer, o.append(nil), -1); err != nil {
		return err
	}
	for i, fd := range fds {
		if err := w.writeFrame(msgSocket, infos[i].append(nil), fd); err != nil {
			return err
		}
	}
	return nil
}

// snapshot duplicates the descriptor of every socket still open. A socket
// the application closed is dropped for good; any other failure aborts
// the exchange, since a successor missing a socket would leave its queue
// to be lost when this process exits.
func (h *Handoff) snapshot() ([]int, []sockInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var fds []int
	var infos []sockInfo
	kept := h.claimed[:0]
	for _, c := range h.claimed {
		fd, info, err := dupSocket(c.conn)
		if errors.Is(err, net.ErrClosed) {
			h.log.Info("handoff: not handing over a socket closed by the application", "network", c.network, "addr", c.addr)
			continue
		}
		if err != nil {
			return fds, nil, fmt.Errorf("%s %v: %w", c.network, c.addr, err)
		}
		kept = append(kept, c)
		fds, infos = append(fds, fd), append(infos, info)
	}
	clear(h.claimed[len(kept):])
	h.claimed = kept
	return fds, infos, nil
}

// setPeer records the connection Close must cut off; it refuses once
// Close has been called.
func (h *Handoff) setPeer(c *net.UnixConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c != nil && h.state == closed {
		return false
	}
	h.sys.peer = c
	return true
}

// retire ends this process's turn: Path is the successor's now.
func (h *Handoff) retire(ln *net.UnixListener) {
	h.mu.Lock()
	if h.state == serving {
		h.state = retired
	}
	h.sys.ln, h.sys.lnFile = nil, nil
	h.mu.Unlock()
	ln.Close()
	close(h.done)
}

// close releases whatever this process holds of the handoff machinery,
// and returns what failed.
func (h *Handoff) close() error {
	h.mu.Lock()
	s := h.sys
	h.sys = platform{}
	h.mu.Unlock()
	var errs []error
	if s.pred != nil {
		// The predecessor goes on serving.
		errs = append(errs, s.pred.conn.Close())
	}
	// A successor taking over at this moment may have closed ln (see
	// retire), and the exchange closes peer: closed already is no failure.
	if s.ln != nil {
		errs = append(errs, unlessClosed(s.ln.Close()))
	}
	if s.peer != nil {
		errs = append(errs, unlessClosed(s.peer.Close()))
	}
	closePasses(s)
	if s.served != nil {
		<-s.served
	}
	if s.lnFile != nil {
		errs = append(errs, h.removeSocketFile(s.lnFile))
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}

// unlessClosed returns err unless it says the socket was closed already.
func unlessClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// removeSocketFile removes Path if it is still the socket this process
// made. It takes the lock without waiting, so as never to remove the
// socket of a successor that is renaming its own over Path.
func (h *Handoff) removeSocketFile(mine os.FileInfo) error {
	lock, err := os.OpenFile(h.lockPath(), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // without the lock, Path cannot be removed safely
	}
	if err != nil {
		return err
	}
	defer lock.Close()
	if flock(lock, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return nil // a successor is on its way and will replace Path
	}
	if cur, err := os.Lstat(h.cfg.Path); err == nil && os.SameFile(mine, cur) {
		return os.Remove(h.cfg.Path)
	}
	return nil
}
