package reuseport_test

import (
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
)

// udpFlows is how many client 4-tuples each test sends from. Each share
// below is then measured on a few hundred flows, a few percent wide.
const udpFlows = 600

// TestUDPFlowsMoveWhenTheGroupChanges checks what docs/quic.md says under
// "Why UDP needs more than SO_REUSEPORT": the kernel hashes each UDP flow (4-tuple) onto the
// sockets of a group, so a socket that joins or leaves moves flows that
// belong to sockets that stay, while a handoff, which passes a socket on
// without changing the group, moves none and keeps its queued datagrams.
// A QUIC connection whose flow moves reaches a process that has never
// heard of it.
func TestUDPFlowsMoveWhenTheGroupChanges(t *testing.T) {
	requireBalance(t)

	t.Run("unchanged", func(t *testing.T) {
		g := newUDPGroup(t, 3)
		cs := udpClients(t, g.addr, udpFlows)
		before := g.land(cs)
		requireAll(t, perSocket(before, 3))
		after := g.land(cs)
		if moved, of := movedFlows(before, after, nil); moved != 0 {
			t.Fatalf("%d of %d flows moved with no change to the group", moved, of)
		}
	})

	t.Run("a socket joins", func(t *testing.T) {
		g := newUDPGroup(t, 3)
		cs := udpClients(t, g.addr, udpFlows)
		before := g.land(cs)
		g.join(3)
		after := g.land(cs)
		moved, of := movedFlows(before, after, nil)
		toNew := perSocket(after, 4)[3]
		t.Logf("3 → 4 sockets: %d of %d flows (%.0f%%) moved, %d of them to the new socket, %d between the old ones",
			moved, of, 100*float64(moved)/float64(of), toNew, int64(moved)-toNew)
		// Linux scales the hash onto the group's size: half the flows
		// move when 3 becomes 4, some between sockets that were already
		// there.
		if share := float64(moved) / float64(of); share < 0.3 || share > 0.7 {
			t.Errorf("%.0f%% of flows moved when a 4th socket joined; want about half", 100*share)
		}
		if toNew == 0 || int64(moved) == toNew {
			t.Errorf("of %d flows that moved, %d went to the new socket; want some to it and some between the old ones", moved, toNew)
		}
	})

	// Linux fills the gap a leaving socket leaves in the group with the
	// last socket, so the share of the others' flows that move depends
	// on the leaver's place: with 3 sockets, three quarters, none, or a
	// quarter.
	for _, tc := range []struct {
		name     string
		leaver   int
		min, max float64
	}{
		{"the first socket leaves", 0, 0.6, 0.9},
		{"the middle socket leaves", 1, 0, 0.05},
		{"the last socket leaves", 2, 0.1, 0.4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newUDPGroup(t, 3)
			cs := udpClients(t, g.addr, udpFlows)
			before := g.land(cs)
			g.close(tc.leaver)
			after := g.land(cs)
			moved, of := movedFlows(before, after, func(s int) bool { return s != tc.leaver })
			share := float64(moved) / float64(of)
			t.Logf("3 → 2 sockets, socket %d leaving: %d of the %d flows of the other sockets (%.0f%%) moved", tc.leaver, moved, of, 100*share)
			if share < tc.min || share > tc.max {
				t.Errorf("%.0f%% of the other sockets' flows moved; want %.0f%% to %.0f%%", 100*share, 100*tc.min, 100*tc.max)
			}
		})
	}

	// Both cases leave datagrams unread on socket 0, then give it up: the
	// control closes it, the handoff passes it on (as a duplicate
	// descriptor, which is what SCM_RIGHTS delivers) and closes only the
	// predecessor's descriptor.
	t.Run("closing a socket drops its queued datagrams", func(t *testing.T) {
		g := newUDPGroup(t, 3)
		cs := udpClients(t, g.addr, udpFlows)
		before := g.land(cs)
		queued := g.queueOn(0, cs, before)
		g.close(0)
		if got := g.collect(time.Second); got != 0 {
			t.Fatalf("%d of %d datagrams queued on a closed socket arrived", got, queued)
		}
		t.Logf("%d datagrams queued on the socket that closed; none arrived", queued)
	})

	t.Run("handoff", func(t *testing.T) {
		g := newUDPGroup(t, 3)
		cs := udpClients(t, g.addr, udpFlows)
		before := g.land(cs)
		queued := g.queueOn(0, cs, before)
		g.handOff(0)
		if got := g.collect(time.Second); got != queued {
			t.Fatalf("%d of %d datagrams queued before the handoff arrived at the successor", got, queued)
		}
		after := g.land(cs)
		if moved, of := movedFlows(before, after, nil); moved != 0 {
			t.Fatalf("%d of %d flows moved when a socket was handed off", moved, of)
		}
		t.Logf("handoff: no flow of %d moved; the successor read all %d datagrams queued before it", udpFlows, queued)
	})
}

// udpGroup is a group of UDP sockets on one port, each with a reader that
// reports which socket every datagram reached and which flow sent it.
type udpGroup struct {
	t        *testing.T
	addr     string
	socks    map[int]net.PacketConn
	stopped  map[int]chan struct{} // closed when the socket's reader returns
	arrivals chan udpArrival
	wg       sync.WaitGroup
}

type udpArrival struct{ socket, flow int }

func newUDPGroup(t *testing.T, n int) *udpGroup {
	t.Helper()
	g := &udpGroup{
		t:        t,
		socks:    map[int]net.PacketConn{},
		stopped:  map[int]chan struct{}{},
		arrivals: make(chan udpArrival, 2*udpFlows),
	}
	t.Cleanup(func() {
		for _, pc := range g.socks {
			pc.Close()
		}
		g.wg.Wait()
	})
	for i, pc := range packetConns(t, bySeparate, "udp4", "127.0.0.1:0", n) {
		g.read(i, pc)
	}
	g.addr = g.socks[0].LocalAddr().String()
	return g
}

// read starts reading pc as socket id, until pc closes or its read
// deadline passes.
func (g *udpGroup) read(id int, pc net.PacketConn) {
	g.socks[id] = pc
	stopped := make(chan struct{})
	g.stopped[id] = stopped
	g.wg.Go(func() {
		defer close(stopped)
		buf := make([]byte, 64)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
					g.t.Errorf("reading socket %d: %v", id, err)
				}
				return
			}
			flow, err := strconv.Atoi(string(buf[:n]))
			if err != nil {
				g.t.Errorf("socket %d got a stray datagram %q", id, buf[:n])
				continue
			}
			g.arrivals <- udpArrival{id, flow}
		}
	})
}

// join adds socket id to the group.
func (g *udpGroup) join(id int) {
	g.t.Helper()
	pc, err := reuseport.ListenPacket("udp4", g.addr)
	if err != nil {
		g.t.Fatalf("joining %s: %v", g.addr, err)
	}
	g.read(id, pc)
}

// close takes socket id out of the group.
func (g *udpGroup) close(id int) {
	g.socks[id].Close()
	<-g.stopped[id]
	delete(g.socks, id)
}

// handOff does to socket id what a handoff does: a successor gets a
// duplicate of its descriptor and reads it, and the predecessor closes
// its own. The socket itself never closes.
func (g *udpGroup) handOff(id int) {
	g.t.Helper()
	f, err := g.socks[id].(*net.UDPConn).File()
	if err != nil {
		g.t.Fatalf("duplicating socket %d: %v", id, err)
	}
	successor, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		g.t.Fatalf("rebuilding socket %d from its duplicate: %v", id, err)
	}
	g.close(id)
	g.read(id, successor)
}

// queueOn stops reading socket id and sends one datagram on each flow
// that landed on it, which stay in its receive queue. It returns how many
// it sent.
func (g *udpGroup) queueOn(id int, cs []*net.UDPConn, landed []int) int {
	g.t.Helper()
	g.socks[id].SetReadDeadline(time.Now())
	<-g.stopped[id]
	queued := 0
	for flow, s := range landed {
		if s != id {
			continue
		}
		if _, err := cs[flow].Write([]byte(strconv.Itoa(flow))); err != nil {
			g.t.Fatalf("sending on flow %d: %v", flow, err)
		}
		queued++
	}
	if queued == 0 {
		g.t.Fatalf("no flow landed on socket %d", id)
	}
	return queued
}

// collect counts the datagrams that arrive until none has for quiet.
func (g *udpGroup) collect(quiet time.Duration) int {
	n := 0
	for {
		select {
		case <-g.arrivals:
			n++
		case <-time.After(quiet):
			return n
		}
	}
}

// land sends one datagram on each flow, one at a time, and returns the
// socket each reached.
func (g *udpGroup) land(cs []*net.UDPConn) []int {
	g.t.Helper()
	landed := make([]int, len(cs))
	for flow, c := range cs {
		if _, err := c.Write([]byte(strconv.Itoa(flow))); err != nil {
			g.t.Fatalf("sending on flow %d: %v", flow, err)
		}
		select {
		case a := <-g.arrivals:
			if a.flow != flow {
				g.t.Fatalf("waiting for flow %d, got a datagram of flow %d on socket %d", flow, a.flow, a.socket)
			}
			landed[flow] = a.socket
		case <-time.After(5 * time.Second):
			g.t.Fatalf("the datagram of flow %d never arrived", flow)
		}
	}
	return landed
}

// udpClients opens n connected UDP sockets to addr: n fixed 4-tuples.
func udpClients(t *testing.T, addr string, n int) []*net.UDPConn {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	cs := make([]*net.UDPConn, n)
	t.Cleanup(func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	})
	for i := range cs {
		if cs[i], err = net.DialUDP("udp4", nil, raddr); err != nil {
			t.Fatalf("client %d of %d: %v", i, n, err)
		}
	}
	return cs
}

// movedFlows counts the flows, among those that were on a socket for
// which among is true (all if among is nil), that are on another now.
func movedFlows(before, after []int, among func(socket int) bool) (moved, of int) {
	for flow, s := range before {
		if among != nil && !among(s) {
			continue
		}
		of++
		if after[flow] != s {
			moved++
		}
	}
	return moved, of
}

// perSocket counts the flows on each of n sockets.
func perSocket(landed []int, n int) []int64 {
	counts := make([]int64, n)
	for _, s := range landed {
		counts[s]++
	}
	return counts
}
