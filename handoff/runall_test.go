//go:build darwin || freebsd || linux

package handoff_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/handoff"
)

// udpEcho answers each datagram with its generation's byte and the
// datagram. Its Shutdown stops reading (a read deadline in the past) and
// waits for the loop, without closing the socket.
type udpEcho struct {
	gen     byte
	mu      sync.Mutex
	pc      net.PacketConn
	stopped bool
	done    chan struct{}
}

func newUDPEcho(gen byte) *udpEcho { return &udpEcho{gen: gen, done: make(chan struct{})} }

func (u *udpEcho) ServePacket(pc net.PacketConn) error {
	defer close(u.done)
	u.mu.Lock()
	u.pc = pc
	stopped := u.stopped
	u.mu.Unlock()
	if stopped {
		return nil // Shutdown came first
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			u.mu.Lock()
			defer u.mu.Unlock()
			if u.stopped {
				return nil // what Shutdown asked for
			}
			return err
		}
		pc.WriteTo(append([]byte{u.gen}, buf[:n]...), from)
	}
}

func (u *udpEcho) Shutdown(ctx context.Context) error {
	u.mu.Lock()
	pc := u.pc
	u.stopped = true
	u.mu.Unlock()
	if pc != nil {
		pc.SetReadDeadline(time.Unix(1, 0))
	}
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func askUDP(t *testing.T, addr string) byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 16)
	for try := 0; try < 50; try++ {
		c.Write([]byte("q"))
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && n == 2 && buf[1] == 'q' {
			return buf[0]
		}
	}
	t.Fatalf("no answer from udp %s", addr)
	return 0
}

// TestRunAllUDPAndTCP: one RunAll serves UDP and TCP on one port; a
// successor takes both sockets in one handoff, and the predecessor returns
// nil. A datagram sent after the takeover is answered by the successor.
func TestRunAllUDPAndTCP(t *testing.T) {
	path := sockPath(t)
	services := func(gen byte, port string) []handoff.Service {
		return []handoff.Service{
			{Network: "udp", Address: "127.0.0.1:" + port, PacketServer: newUDPEcho(gen)},
			{Network: "tcp", Address: "127.0.0.1:" + port, Server: newSeqServer(gen), Sequential: true},
		}
	}
	port := freePort(t)
	g1 := runAll(t, handoff.RunConfig{Config: handoff.Config{Path: path, Logger: newLog(t, "gen1").logger()}}, services(1, port)...)
	udp1, tcp1 := g1.waitReady(t), g1.waitReady(t)
	if udp1.Network() != "udp" || tcp1.Network() != "tcp" {
		t.Fatalf("OnReady got %v %v, want the UDP then the TCP address", udp1, tcp1)
	}
	if gen := askUDP(t, udp1.String()); gen != 1 {
		t.Fatalf("UDP answered by generation %d, want 1", gen)
	}
	g2 := runAll(t, handoff.RunConfig{Config: handoff.Config{Path: path, Logger: newLog(t, "gen2").logger()}}, services(2, port)...)
	udp2, tcp2 := g2.waitReady(t), g2.waitReady(t)
	if udp2.String() != udp1.String() || tcp2.String() != tcp1.String() {
		t.Fatalf("the successor serves %v and %v, want %v and %v", udp2, tcp2, udp1, tcp1)
	}
	if err := g1.wait(t); err != nil {
		t.Fatalf("the predecessor's RunAll: %v", err)
	}
	if gen := askUDP(t, udp1.String()); gen != 2 {
		t.Fatalf("UDP answered by generation %d after the takeover, want 2", gen)
	}
}

// TestRunAllOwnSocket: a PacketServer with OwnSocket binds a socket of
// its own in each generation, sharing the port, instead of taking the
// predecessor's; the TCP socket beside it is still handed over.
func TestRunAllOwnSocket(t *testing.T) {
	path := sockPath(t)
	port := freePort(t)
	services := func(gen byte) []handoff.Service {
		return []handoff.Service{
			{Network: "udp", Address: "127.0.0.1:" + port, PacketServer: newUDPEcho(gen), OwnSocket: true},
			{Network: "tcp", Address: "127.0.0.1:" + port, Server: newSeqServer(gen)},
		}
	}
	log1, log2 := newLog(t, "gen1"), newLog(t, "gen2")
	g1 := runAll(t, handoff.RunConfig{Config: handoff.Config{Path: path, Logger: log1.logger()}}, services(1)...)
	udp1, _ := g1.waitReady(t), g1.waitReady(t)
	g2 := runAll(t, handoff.RunConfig{Config: handoff.Config{Path: path, Logger: log2.logger()}}, services(2)...)
	g2.waitReady(t)
	g2.waitReady(t)
	if err := g1.wait(t); err != nil {
		t.Fatalf("the predecessor's RunAll: %v", err)
	}
	if !log2.contains("handoff: listening", "network=udp", "origin=fresh") || !log2.contains("handoff: listening", "network=tcp", "origin=inherited") {
		t.Error("the successor did not bind its own UDP socket beside the inherited TCP one")
	}
	if gen := askUDP(t, udp1.String()); gen != 2 {
		t.Fatalf("UDP answered by generation %d, want 2", gen)
	}
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1, as far
// as a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		pc.Close()
		if err == nil {
			ln.Close()
			return itoa(port)
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return ""
}

func itoa(n int) string {
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// failingServer's Serve fails at once.
type failingServer struct{}

func (failingServer) Serve(net.Listener) error       { return errors.New("serve broke") }
func (failingServer) Shutdown(context.Context) error { return nil }

// TestRunAllOnePartFails: a Serve that fails stops every part: the UDP
// server is shut down too, and RunAll returns the failure.
func TestRunAllOnePartFails(t *testing.T) {
	echo := newUDPEcho(1)
	err := handoff.RunAll(t.Context(), handoff.RunConfig{},
		handoff.Service{Network: "udp", Address: "127.0.0.1:0", PacketServer: echo},
		handoff.Service{Network: "tcp", Address: "127.0.0.1:0", Server: failingServer{}})
	if err == nil || !strings.Contains(err.Error(), "serve broke") {
		t.Fatalf("RunAll returned %v, want the failure of Serve", err)
	}
	select {
	case <-echo.done:
	default:
		t.Fatal("the UDP server still serves after RunAll returned")
	}
}

// TestRunAllBadServices: each mistake is refused before anything binds.
func TestRunAllBadServices(t *testing.T) {
	for _, c := range []struct {
		name string
		svcs []handoff.Service
		want string
	}{
		{"none", nil, "needs a Service"},
		{"both", []handoff.Service{{Network: "tcp", Address: ":0", Server: failingServer{}, PacketServer: newUDPEcho(1)}}, "not both"},
		{"neither", []handoff.Service{{Network: "tcp", Address: ":0"}}, "must have a Server or a PacketServer"},
		{"packet server on tcp", []handoff.Service{{Network: "tcp", Address: ":0", PacketServer: newUDPEcho(1)}}, "cannot serve network \"tcp\""},
		{"server on udp", []handoff.Service{{Network: "udp", Address: ":0", Server: failingServer{}}}, "cannot serve network \"udp\""},
		{"server on unix", []handoff.Service{{Network: "unix", Address: "/tmp/x", Server: failingServer{}}}, "cannot serve network \"unix\""},
		{"own listener", []handoff.Service{{Network: "tcp", Address: ":0", Server: failingServer{}, OwnSocket: true}}, "OwnSocket is for a PacketServer"},
	} {
		err := handoff.RunAll(t.Context(), handoff.RunConfig{}, c.svcs...)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "handoff: ") {
			t.Errorf("%s: RunAll returned %v, want an error with %q", c.name, err, c.want)
		}
	}
	if err := handoff.RunAll(t.Context(), handoff.RunConfig{UpgradeSignal: errSignal{}}, handoff.Service{Network: "tcp", Address: ":0", Server: failingServer{}}); err == nil || !strings.Contains(err.Error(), "UpgradeSignal needs a Config.Path") {
		t.Errorf("UpgradeSignal without Path: %v", err)
	}
}

type errSignal struct{}

func (errSignal) String() string { return "test signal" }
func (errSignal) Signal()        {}
