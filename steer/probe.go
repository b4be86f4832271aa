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
const (
	probers       = 3
	probeRounds   = 6                     // rounds of retries for unanswered slots
	firstWait     = 10 * time.Millisecond // doubled each round
	minProbeSlots = 8
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
	state  State
	cidLen int
}

type prober struct {
	conn    *net.UDPConn
	nonce   uint64
	answers map[uint32]answer // by slot
}

// probe probes the group and returns its table, and whether the probers
// agreed on every slot (they do when a program of this package steers the
// probes).
func (g *Group) probe() (Table, bool, error) {
	network, dst := probeTarget(g.addr)
	var local *net.UDPAddr
	if dst.IP.IsLoopback() {
		local = &net.UDPAddr{IP: dst.IP}
	}
	ps := make([]*prober, probers)
	for i := range ps {
		c, err := net.ListenUDP(network, local)
		if err != nil {
			return nil, false, fmt.Errorf("steer: opening a socket to probe %v: %w", dst, err)
		}
		defer c.Close()
		ps[i] = &prober{conn: c, nonce: randomNonce(), answers: map[uint32]answer{}}
	}
	limit := uint32(max(len(g.table)+4, minProbeSlots))
	wait := firstWait
	end := -1
	for range probeRounds {
		var wg sync.WaitGroup
		errs := make([]error, len(ps))
		for i, p := range ps {
			wg.Go(func() { errs[i] = p.round(dst, limit, wait) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, false, err
		}
		end = groupEnd(ps)
		if end < 0 && limit <= MaxMembers {
			// No probe past the end yet: the group is larger, or its
			// probes were lost or reached sockets that do not answer.
			limit = min(2*limit, MaxMembers+1)
		} else if end >= 0 && answeredBelow(ps, end) {
			break
		}
		wait *= 2
	}
	if end < 0 {
		// Every probe past the end reached a socket that does not answer:
		// the group ends after the last slot that answered.
		end = 0
		for _, p := range ps {
			for k := range p.answers {
				end = max(end, int(k)+1)
			}
		}
	}
	t := make(Table, end)
	steered := true
	for k := range t {
		for _, p := range ps {
			a, ok := p.answers[uint32(k)]
			switch {
			case !ok:
			case t[k].State == Silent:
				t[k] = Slot{ID: a.id, State: a.state}
				if a.cidLen != g.cidLen && !g.cidLenReported {
					g.cidLenReported = true
					g.logf("steer: member %08x of the group on %v issues %d-byte connection IDs, this process %d; the long-header packets of its connections are not steered", a.id, g.addr, a.cidLen, g.cidLen)
				}
			case t[k].ID != a.id:
				steered = false
			}
		}
	}
	return t, steered, nil
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
			p.answers[r.slot] = answer{r.id, r.state, r.cidLen}
			pending--
		}
	}
	return nil
}
