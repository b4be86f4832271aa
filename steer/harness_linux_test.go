package steer

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
)

// flows is how many clients (UDP 4-tuples) a test connects: each share
// below is measured on a couple of hundred, a few percent wide.
const flows = 240

// A server is a group of UDP sockets on one port standing in for QUIC
// servers: each socket's reader answers probes (when steered) and reports
// which socket every other datagram reached and which client sent it,
// from the client's number in the datagram's last 4 bytes.
type server struct {
	t        *testing.T
	g        *Group // nil for the control without steering
	addr     *net.UDPAddr
	socks    map[int]*sock
	arrivals chan arrival
	wg       sync.WaitGroup
}

type sock struct {
	conn    *net.UDPConn
	m       *Member // nil when not steered or not taking part
	stopped chan struct{}
	probes  chan struct{} // a control packet reached a socket that does not take part
	mute    atomic.Bool   // drop probes instead of answering them
}

type arrival struct{ sock, client int }

func newServer(t *testing.T, n int, steered bool) *server {
	t.Helper()
	if steered {
		RequireSteering(t)
	}
	s := &server{t: t, socks: map[int]*sock{}, arrivals: make(chan arrival, 4*flows)}
	if steered {
		s.g = mustNewGroup(t, Config{ReconcileInterval: -1, Logger: testLogger(t)})
	}
	t.Cleanup(func() {
		if s.g != nil {
			s.g.Close()
		}
		for _, so := range s.socks {
			so.conn.Close()
		}
		s.wg.Wait()
	})
	for i := range n {
		s.join(i)
	}
	return s
}

// bind binds one more socket to the group's port (a new one for the first).
func (s *server) bind() *net.UDPConn {
	s.t.Helper()
	addr := "127.0.0.1:0"
	if s.addr != nil {
		addr = s.addr.String()
	}
	pc, err := reuseport.ListenPacket("udp4", addr)
	if err != nil {
		s.t.Fatalf("binding %s: %v", addr, err)
	}
	s.addr = pc.LocalAddr().(*net.UDPAddr)
	return pc.(*net.UDPConn)
}

// join binds socket i and, when steered, joins it to the group.
func (s *server) join(i int) {
	s.t.Helper()
	s.joinGroup(i, s.g)
}

// joinGroup binds socket i and, unless g is nil, joins it to g.
func (s *server) joinGroup(i int, g *Group) {
	s.t.Helper()
	conn := s.bind()
	var m *Member
	if g != nil {
		var err error
		if m, err = g.Join(conn); err != nil {
			s.t.Fatalf("joining socket %d: %v", i, err)
		}
	}
	s.read(i, conn, m)
}

// bystander binds socket i to the port without taking part in the group.
func (s *server) bystander(i int) *sock {
	s.t.Helper()
	return s.read(i, s.bind(), nil)
}

func (s *server) read(i int, conn *net.UDPConn, m *Member) *sock {
	so := &sock{conn: conn, m: m, stopped: make(chan struct{}), probes: make(chan struct{}, 1)}
	s.socks[i] = so
	s.wg.Go(func() {
		defer close(so.stopped)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
					s.t.Errorf("reading socket %d: %v", i, err)
				}
				return
			}
			if m != nil && !so.mute.Load() && m.HandleControl(buf[:n], from, conn.WriteTo) {
				continue
			}
			if IsControl(buf[:n]) {
				select {
				case so.probes <- struct{}{}:
				default:
				}
				continue
			}
			if n < 4 {
				s.t.Errorf("socket %d got a stray %d-byte datagram", i, n)
				continue
			}
			s.arrivals <- arrival{i, int(binary.BigEndian.Uint32(buf[n-4 : n]))}
		}
	})
	return so
}

// crash closes socket i without Leave, as the death of its process does.
func (s *server) crash(i int) {
	so := s.socks[i]
	so.conn.Close()
	<-so.stopped
	delete(s.socks, i)
}

// leave takes socket i out of the group: Leave, then close.
func (s *server) leave(i int) {
	s.t.Helper()
	so := s.socks[i]
	if so.m != nil {
		if err := so.m.Leave(); err != nil {
			s.t.Fatalf("socket %d leaving: %v", i, err)
		}
	}
	so.conn.Close()
	<-so.stopped
	delete(s.socks, i)
}

func (s *server) drain(i int) {
	s.t.Helper()
	if m := s.socks[i].m; m != nil {
		if err := m.Drain(); err != nil {
			s.t.Fatalf("socket %d draining: %v", i, err)
		}
	}
}

// A conn is one client's QUIC connection as the datagrams show it: the
// socket that got its first flight owns it and gave it a connection ID.
type conn struct {
	c     *net.UDPConn
	owner int
	cid   []byte
}

// connect opens n clients and sends each one's first flight (a long header
// with a random 16-byte DCID): the socket it reaches owns the connection
// and issues its connection ID (from its Member when steered).
func (s *server) connect(n int) []*conn {
	s.t.Helper()
	cs := make([]*conn, n)
	s.t.Cleanup(func() {
		for _, c := range cs {
			if c != nil {
				c.c.Close()
			}
		}
	})
	for i := range cs {
		c, err := net.DialUDP("udp4", nil, s.addr)
		if err != nil {
			s.t.Fatalf("client %d: %v", i, err)
		}
		dcid := make([]byte, 16)
		rand.Read(dcid)
		owner := s.send(c, i, initial(dcid))
		cid := make([]byte, defaultCIDLen)
		rand.Read(cid)
		if m := s.socks[owner].m; m != nil {
			cid = m.NewConnectionID()
		}
		cs[i] = &conn{c: c, owner: owner, cid: cid}
	}
	return cs
}

// firstFlights sends n new clients' first flights and returns the socket
// each reached.
func (s *server) firstFlights(n int) []int {
	s.t.Helper()
	landed := make([]int, n)
	for i := range landed {
		c, err := net.DialUDP("udp4", nil, s.addr)
		if err != nil {
			s.t.Fatalf("client %d: %v", i, err)
		}
		dcid := make([]byte, 8+i%13)
		rand.Read(dcid)
		landed[i] = s.send(c, i, initial(dcid))
		c.Close()
	}
	return landed
}

// use sends one short-header and one long-header (Handshake) datagram on
// every connection and counts those that reached a socket other than
// their owner, among the connections owned by sockets for which among is
// true (all when nil).
func (s *server) use(cs []*conn, among func(owner int) bool) (moved, of int) {
	s.t.Helper()
	for i, c := range cs {
		if among != nil && !among(c.owner) {
			continue
		}
		for _, p := range [][]byte{shortHeader(c.cid), handshake(c.cid)} {
			of++
			if got := s.send(c.c, i, p); got != c.owner {
				moved++
			}
		}
	}
	return moved, of
}

// send sends p with the client number appended and returns the socket it
// reached.
func (s *server) send(c *net.UDPConn, client int, p []byte) int {
	s.t.Helper()
	p = binary.BigEndian.AppendUint32(p, uint32(client))
	if _, err := c.Write(p); err != nil {
		s.t.Fatalf("client %d sending: %v", client, err)
	}
	select {
	case a := <-s.arrivals:
		if a.client != client {
			s.t.Fatalf("waiting for client %d, got a datagram of client %d on socket %d", client, a.client, a.sock)
		}
		return a.sock
	case <-time.After(5 * time.Second):
		s.t.Fatalf("the datagram of client %d never arrived", client)
	}
	return -1
}

// QUIC headers (RFC 9000, 17.2 and 17.3), with a little payload.
func shortHeader(dcid []byte) []byte {
	return append(append([]byte{0x40}, dcid...), make([]byte, 20)...)
}

func longHeader(typ byte, dcid []byte) []byte {
	b := []byte{0xc0 | typ<<4, 0, 0, 0, 1, byte(len(dcid))}
	b = append(b, dcid...)
	b = append(b, 8, 1, 2, 3, 4, 5, 6, 7, 8) // the client's SCID
	return append(b, make([]byte, 40)...)
}

func initial(dcid []byte) []byte   { return longHeader(0, dcid) }
func handshake(dcid []byte) []byte { return longHeader(2, dcid) }

// counts counts the sockets in landed.
func counts(landed []int) map[int]int {
	c := map[int]int{}
	for _, s := range landed {
		c[s]++
	}
	return c
}
