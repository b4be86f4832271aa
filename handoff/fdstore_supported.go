//go:build darwin || freebsd || linux

package handoff

// store hands copies of the claimed sockets to systemd's fd store, except
// those that came from it: systemd keeps those already, and systemd 252
// counts a socket stored again against FileDescriptorStoreMax before it
// finds it is the same one.
func (h *Handoff) store() {
	h.mu.Lock()
	var conns []claimed
	for _, c := range h.claimed {
		if c.origin != stored {
			conns = append(conns, c)
		}
	}
	kept := len(h.claimed) - len(conns)
	h.mu.Unlock()
	var fds []int
	defer func() { closeFDs(fds) }()
	for _, c := range conns {
		fd, _, err := dupSocket(c.conn)
		if err != nil {
			h.log.Warn("handoff: not storing a socket in systemd's fd store", "network", c.network, "addr", c.addr, "err", err)
			continue
		}
		fds = append(fds, fd)
	}
	if len(fds) == 0 {
		if kept > 0 {
			h.log.Info("handoff: sockets already in systemd's fd store", "count", kept)
		}
		return
	}
	if h.notify.send("FDSTORE=1\nFDNAME="+fdStoreName, fds...) {
		stats.stored.Add(uint64(len(fds)))
		h.log.Info("handoff: stored sockets in systemd's fd store", "count", len(fds), "already_stored", kept, "name", fdStoreName)
	}
}

// predecessorPID is the pid of the predecessor this process took over
// from, or 0.
func (h *Handoff) predecessorPID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return int(h.sys.predPID)
}
