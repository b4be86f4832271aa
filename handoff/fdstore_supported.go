//go:build darwin || freebsd || linux

package handoff

// store hands copies of the claimed sockets to systemd's fd store.
func (h *Handoff) store() {
	fds, _, err := h.snapshot()
	defer closeFDs(fds)
	if err != nil {
		h.log.Warn("handoff: not storing sockets in systemd's fd store", "err", err)
		return
	}
	if len(fds) == 0 {
		return
	}
	if h.notify.send("FDSTORE=1\nFDNAME="+fdStoreName, fds...) {
		stats.stored.Add(uint64(len(fds)))
		h.log.Info("handoff: stored sockets in systemd's fd store", "count", len(fds), "name", fdStoreName)
	}
}

// predecessorPID is the pid of the predecessor this process took over
// from, or 0.
func (h *Handoff) predecessorPID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return int(h.sys.predPID)
}
