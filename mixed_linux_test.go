package reuseport_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/emu"
	"github.com/b93f8b21/reuseport/internal/test/nstest"
)

// TestDualStackAndIPv4AreTwoGroups checks what docs/design.md says about
// migrating from a server that listens on 0.0.0.0: a dual-stack "tcp" ":port"
// listener and a "0.0.0.0:port" one both bind, in either order, but form two
// groups, and every IPv4 client goes to the IPv4 one; the dual-stack one
// gets only IPv6 clients. It runs in a private network namespace, where
// binding the wildcard address exposes nothing.
func TestDualStackAndIPv4AreTwoGroups(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	requireShare(t)
	requireIPv6(t)
	const conns = 200
	for _, dualFirst := range []bool{false, true} {
		name := "IPv4 first"
		if dualFirst {
			name = "dual-stack first"
		}
		t.Run(name, func(t *testing.T) {
			var v4, dual net.Listener
			listen := func(ln *net.Listener, network, address string) {
				t.Helper()
				l, err := reuseport.Listen(network, address)
				if err != nil {
					t.Fatalf("Listen(%q, %q): %v", network, address, err)
				}
				*ln = l
			}
			if dualFirst {
				listen(&dual, "tcp", ":0")
				listen(&v4, "tcp4", "0.0.0.0:"+strconv.Itoa(port(t, dual.Addr())))
			} else {
				listen(&v4, "tcp4", "0.0.0.0:0")
				listen(&dual, "tcp", ":"+strconv.Itoa(port(t, v4.Addr())))
			}
			tl := countAccepts(t, []net.Listener{v4, dual})
			p := strconv.Itoa(port(t, v4.Addr()))

			dialMany(t, "tcp4", "127.0.0.1:"+p, conns)
			if got := tl.await(t, conns); !slices.Equal(got, []int64{conns, 0}) {
				t.Errorf("IPv4 clients: 0.0.0.0 accepted %d, the dual-stack [::] %d; want all %d on 0.0.0.0", got[0], got[1], conns)
			}
			dialMany(t, "tcp6", "[::1]:"+p, conns)
			if got := tl.await(t, 2*conns); !slices.Equal(got, []int64{conns, conns}) {
				t.Errorf("IPv6 clients went %d to 0.0.0.0 and %d to [::]; want all %d on [::]", got[0]-conns, got[1], conns)
			}
		})
	}
}

// TestUDPBesideReuseAddrOnly checks what docs/design.md says about UDP daemons
// that set only SO_REUSEADDR, as mDNS responders do and as Go's own
// net.ListenMulticastUDP does on Linux: a socket of this package cannot
// bind their port, nor they its port, while two of theirs share one. It
// runs in a private network namespace, as net.ListenMulticastUDP binds the
// wildcard address.
func TestUDPBesideReuseAddrOnly(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	requireShare(t)
	ctx := context.Background()
	reuseAddr := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	keep := func(t *testing.T, pc net.PacketConn, err error) net.PacketConn {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	inUse := func(t *testing.T, what string, pc net.PacketConn, err error) {
		t.Helper()
		if pc != nil {
			pc.Close()
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("%s: got %v, want EADDRINUSE", what, err)
		}
	}

	t.Run("SO_REUSEADDR first", func(t *testing.T) {
		pc, err := reuseAddr.ListenPacket(ctx, "udp4", "127.0.0.1:0")
		addr := keep(t, pc, err).LocalAddr().String()
		pc, err = reuseport.ListenPacket("udp4", addr)
		inUse(t, "ListenPacket on a port held with SO_REUSEADDR only", pc, err)
		pc, err = reuseAddr.ListenPacket(ctx, "udp4", addr)
		keep(t, pc, err) // theirs share it
	})
	t.Run("ListenPacket first", func(t *testing.T) {
		pc, err := reuseport.ListenPacket("udp4", "127.0.0.1:0")
		addr := keep(t, pc, err).LocalAddr().String()
		pc, err = reuseAddr.ListenPacket(ctx, "udp4", addr)
		inUse(t, "an SO_REUSEADDR-only socket on a port of ListenPacket", pc, err)
	})
	t.Run("net.ListenMulticastUDP", func(t *testing.T) {
		mdns := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251)}
		lo, err := net.InterfaceByName("lo")
		var first *net.UDPConn
		if err == nil {
			first, err = net.ListenMulticastUDP("udp4", lo, mdns)
		}
		if kernel, emulated := emu.Detect(); emulated && err != nil {
			// qemu 7.2 answers IP_MULTICAST_IF with a struct ip_mreqn,
			// which net.ListenMulticastUDP sets, with ENOPROTOOPT, and
			// for s390x it garbles the netlink answers that list
			// interfaces and their addresses.
			t.Skipf("under user-mode emulation (GOARCH=%s on a %s kernel), which cannot do what net.ListenMulticastUDP needs: %v", runtime.GOARCH, kernel, err)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		mdns.Port = port(t, first.LocalAddr())
		second, err := net.ListenMulticastUDP("udp4", lo, mdns)
		if err != nil {
			t.Fatalf("a second net.ListenMulticastUDP on its port: %v", err)
		}
		defer second.Close()
		pc, err := reuseport.ListenPacket("udp4", ":"+strconv.Itoa(mdns.Port))
		inUse(t, "ListenPacket on the port of net.ListenMulticastUDP", pc, err)
	})
}

// TestDialFromSharedWildcardPort is docs/design.md's snippet: a dialer with
// Control and the address of a "tcp4" ":port" listener as LocalAddr dials
// out from that port, and the listener keeps accepting. It runs in a
// private network namespace, where binding the wildcard exposes nothing.
func TestDialFromSharedWildcardPort(t *testing.T) {
	if nstest.Isolate(t) {
		return
	}
	requireShare(t)
	ln, err := reuseport.Listen("tcp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	tl := countAccepts(t, []net.Listener{ln})
	peer, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	d := net.Dialer{Control: reuseport.Control, LocalAddr: ln.Addr()}
	conn, err := d.Dial("tcp4", peer.Addr().String())
	if err != nil {
		t.Fatalf("dialing from %v: %v", ln.Addr(), err)
	}
	defer conn.Close()
	pc, err := peer.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if got, want := port(t, pc.RemoteAddr()), port(t, ln.Addr()); got != want {
		t.Errorf("the peer sees the client at port %d, want the listening port %d", got, want)
	}
	dialMany(t, "tcp4", "127.0.0.1:"+strconv.Itoa(port(t, ln.Addr())), 20)
	tl.await(t, 20)
}
