package steer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// Probing: from ephemeral sockets outside the group, probe k asks for slot
// k. The program steers it to the socket in slot k, whose member answers
// with its id and state. A probe for a slot past the end of the group
// falls back to the kernel's hash and reaches a socket already seen at a
// lower slot: the first such slot is the size of the group. Each prober
// has its own source port, so their probes past the end hash to different
// sockets, and a group without a program (every probe by hash) shows as
// probers that disagree.
//
// The hash of a prober's address picks one socket for all its probes past
// the end. When that socket answers no probe (a socket bound but not
// joined yet, or one that does not take part), the prober cannot see the
// end, and when the group ends in such sockets (its last slots answer
// nothing) no prober may see it. Then the Group scouts: it sends one probe
// for slot scoutSlot, always past the end, from each of up to maxScouts
// new source ports, and the ports whose probe a member answers probe the
// group too. Each scout reaches a member with probability (members that
// answer) / (sockets in the group).
const (
	probers       = 3
	probeRounds   = 6                     // rounds of retries for unanswered slots
	firstWait     = 10 * time.Millisecond // doubled each round
	minProbeSlots = 8

	scoutSlot  = 0xffffffff // past the end of every group
	scoutBatch = 32         // scouts opened at once
	maxScouts  = 512
	goodScouts = 2 // scouts kept to probe the group
	scoutWait  = 20 * time.Millisecond
)

// probeFrom reports whether a probe from addr may be answered: it must come
// from this host, as the Group's probers do.
func (g *Group) probeFrom(addr net.Addr) bool {
	u, ok := addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	return u.IP.IsLoopback() || (g.addr != nil && u.IP.Equal(g.addr.IP))
}

// probeTarget returns the network and address to probe the group bound to
// addr at: the address itself, or loopback of its family when it is
// unspecified.
func probeTarget(addr *net.UDPAddr) (string, *net.UDPAddr) {
	ip := addr.IP
	v4 := ip.To4() != nil
	if ip.IsUnspecified() {
		if v4 {
			ip = net.IPv4(127, 0, 0, 1)
		} else {
			ip = net.IPv6loopback
		}
	}
	if v4 {
		return "udp4", &net.UDPAddr{IP: ip.To4(), Port: addr.Port}
	}
	return "udp6", &net.UDPAddr{IP: ip, Port: addr.Port, Zone: addr.Zone}
}

// answer is what probing learned about one slot from one prober.
type answer struct {
	id     uint32
	state  memberState
	cidLen int
	keyTag byte
}

type prober struct {
	conn    *net.UDPConn
	nonce   uint64
	answers map[uint32]answer // by slot
}

// probe probes the group and returns its table, and whether the probers
// agreed on every slot (they do when a program of this package steers the
// probes).
func (g *Group) probe() (slotTable, bool, error) {
	network, dst := probeTarget(g.addr)
	var local *net.UDPAddr
	if dst.IP.IsLoopback() {
		local = &net.UDPAddr{IP: dst.IP}
	}
	ps, err := newProbers(network, local, probers)
	defer func() {
		for _, p := range ps {
			p.conn.Close()
		}
	}()
	if err != nil {
		return nil, false, fmt.Errorf("steer: opening a socket to probe %v: %w", dst, err)
	}
	end, err := g.probeRounds(&ps, network, local, dst)
	if err != nil {
		return nil, false, err
	}
	t, steered := g.tableOf(ps, end)
	return t, steered, nil
}

// newProbers opens n sockets to probe from.
func newProbers(network string, local *net.UDPAddr, n int) ([]*prober, error) {
	var ps []*prober
	for range n {
		c, err := net.ListenUDP(network, local)
		if err != nil {
			return ps, err
		}
		ps = append(ps, &prober{conn: c, nonce: randomNonce(), answers: map[uint32]answer{}})
	}
	return ps, nil
}

// probeRounds probes from every prober, round after round, until a probe
// past the end of the group has found its end and every slot below has
// answered, or the rounds run out. When no probe passes the end it adds
// scouts to *ps, which the caller closes. It returns the size of the group.
func (g *Group) probeRounds(ps *[]*prober, network string, local, dst *net.UDPAddr) (int, error) {
	limit := uint32(max(len(g.table)+4, minProbeSlots))
	wait := firstWait
	end := -1
	scouted := false
	for round := range probeRounds {
		var wg sync.WaitGroup
		errs := make([]error, len(*ps))
		for i, p := range *ps {
			wg.Go(func() { errs[i] = p.round(dst, limit, wait) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, err
		}
		end = groupEnd(*ps)
		if end < 0 && !scouted && round < probeRounds-1 {
			// The group may end in sockets that answer no probe.
			scouted = true
			scouts, err := scout(network, local, dst)
			*ps = append(*ps, scouts...)
			if err != nil {
				return 0, err
			}
		}
		if end < 0 && limit <= maxMembers {
			// No probe past the end yet: the group is larger, or its
			// probes were lost or reached sockets that do not answer.
			limit = min(2*limit, maxMembers+1)
		} else if end >= 0 && answeredBelow(*ps, end) {
			return end, nil
		}
		wait *= 2
	}
	if end >= 0 {
		return end, nil
	}
	// Every probe past the end reached a socket that does not answer, the
	// scouts' too: the group ends after the last slot that answered, as
	// far as probing can tell.
	end = 0
	for _, p := range *ps {
		for k := range p.answers {
			end = max(end, int(k)+1)
		}
	}
	if scouted {
		g.log.Info("steer: no probe past the end of the group reached a member that answers; taking it to end at the last that did", "group", g.addr, "slots", end)
	}
	return end, nil
}

// tableOf makes the table of a group of end slots from the probers'
// answers, and reports whether they agreed on every slot.
func (g *Group) tableOf(ps []*prober, end int) (slotTable, bool) {
	t := make(slotTable, end)
	steered := true
	for k := range t {
		for _, p := range ps {
			a, ok := p.answers[uint32(k)]
			switch {
			case !ok:
			case t[k].State == stSilent:
				t[k] = slotInfo{ID: a.id, State: a.state}
				g.checkPeer(a)
			case t[k].ID != a.id:
				steered = false
			}
		}
	}
	return t, steered
}

// checkPeer logs, once each, a member of the group that issues connection
// IDs of another length or hides its id with another key: the program of
// this process cannot steer its connections' packets, nor its program this
// process's.
func (g *Group) checkPeer(a answer) {
	if a.cidLen != g.cidLen && !g.cidLenReported {
		g.cidLenReported = true
		g.log.Warn("steer: a member of the group issues connection IDs of another length; the long-header packets of its connections are not steered", "group", g.addr, "member", fmt.Sprintf("%08x", a.id), "its_cid_len", a.cidLen, "cid_len", g.cidLen)
	}
	if a.keyTag != g.key.tag() && !g.keyReported {
		g.keyReported = true
		g.log.Warn("steer: a member of the group hides its id with another Config.Key; the packets of its connections are not steered", "group", g.addr, "member", fmt.Sprintf("%08x", a.id))
	}
}

// groupEnd returns the first slot for which some prober got an id already
// seen at a lower slot, or -1.
func groupEnd(ps []*prober) int {
	seen := map[uint32]uint32{} // id → lowest slot it answered
	for _, p := range ps {
		for k, a := range p.answers {
			if s, ok := seen[a.id]; !ok || k < s {
				seen[a.id] = k
			}
		}
	}
	end := -1
	for _, p := range ps {
		for k, a := range p.answers {
			if seen[a.id] < k && (end < 0 || int(k) < end) {
				end = int(k)
			}
		}
	}
	return end
}

// answeredBelow reports whether every prober has an answer for every slot
// below n.
func answeredBelow(ps []*prober, n int) bool {
	for _, p := range ps {
		for k := range n {
			if _, ok := p.answers[uint32(k)]; !ok {
				return false
			}
		}
	}
	return true
}

// round sends a probe for each slot below limit that p has no answer for,
// and reads replies until each has one or wait has passed.
func (p *prober) round(dst *net.UDPAddr, limit uint32, wait time.Duration) error {
	pending := 0
	for k := range limit {
		if _, ok := p.answers[k]; ok {
			continue
		}
		probe := probeMsg{kind: kindProbe, slot: k, nonce: p.nonce}
		if _, err := p.conn.WriteToUDP(probe.marshal(), dst); err != nil {
			return fmt.Errorf("steer: probing %v: %w", dst, err)
		}
		pending++
	}
	p.conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, controlLen+1)
	for pending > 0 {
		n, from, err := p.conn.ReadFromUDP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("steer: reading replies from %v: %w", dst, err)
		}
		r, err := parseControl(buf[:n])
		if err != nil || r.kind != kindReply || r.nonce != p.nonce || r.slot >= limit ||
			from.Port != dst.Port || !from.IP.Equal(dst.IP) {
			continue // not an answer to this prober
		}
		if _, dup := p.answers[r.slot]; !dup {
			p.answers[r.slot] = answer{r.id, r.state, r.cidLen, r.keyTag}
			pending--
		}
	}
	return nil
}

// scout opens probers on new source ports, scoutBatch at a time and at
// most maxScouts, and sends from each one probe for scoutSlot, which the
// kernel hashes by the prober's address onto some socket of the group. It
// returns, open, up to goodScouts probers whose probe a member answered:
// their probes past the end of the group reach that member, which answers
// them, so they see where the group ends even when its last sockets
// answer nothing. It returns none if no member answered.
func scout(network string, local, dst *net.UDPAddr) ([]*prober, error) {
	var good []*prober
	probe := func(p *prober) error {
		b := probeMsg{kind: kindProbe, slot: scoutSlot, nonce: p.nonce}.marshal()
		_, err := p.conn.WriteToUDP(b, dst)
		return err
	}
	buf := make([]byte, controlLen+1)
	for tried := 0; tried < maxScouts && len(good) < goodScouts; tried += scoutBatch {
		batch := make([]*prober, 0, scoutBatch)
		var err error
		for range scoutBatch {
			var c *net.UDPConn
			if c, err = net.ListenUDP(network, local); err != nil {
				err = fmt.Errorf("steer: opening a socket to probe %v: %w", dst, err)
				break
			}
			p := &prober{conn: c, nonce: randomNonce(), answers: map[uint32]answer{}}
			batch = append(batch, p)
			if err = probe(p); err != nil {
				err = fmt.Errorf("steer: probing %v: %w", dst, err)
				break
			}
		}
		// Every reply of the batch is queued on its socket by the
		// deadline; read them in turn.
		deadline := time.Now().Add(scoutWait)
		for _, p := range batch {
			if err == nil && len(good) < goodScouts && p.scoutAnswered(dst, deadline, buf) {
				good = append(good, p)
			} else {
				p.conn.Close()
			}
		}
		if err != nil {
			return good, err
		}
	}
	return good, nil
}

// scoutAnswered reports whether a member answered p's probe for scoutSlot
// by deadline.
func (p *prober) scoutAnswered(dst *net.UDPAddr, deadline time.Time, buf []byte) bool {
	p.conn.SetReadDeadline(deadline)
	for {
		n, from, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return false
		}
		r, err := parseControl(buf[:n])
		if err == nil && r.kind == kindReply && r.nonce == p.nonce && r.slot == scoutSlot &&
			from.Port == dst.Port && from.IP.Equal(dst.IP) {
			return true
		}
	}
}

// Checks: before a periodic reconcile attaches the table it found, it asks
// whether the group's program was already built from that table, which is
// the case when the process that changed the group attached it. A check is
// a probe for slot 0 that carries the table's digest; the program steers it
// to slot 0 if its own table has that digest and to slot 1 if not, so the
// id of the member that answers tells. Without it every process would
// attach again, at its next reconcile, each change another made, and one
// whose probe had come just before a later change would put back, for the
// milliseconds until its verifying probe, a table from before it.
const (
	checkRounds = 4
	checkWait   = 10 * time.Millisecond // doubled each round
)

// installed reports whether the group's program was built from t. It
// reports false when it cannot tell: slots 0 and 1 must hold two members
// that answer probes.
func (g *Group) installed(t slotTable) bool {
	if len(t) < 2 || t[0].State == stSilent || t[1].State == stSilent || t[0].ID == t[1].ID {
		return false
	}
	network, dst := probeTarget(g.addr)
	var local *net.UDPAddr
	if dst.IP.IsLoopback() {
		local = &net.UDPAddr{IP: dst.IP}
	}
	c, err := net.ListenUDP(network, local)
	if err != nil {
		return false
	}
	defer c.Close()
	nonce := randomNonce()
	check := probeMsg{kind: kindProbe, slot: 0, nonce: nonce, digest: t.digest(g.cidLen, g.key)}.marshal()
	buf := make([]byte, controlLen+1)
	wait := checkWait
	for range checkRounds {
		if _, err := c.WriteToUDP(check, dst); err != nil {
			return false
		}
		c.SetReadDeadline(time.Now().Add(wait))
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				break // the deadline: send again
			}
			r, err := parseControl(buf[:n])
			if err != nil || r.kind != kindReply || r.nonce != nonce || r.slot != 0 ||
				from.Port != dst.Port || !from.IP.Equal(dst.IP) {
				continue
			}
			return r.id == t[0].ID
		}
		wait *= 2
	}
	return false
}
