package steer

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// defaultReconcileInterval is how often a Group reconciles when
// [Config.ReconcileInterval] is 0.
const defaultReconcileInterval = time.Second

// reconcileAttempts bounds the probe-attach-verify rounds of one reconcile.
const reconcileAttempts = 4

// A Config configures a [Group]. The zero value is ready to use.
type Config struct {
	// CIDLen is the length of the connection IDs members issue, from 8 to
	// 20 bytes; 0 means 12. Every process of a group must use the same
	// length.
	CIDLen int

	// ReconcileInterval is how often the Group probes the group and, if
	// it changed, attaches a new program, which heals it within one
	// interval after a member of another process crashes. Each wait is
	// jittered by a quarter either way. 0 means one second; a negative
	// value turns the periodic reconcile off.
	ReconcileInterval time.Duration

	// Key keys the mixing that hides a member's id in the connection IDs
	// it issues (see "Privacy" in the package documentation): 16 bytes or
	// more, of which the first 16 are used. Every process of a group must
	// use the same key. Nil means a key that every process of this host
	// derives alike from the kernel's random boot id and the group's
	// port, which is never sent anywhere.
	Key []byte

	// Logger receives what the Group notices: sockets of the group that do
	// not answer probes, members whose socket closed without Leave, and
	// reconciles that fail. Nil means silent.
	Logger *slog.Logger
}

// A Group is this process's members of one reuseport UDP group: the sockets
// it has bound to one address and port with SO_REUSEPORT. Other processes
// may have their own Group on the same port; probing learns their members.
//
// A Group is safe for concurrent use.
type Group struct {
	cfg    Config
	cidLen int
	log    *slog.Logger

	mu      sync.Mutex // held for a whole reconcile
	addr    *net.UDPAddr
	key     key       // from Config.Key, else derived when the first member joins
	members []*Member // in the order they joined
	table   slotTable
	silent  int // silent slots in table, to log only changes

	cidLenReported bool // a member with another CIDLen was logged
	keyReported    bool // a member with another key was logged
	closed         bool
	stop           chan struct{} // closes to stop the reconciler
	done           chan struct{} // closed when the reconciler has returned
}

// NewGroup returns an empty Group, or an error if cfg is not valid.
func NewGroup(cfg Config) (*Group, error) {
	g := &Group{cfg: cfg, cidLen: cfg.CIDLen, log: cfg.Logger}
	if g.cidLen == 0 {
		g.cidLen = defaultCIDLen
	}
	if g.cidLen < minCIDLen || g.cidLen > maxCIDLen {
		return nil, fmt.Errorf("steer: Config.CIDLen is %d; it must be 0 (for %d) or from %d to %d", cfg.CIDLen, defaultCIDLen, minCIDLen, maxCIDLen)
	}
	if cfg.Key != nil {
		if len(cfg.Key) < keyLen {
			return nil, fmt.Errorf("steer: Config.Key has %d bytes; it needs at least %d", len(cfg.Key), keyLen)
		}
		g.key = newKey(cfg.Key)
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g, nil
}

// A Member is one socket of a Group. Its read loop must pass every packet
// for which [IsControl] is true to [Member.HandleControl], so that probes
// find it.
type Member struct {
	g     *Group
	conn  *net.UDPConn
	id    uint32
	state atomic.Uint32 // a State
	left  atomic.Bool
}

// Join makes conn a member of g. conn must be bound with SO_REUSEPORT (for
// example by reuseport.ListenPacket) to the address of the group's other
// members, and nothing may read it yet: while Join reconciles the group it
// answers the probes that reach conn itself, and it stops at the first
// packet that is not one, leaving it queued. The read loops of the
// Group's earlier members must already run, so that they answer too.
// Join gives the member a random id, adds it to the accepting set and
// attaches the group's new program.
//
// On an OS other than Linux, and where the kernel (before 4.5) or an
// emulator (qemu-user) cannot attach the program, Join returns an error
// that wraps [errors.ErrUnsupported].
func (g *Group) Join(conn *net.UDPConn) (*Member, error) {
	if err := sys.supported(); err != nil {
		return nil, err
	}
	laddr, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok || laddr.Port == 0 {
		return nil, fmt.Errorf("steer: joining a socket that is not bound (%v)", conn.LocalAddr())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return nil, fmt.Errorf("steer: joining a closed group: %w", net.ErrClosed)
	case g.addr != nil && (g.addr.Port != laddr.Port || !g.addr.IP.Equal(laddr.IP)):
		return nil, fmt.Errorf("steer: %v cannot join the group of %v", laddr, g.addr)
	case len(g.members) >= maxMembers:
		return nil, fmt.Errorf("steer: a group has at most %d members", maxMembers)
	}
	if g.addr == nil {
		// Set by the first Join that succeeds: the members' read loops
		// read it without the lock.
		if g.cfg.Key == nil {
			k, err := hostKey(laddr.Port)
			if err != nil {
				return nil, err
			}
			g.key = k
		}
		g.addr = laddr
	}
	m := &Member{g: g, conn: conn}
	m.id = randomID(func(id uint32) bool {
		return slices.ContainsFunc(g.members, func(o *Member) bool { return o.id == id })
	})
	m.state.Store(uint32(stAccepting))
	g.members = append(g.members, m)

	stop := sys.answerWhileJoining(m)
	err := g.reconcileLocked(true)
	stop()
	if err != nil {
		// A failed Join leaves the Group as it was: a Group no socket has
		// joined yet may still join another address.
		g.members = g.members[:len(g.members)-1]
		if len(g.members) == 0 {
			g.addr = nil
		}
		return nil, err
	}
	if g.table.slotOf(m.id) < 0 {
		g.log.Info("steer: a member did not answer probes while it joined; the next reconcile maps it", "group", g.addr, "member", fmt.Sprintf("%08x", m.id))
	}
	g.startReconcilerLocked()
	return m, nil
}

// reconcile probes the group, attaches the program for what it found
// (even when nothing changed, which replaces a program attached by
// another party), and probes again to verify it. Groups reconcile by themselves every
// [Config.ReconcileInterval]; reconcile is for a caller that knows the
// group just changed, and for tests.
func (g *Group) reconcile() error {
	if err := sys.supported(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("steer: reconciling a closed group: %w", net.ErrClosed)
	}
	return g.reconcileLocked(true)
}

// tableSnapshot returns the group's table as the last reconcile attached and
// verified it (or, after a Leave, as it will be once the leaving sockets
// have closed).
func (g *Group) tableSnapshot() slotTable {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.table)
}

// Close leaves the group with every member that has not left yet, as
// [Member.Leave] does, and stops the periodic reconcile. The caller then
// closes those members' sockets, in the order they joined. Close is safe
// to call more than once.
func (g *Group) Close() error {
	g.mu.Lock()
	stop, done := g.stop, g.done
	g.stop = nil
	g.closed = true
	g.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.members) == 0 {
		return nil
	}
	return g.leaveLocked(slices.Clone(g.members))
}

func (g *Group) startReconcilerLocked() {
	if g.stop != nil || g.cfg.ReconcileInterval < 0 {
		return
	}
	interval := g.cfg.ReconcileInterval
	if interval == 0 {
		interval = defaultReconcileInterval
	}
	stop, done := make(chan struct{}), make(chan struct{})
	g.stop, g.done = stop, done
	jittered := func() time.Duration { return interval*3/4 + rand.N(interval/2+1) }
	go func() {
		defer close(done)
		t := time.NewTimer(jittered())
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			g.mu.Lock()
			if !g.closed {
				if err := g.reconcileLocked(false); err != nil {
					g.log.Warn("steer: periodic reconcile failed", "group", g.addr, "err", err)
				}
			}
			g.mu.Unlock()
			t.Reset(jittered())
		}
	}()
}

// reconcileLocked probes the group, attaches the program built from what it
// found, and probes again until a probe finds what the last attach
// assumed.
//
// Unless force is set, it attaches nothing when the first probe finds the
// table of the last reconcile, or a table the group's program was already
// built from (see installed), and it probes twice before attaching: then a
// process whose probe was overtaken by a change (a member joining) rarely
// puts back, even for the few milliseconds until its verifying probe, a
// program that misses it. Every attach is verified by the process that
// makes it, so a program goes stale only when the group changes.
//
// The first probe is untrustworthy while the group has no program of this
// package (probes then go by the kernel's hash); when the probers disagree
// it attaches the empty table first, which steers probes and hashes
// everything else, as the kernel does without a program.
func (g *Group) reconcileLocked(force bool) error {
	g.dropClosedLocked()
	if g.attacher() == nil {
		return nil
	}
	var attached slotTable
	bootstrapped, rechecked := false, false
	for range reconcileAttempts {
		t, steered, err := g.probe()
		if err != nil {
			return err
		}
		if !steered && !bootstrapped {
			bootstrapped = true
			if err := g.attach(nil); err != nil {
				return err
			}
			continue
		}
		g.markOwn(t)
		if attached != nil {
			keepSilentIDs(t, attached)
		} else {
			keepSilentIDs(t, g.table)
		}
		if attached != nil && t.equal(attached) || !force && attached == nil && !bootstrapped && t.equal(g.table) {
			g.setTable(t)
			return nil
		}
		if !force && attached == nil && !bootstrapped {
			// The group changed since this process last looked. The
			// process that changed it has usually attached the program
			// for it already; if not, the probe may have come just
			// before a change still under way, so probe once more
			// before attaching.
			if g.installed(t) {
				g.setTable(t)
				return nil
			}
			if !rechecked {
				rechecked = true
				continue
			}
		}
		if err := g.attach(t); err != nil {
			return err
		}
		attached = t
	}
	return fmt.Errorf("steer: the group on %v kept changing for %d probes", g.addr, reconcileAttempts)
}

// attach attaches the program for t through one of the Group's members. A
// member whose socket was closed without Leave is dropped.
func (g *Group) attach(t slotTable) error {
	for {
		via := g.attacher()
		if via == nil {
			return nil
		}
		err := sys.attach(via.conn, t, g.cidLen, g.key)
		if !errors.Is(err, net.ErrClosed) {
			return err
		}
		g.log.Warn("steer: a member's socket closed without Leave; dropping it", "group", g.addr, "member", fmt.Sprintf("%08x", via.id))
		via.left.Store(true)
		g.members = slices.DeleteFunc(g.members, func(o *Member) bool { return o == via })
	}
}

// dropClosedLocked takes out of the Group the members whose socket was
// closed without Leave: the kernel has already moved another socket into
// the slot, and a probe can no longer find them.
func (g *Group) dropClosedLocked() {
	g.members = slices.DeleteFunc(g.members, func(m *Member) bool {
		if m.left.Load() || !socketClosed(m.conn) {
			return false
		}
		g.log.Warn("steer: a member's socket closed without Leave; dropping it", "group", g.addr, "member", fmt.Sprintf("%08x", m.id))
		m.state.Store(uint32(stDraining))
		m.left.Store(true)
		return true
	})
}

// socketClosed reports whether conn has been closed.
func socketClosed(conn *net.UDPConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return true
	}
	return errors.Is(rc.Control(func(uintptr) {}), net.ErrClosed)
}

// attacher returns a member whose socket is in the group, through which a
// program can be attached.
func (g *Group) attacher() *Member {
	for _, m := range g.members {
		if !m.left.Load() {
			return m
		}
	}
	return nil
}

// keepSilentIDs keeps, in a slot of t that did not answer, the id that
// the table before had there, unless that id answered elsewhere: a member
// that is only slow to answer (a long pause, lost probes, or a joining
// member whose first client packet stopped Join answering for it) keeps
// its connections, though it gets no new ones. If its socket is in fact
// gone, its id reaches no other member anyway.
func keepSilentIDs(t, before slotTable) {
	for k := range min(len(t), len(before)) {
		if old := before[k].ID; t[k].State == stSilent && old != 0 && t.slotOf(old) < 0 {
			t[k].ID = old
		}
	}
}

// markOwn marks this Group's members in t, with their states as known here.
func (g *Group) markOwn(t slotTable) {
	for _, m := range g.members {
		if i := t.slotOf(m.id); i >= 0 {
			t[i].Mine = true
			t[i].State = m.currentState()
		}
	}
}

func (g *Group) setTable(t slotTable) {
	g.table = t
	silent := 0
	for _, s := range t {
		if s.State == stSilent {
			silent++
		}
	}
	switch {
	case silent == g.silent:
	case silent == 0:
		g.log.Info("steer: every socket of the group answers probes", "group", g.addr, "table", t)
	default:
		g.log.Warn("steer: sockets of the group do not answer probes; they get no new connections", "group", g.addr, "silent", silent, "sockets", len(t), "table", t)
	}
	g.silent = silent
}

// leaveLocked attaches the table for after ms close, in order, and takes
// them out of the Group.
func (g *Group) leaveLocked(ms []*Member) error {
	err := g.reconcileLocked(false)
	// The reconcile dropped the members whose socket closed without Leave.
	ms = slices.DeleteFunc(ms, func(m *Member) bool { return m.left.Load() })
	t := slices.Clone(g.table)
	known := err == nil
	for _, m := range ms {
		if i := t.slotOf(m.id); i >= 0 {
			t = t.afterClose(i)
		} else {
			known = false
		}
	}
	if known {
		// Any socket still open will do, the leaving ones too: the
		// program belongs to the group and stays when the socket that
		// attached it closes.
		err = g.attach(t)
	}
	for _, m := range ms {
		m.state.Store(uint32(stDraining))
		m.left.Store(true)
		g.members = slices.DeleteFunc(g.members, func(o *Member) bool { return o == m })
	}
	g.table = t
	if err != nil {
		return fmt.Errorf("steer: leaving the group on %v: %w", g.addr, err)
	}
	if !known {
		return fmt.Errorf("steer: leaving the group on %v: a leaving member is not in the group's table %v", g.addr, t)
	}
	return nil
}

// CIDLen returns the length of the connection IDs the member issues.
func (m *Member) CIDLen() int { return m.g.cidLen }

// currentState returns Accepting, or Draining after Drain or Leave.
func (m *Member) currentState() memberState { return memberState(m.state.Load()) }

// NewConnectionID returns a new connection ID of CIDLen bytes from which
// the group's program, and no one without the group's key, reads the
// member's id, so that the packets that carry it reach this member's
// socket. Apart from that id it is random.
func (m *Member) NewConnectionID() []byte {
	return newCID(m.g.key, m.id, m.g.cidLen)
}

// HandleControl handles b if it is a control packet of this package: if it
// is a well-formed probe from this host it writes the reply with write (to
// from, the same size as the probe) and reports true; any other control
// packet it drops and reports true. For a packet that is not a control
// packet it does nothing and reports false, and the caller handles it.
func (m *Member) HandleControl(b []byte, from net.Addr, write func([]byte, net.Addr) (int, error)) bool {
	if !IsControl(b) {
		return false
	}
	p, err := parseControl(b)
	if err != nil || p.kind != kindProbe || !m.g.probeFrom(from) {
		return true
	}
	reply := probeMsg{kind: kindReply, slot: p.slot, nonce: p.nonce, id: m.id, state: m.currentState(), cidLen: m.g.cidLen, keyTag: m.g.key.tag()}
	write(reply.marshal(), from)
	return true
}

// Drain takes the member out of the accepting set: the clients' first
// packets stop reaching it, while the packets of its own connections keep
// doing so. It reconciles the group at once.
func (m *Member) Drain() error {
	m.state.Store(uint32(stDraining))
	g := m.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if m.left.Load() {
		return nil
	}
	return g.reconcileLocked(true)
}

// Leave prepares the member's socket to close: it attaches the program for
// the group as it will be once the socket has closed, in which the kernel
// has moved the group's last socket into this one's slot. The caller closes
// the socket right after. Packets for the moved socket that arrive in
// between (microseconds) reach the closing one and are lost; QUIC sends
// them again. Leave is safe to call more than once.
func (m *Member) Leave() error {
	g := m.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if m.left.Load() {
		return nil
	}
	return g.leaveLocked([]*Member{m})
}
