package steer

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
)

// sharedUDP binds a socket that shares its port, on a new port of
// 127.0.0.1 if addr is "", else on addr.
func sharedUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	pc, err := reuseport.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

// TestJoinKeepsReadDeadline: Join must leave the caller's read deadline on
// the socket as it was, so that a read that should time out does.
func TestJoinKeepsReadDeadline(t *testing.T) {
	RequireSteering(t)
	g := mustNewGroup(t, Config{ReconcileInterval: -1, Logger: testLogger(t)})
	defer g.Close()
	conn := sharedUDP(t, "")
	if err := conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	m, err := g.Join(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Leave()
	read := make(chan error, 1)
	go func() {
		_, _, err := conn.ReadFrom(make([]byte, 1500))
		read <- err
	}()
	select {
	case err := <-read:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("ReadFrom after Join = %v; want the deadline the caller set to expire", err)
		}
	case <-time.After(5 * time.Second):
		conn.SetReadDeadline(time.Now()) // end the read
		t.Errorf("ReadFrom after Join still blocked 5 s after a deadline of 300 ms: Join cleared it")
	}
}

// TestFailedJoinLeavesGroupFree: a Join that fails (here, a socket without
// SO_REUSEPORT, to which no reuseport program attaches) must not tie the
// Group to that socket's address.
func TestFailedJoinLeavesGroupFree(t *testing.T) {
	RequireSteering(t)
	g := mustNewGroup(t, Config{ReconcileInterval: -1, Logger: testLogger(t)})
	defer g.Close()
	plain, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if m, err := g.Join(plain); err == nil {
		m.Leave()
		t.Fatalf("Join of a socket without SO_REUSEPORT succeeded")
	}
	m, err := g.Join(sharedUDP(t, ""))
	if err != nil {
		t.Fatalf("Join on another port after a failed Join: %v", err)
	}
	m.Leave()
}

// TestClosedWithoutLeave: a member whose socket is closed without Leave is
// noticed, reported, and dropped, so that the Group still closes cleanly.
func TestClosedWithoutLeave(t *testing.T) {
	RequireSteering(t)
	log := newTestLog(t)
	g := mustNewGroup(t, Config{ReconcileInterval: -1, Logger: log.logger()})
	first := sharedUDP(t, "")
	second := sharedUDP(t, first.LocalAddr().String())
	ms := make([]*Member, 2)
	for i, c := range []*net.UDPConn{first, second} {
		m, err := g.Join(c)
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = m
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				m.HandleControl(buf[:n], from, c.WriteTo)
			}
		}()
	}
	first.Close() // without Leave
	if err := g.Close(); err != nil {
		t.Errorf("Group.Close after a member's socket closed without Leave: %v", err)
	}
	if !strings.Contains(log.String(), "closed without Leave") {
		t.Errorf("the closed member was not reported; log:\n%s", log)
	}
}
