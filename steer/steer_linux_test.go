package steer

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"golang.org/x/sys/unix"
)

// TestConnectionsStayWhenTheGroupChanges checks that, with steering, every
// packet of a connection reaches the socket that owns it whatever joins,
// leaves or drains, and that a client's first flight reaches only
// accepting sockets. Beside each case the control, a group without
// steering, shows the kernel's hash moving the same connections (see
// TestUDPFlowsMoveWhenTheGroupChanges in the root package).
func TestConnectionsStayWhenTheGroupChanges(t *testing.T) {
	for _, steered := range []bool{true, false} {
		mode := "steered"
		if !steered {
			mode = "control"
		}
		// Linux scales the hash onto the group's size, and fills the slot
		// of a socket that closes with the last one: without steering,
		// half the connections move when a 4th socket joins, and three
		// quarters, none, or a quarter of the other sockets' connections
		// move when one of 3 leaves.
		for _, tc := range []struct {
			name     string
			leaver   int // -1: a socket joins
			after    int // sockets after the change
			min, max float64
		}{
			{"a socket joins", -1, 4, 0.3, 0.7},
			{"the first socket leaves", 0, 2, 0.6, 0.9},
			{"the middle socket leaves", 1, 2, 0, 0.05},
			{"the last socket leaves", 2, 2, 0.1, 0.4},
		} {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				s := newServer(t, 3, steered)
				cs := s.connect(flows)
				requireSpread(t, s.ownerCounts(cs), 3, steered)
				if moved, of := s.use(cs, nil); moved != 0 {
					t.Fatalf("%d of %d packets reached another socket before the group changed", moved, of)
				}
				if tc.leaver < 0 {
					s.join(3)
				} else {
					s.leave(tc.leaver)
				}
				staying := func(owner int) bool { return owner != tc.leaver }
				moved, of := s.use(cs, staying)
				share := float64(moved) / float64(of)
				t.Logf("3 → %d sockets: %d of the %d packets of the staying sockets' connections (%.0f%%) reached another socket", tc.after, moved, of, 100*share)
				if !steered {
					if share < tc.min || share > tc.max {
						t.Errorf("control: %.0f%% of packets moved; want %.0f%% to %.0f%%", 100*share, 100*tc.min, 100*tc.max)
					}
					return
				}
				if moved != 0 {
					t.Errorf("%d of %d packets reached another socket; want 0", moved, of)
				}
				// Every socket takes new connections and gets their
				// packets, the new one too.
				fresh := s.connect(flows)
				requireSpread(t, s.ownerCounts(fresh), tc.after, true)
				if moved, of := s.use(append(cs, fresh...), staying); moved != 0 {
					t.Errorf("after the change, %d of %d packets reached another socket; want 0", moved, of)
				}
			})
		}

		t.Run(mode+"/a socket drains", func(t *testing.T) {
			const drainer = 1
			s := newServer(t, 3, steered)
			cs := s.connect(flows)
			s.drain(drainer)
			landed := counts(s.firstFlights(flows))
			t.Logf("socket %d draining: new clients' first flights reached %v", drainer, landed)
			if !steered {
				if landed[drainer] == 0 {
					t.Errorf("control: no first flight reached socket %d; want about a third", drainer)
				}
				return
			}
			if landed[drainer] != 0 {
				t.Errorf("%d of %d first flights reached the draining socket; want 0", landed[drainer], flows)
			}
			for _, i := range []int{0, 2} {
				if landed[i] < flows/4 {
					t.Errorf("%d of %d first flights reached accepting socket %d; want about half", landed[i], flows, i)
				}
			}
			if moved, of := s.use(cs, nil); moved != 0 {
				t.Errorf("%d of %d packets of established connections, the draining socket's among them, reached another socket; want 0", moved, of)
			}
			// Its connections done, the draining socket leaves.
			s.leave(drainer)
			if moved, of := s.use(cs, func(o int) bool { return o != drainer }); moved != 0 {
				t.Errorf("after the drained socket left, %d of %d packets reached another socket; want 0", moved, of)
			}
		})
	}
}

// TestFirstFlightFollowsTheDCID checks that a client's first flight
// reaches the same socket whatever its source address and port (a
// retransmission after a NAT rebinding, or a client that opens a new
// socket), since the program picks the socket by the client's DCID. The
// control, without steering, hashes the 4-tuple and moves them.
func TestFirstFlightFollowsTheDCID(t *testing.T) {
	for _, steered := range []bool{true, false} {
		t.Run(fmt.Sprint("steered=", steered), func(t *testing.T) {
			s := newServer(t, 3, steered)
			moved := 0
			for i := range flows {
				dcid := binary.BigEndian.AppendUint64(nil, uint64(i+1)*0x9e3779b97f4a7c15)
				var first int
				for try := range 2 {
					c, err := net.DialUDP("udp4", nil, s.addr)
					if err != nil {
						t.Fatal(err)
					}
					got := s.send(c, i, initial(dcid))
					c.Close()
					if try == 0 {
						first = got
					} else if got != first {
						moved++
					}
				}
			}
			t.Logf("%d of %d first flights resent from another port reached another socket", moved, flows)
			switch {
			case steered && moved != 0:
				t.Errorf("%d of %d resent first flights reached another socket; want 0", moved, flows)
			case !steered && moved == 0:
				t.Errorf("control: no resent first flight reached another socket")
			}
		})
	}
}

// TestCrashHealsOnReconcile checks that when a member dies without Leave
// (here the only member of another Group, as of another process), the
// kernel moves the last socket into its slot, the program goes stale, and
// the next reconcile of the survivors heals it.
func TestCrashHealsOnReconcile(t *testing.T) {
	// The last socket's move into the crashed one's slot is what goes
	// stale, so a crash of the last socket moves nothing.
	for _, crashed := range []int{0, 1} {
		t.Run(fmt.Sprint("socket ", crashed), func(t *testing.T) {
			s := newServer(t, 0, true)
			other := mustNewGroup(t, Config{ReconcileInterval: -1})
			for i := range 3 {
				if i == crashed {
					s.joinGroup(i, other)
				} else {
					s.join(i)
				}
			}
			cs := s.connect(flows)
			requireSpread(t, s.ownerCounts(cs), 3, true)
			s.crash(crashed)
			survivors := func(o int) bool { return o != crashed }
			moved, of := s.use(cs, survivors)
			t.Logf("after socket %d crashed: %d of %d packets of the survivors' connections reached another socket", crashed, moved, of)
			if moved == 0 {
				t.Errorf("no packet moved after the crash; the test cannot see a stale program")
			}
			if err := s.g.reconcile(); err != nil {
				t.Fatal(err)
			}
			if moved, of := s.use(cs, survivors); moved != 0 {
				t.Errorf("after the reconcile, %d of %d packets reached another socket; want 0", moved, of)
			}
			if tab := s.g.tableSnapshot(); len(tab) != 2 || !tab[0].Mine || !tab[1].Mine {
				t.Errorf("table after the reconcile: %v; want the two survivors", tab)
			}
		})
	}
}

// TestJoinLeavesPacketsQueued checks that Join, which answers the probes
// that reach its socket before the caller reads it, stops at the first
// packet that is not a probe and leaves it for the caller; the member is
// then mapped by the next reconcile.
func TestJoinLeavesPacketsQueued(t *testing.T) {
	s := newServer(t, 0, true)
	conn := s.bind()
	c, err := net.DialUDP("udp4", nil, s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const client = 7
	if _, err := c.Write(binary.BigEndian.AppendUint32(initial(make([]byte, 8)), client)); err != nil {
		t.Fatal(err)
	}
	m, err := s.g.Join(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("table after Join: %v", s.g.tableSnapshot())
	s.read(0, conn, m)
	select {
	case a := <-s.arrivals:
		if a.client != client {
			t.Errorf("got a datagram of client %d, want %d", a.client, client)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the datagram queued before Join never reached the reader")
	}
	if err := s.g.reconcile(); err != nil {
		t.Fatal(err)
	}
	if tab := s.g.tableSnapshot(); len(tab) != 1 || tab[0].ID != m.id || tab[0].State != stAccepting {
		t.Errorf("table after a reconcile: %v; want the member, accepting", tab)
	}
}

// TestSlowMemberKeepsItsConnections checks that a member that stops
// answering probes for a while (a long pause) keeps its connections but
// gets no new ones, and is back in the accepting set once it answers.
func TestSlowMemberKeepsItsConnections(t *testing.T) {
	s := newServer(t, 3, true)
	cs := s.connect(flows)
	s.socks[1].mute.Store(true)
	if err := s.g.reconcile(); err != nil {
		t.Fatal(err)
	}
	if tab := s.g.tableSnapshot(); tab[1].State != stSilent || tab[1].ID != s.socks[1].m.id {
		t.Errorf("table with member 1 silent: %v; want its slot silent with its id kept", tab)
	}
	if moved, of := s.use(cs, nil); moved != 0 {
		t.Errorf("with member 1 silent, %d of %d packets reached another socket; want 0", moved, of)
	}
	if landed := counts(s.firstFlights(flows)); landed[1] != 0 {
		t.Errorf("%d first flights reached the silent member", landed[1])
	}
	s.socks[1].mute.Store(false)
	if err := s.g.reconcile(); err != nil {
		t.Fatal(err)
	}
	if landed := counts(s.firstFlights(flows)); landed[1] == 0 {
		t.Errorf("no first flight reached member 1 once it answered again: %v", landed)
	}
}

// TestAddresses checks probing on each kind of address a group may be
// bound to: loopback, a wildcard (probed on loopback) and IPv6.
func TestAddresses(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "127.0.0.1:0"},
		{"udp4", "0.0.0.0:0"},
		{"udp6", "[::1]:0"},
		{"udp", ":0"},
	} {
		t.Run(tc.network+" "+tc.addr, func(t *testing.T) {
			RequireSteering(t)
			g := mustNewGroup(t, Config{ReconcileInterval: -1, Logger: testLogger(t)})
			addr := tc.addr
			for i := range 2 {
				pc, err := reuseport.ListenPacket(tc.network, addr)
				if err != nil {
					if i == 0 && strings.Contains(tc.addr, "::") {
						t.Skipf("no IPv6 here: %v", err)
					}
					t.Fatal(err)
				}
				conn := pc.(*net.UDPConn)
				t.Cleanup(func() { conn.Close() })
				addr = conn.LocalAddr().String()
				m, err := g.Join(conn)
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					buf := make([]byte, 64)
					for {
						n, from, err := conn.ReadFrom(buf)
						if err != nil {
							return
						}
						m.HandleControl(buf[:n], from, conn.WriteTo)
					}
				}()
			}
			if tab := g.tableSnapshot(); len(tab) != 2 || !tab[0].Mine || !tab[1].Mine || tab[0].State != stAccepting {
				t.Errorf("table %v; want both members, accepting", tab)
			}
			if err := g.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestReconcileTakesOver checks that a reconcile finds the group and
// steers it again after the group's program was replaced by another (here
// one that sends every datagram to the last socket, probes included) or
// detached (every probe goes by the kernel's hash).
func TestReconcileTakesOver(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(fd int) error
	}{
		{"a foreign program", func(fd int) error {
			prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 2}}
			return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &unix.SockFprog{Len: 1, Filter: &prog[0]})
		}},
		{"no program", func(fd int) error {
			return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, 3, true)
			cs := s.connect(flows)
			rc, err := s.socks[0].conn.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = tc.set(int(fd)) }); err != nil || serr != nil {
				t.Fatal(err, serr)
			}
			moved, of := s.use(cs, nil)
			t.Logf("with %s, %d of %d packets reached another socket", tc.name, moved, of)
			if moved == 0 {
				t.Errorf("control: no packet moved with %s", tc.name)
			}
			if err := s.g.reconcile(); err != nil {
				t.Fatal(err)
			}
			if moved, of := s.use(cs, nil); moved != 0 {
				t.Errorf("after the reconcile, %d of %d packets reached another socket; want 0", moved, of)
			}
			requireSpread(t, counts(s.firstFlights(flows)), 3, true)
		})
	}
}

// TestSocketOutsideTheGroup checks that a socket bound to the port that
// does not take part (it never answers probes) is reported, gets no new
// connections, and does not disturb the members' steering.
func TestSocketOutsideTheGroup(t *testing.T) {
	log := newTestLog(t)
	s := newServer(t, 0, true)
	s.g = mustNewGroup(t, Config{ReconcileInterval: -1, Logger: log.logger()})
	s.join(0)
	by := s.bystander(1)
	s.join(2)

	table := s.g.tableSnapshot()
	if len(table) != 3 || table[1].State != stSilent || table[0].State != stAccepting || table[2].State != stAccepting {
		t.Fatalf("table %v; want two accepting members around a silent slot", table)
	}
	select {
	case <-by.probes:
	default:
		t.Errorf("the socket outside the group got no probe")
	}
	reported := strings.Contains(log.String(), "do not answer probes")
	if !reported {
		t.Errorf("the silent socket was not reported; logs: %q", log.String())
	}
	landed := counts(s.firstFlights(flows))
	t.Logf("first flights: %v", landed)
	if landed[1] != 0 {
		t.Errorf("%d of %d first flights reached the socket outside the group", landed[1], flows)
	}
	cs := s.connect(flows)
	if moved, of := s.use(cs, nil); moved != 0 {
		t.Errorf("%d of %d packets reached another socket; want 0", moved, of)
	}
}

// ownerCounts counts the connections each socket owns.
func (s *server) ownerCounts(cs []*conn) map[int]int {
	c := map[int]int{}
	for _, x := range cs {
		c[x.owner]++
	}
	return c
}

// requireSpread checks that each of the n sockets owns some connections:
// at least half its share when steered (the program spreads by the
// client's DCID), at least one otherwise.
func requireSpread(t *testing.T, owners map[int]int, n int, steered bool) {
	t.Helper()
	total := 0
	for _, c := range owners {
		total += c
	}
	want := 1
	if steered {
		want = total / n / 2
	}
	if len(owners) != n {
		t.Errorf("connections reached %d sockets, want %d: %v", len(owners), n, owners)
	}
	for i, c := range owners {
		if c < want {
			t.Errorf("socket %d owns %d of %d connections; want at least %d: %v", i, c, total, want, owners)
		}
	}
}

// TestJoinBoundSocketsInBindOrder binds every socket of a group before
// any joins, as reuseport.ListenPacketGroup does, and joins them in bind
// order: until the last joins, the group ends in sockets that answer no
// probe. Probing must still find the group's true size at every Join, and
// Leave must then keep the connections of the socket the kernel moves.
func TestJoinBoundSocketsInBindOrder(t *testing.T) {
	const n = 4
	s := newServer(t, 0, true)
	conns := make([]*net.UDPConn, n)
	for i := range conns {
		conns[i] = s.bind()
	}
	t.Cleanup(func() {
		for i, c := range conns {
			if s.socks[i] == nil {
				c.Close() // bound, never joined
			}
		}
	})
	for i, c := range conns {
		m, err := s.g.Join(c)
		if err != nil {
			t.Fatalf("joining socket %d of %d bound: %v", i, n, err)
		}
		s.read(i, c, m)
		table := s.g.tableSnapshot()
		ok := len(table) == n
		for k := 0; ok && k < n; k++ {
			if k <= i {
				ok = table[k].ID == s.socks[k].m.id && table[k].State == stAccepting
			} else {
				ok = table[k].State == stSilent
			}
		}
		if !ok {
			t.Fatalf("after socket %d joined, table %v; want %d members then %d silent slots", i, table, i+1, n-1-i)
		}
	}
	cs := s.connect(flows)
	requireSpread(t, s.ownerCounts(cs), n, true)
	s.leave(0)
	if moved, of := s.use(cs, func(owner int) bool { return owner != 0 }); moved != 0 {
		t.Errorf("after socket 0 left, %d of %d packets reached another socket; want 0", moved, of)
	}
}

// TestSilentSocketLast puts a socket that does not take part at the end of
// the group, where probes cannot tell it from the group's end unless a
// prober's hash reaches a member. When the first member leaves, the kernel
// moves the silent socket into its slot: a table a slot short would send
// the other member's connections to it.
func TestSilentSocketLast(t *testing.T) {
	s := newServer(t, 2, true)
	s.bystander(2)
	for i := range 10 {
		if err := s.g.reconcile(); err != nil {
			t.Fatalf("reconcile %d: %v", i, err)
		}
		if table := s.g.tableSnapshot(); len(table) != 3 || table[2].State != stSilent {
			t.Fatalf("reconcile %d: table %v; want two members and a silent slot", i, table)
		}
	}
	cs := s.connect(flows)
	s.leave(0)
	if table := s.g.tableSnapshot(); len(table) != 2 || table[0].State != stSilent || table[1].ID != s.socks[1].m.id {
		t.Errorf("table after socket 0 left: %v; want the silent socket, then socket 1", table)
	}
	if moved, of := s.use(cs, func(owner int) bool { return owner == 1 }); moved != 0 {
		t.Errorf("after socket 0 left, %d of %d packets of socket 1's connections reached another socket; want 0", moved, of)
	}
}

// TestCheckTellsWhichTableIsInstalled checks the check probe that lets a
// periodic reconcile leave alone a program another process already
// attached: two Groups stand for two processes sharing the port, and each
// change one makes must show, to the other, as installed for the new table
// and not for the one before.
func TestCheckTellsWhichTableIsInstalled(t *testing.T) {
	s := newServer(t, 2, true)
	before := s.g.tableSnapshot()
	if !installedForTest(s.g, before) {
		t.Fatalf("the table the group attached, %v, is not reported installed", before)
	}
	other := mustNewGroup(t, Config{ReconcileInterval: -1, Logger: testLogger(t)})
	t.Cleanup(func() { other.Close() })
	s.joinGroup(2, other) // the other process joins: it attaches a table of 3
	joined := other.tableSnapshot()
	if len(joined) != 3 {
		t.Fatalf("after the join the other group sees %v, want 3 slots", joined)
	}
	if installedForTest(s.g, before) {
		t.Errorf("after another process's join, the table from before it (%v) is still reported installed", before)
	}
	if !installedForTest(s.g, joined) {
		t.Errorf("the table the other process attached, %v, is not reported installed", joined)
	}
	s.drain(0) // this process drains a member: it attaches again
	drained := s.g.tableSnapshot()
	if installedForTest(other, joined) {
		t.Errorf("after the drain, the table from before it (%v) is still reported installed", joined)
	}
	if !installedForTest(other, drained) {
		t.Errorf("the table the drain attached, %v, is not reported installed", drained)
	}
}
