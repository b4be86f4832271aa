package reuseport_test

import (
	"context"
	"net"
	"testing"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/testenv"
	"golang.org/x/sys/unix"
)

// TestMultipathAndPlainTCPShare checks that listeners made with Multipath
// TCP (Go's default on Linux since 1.24, where the kernel enables it) and
// plain TCP listeners (older Go, other programs, or SetMultipathTCP(false))
// form one group: a server upgraded across that change still shares its
// port with the copies not yet replaced.
func TestMultipathAndPlainTCPShare(t *testing.T) {
	requireBalance(t)
	const n, conns = 4, 400
	address := "127.0.0.1:0"
	var lns []net.Listener
	t.Cleanup(func() { closeAll(lns) })
	kinds := make([]int, n)
	for i := range n {
		var lc reuseport.ListenConfig
		lc.SetMultipathTCP(i%2 == 0)
		ln, err := lc.Listen(context.Background(), "tcp4", address)
		if err != nil {
			t.Fatalf("listener %d (Multipath TCP %v): %v", i, i%2 == 0, err)
		}
		lns = append(lns, ln)
		address = ln.Addr().String()
		kinds[i] = getsockopt(t, ln, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	}
	if kinds[0] != unix.IPPROTO_MPTCP {
		testenv.SkipOrFail(t, testenv.RequireNetns, "this kernel gave a plain TCP socket when asked for Multipath TCP (net.mptcp.enabled=0?); protocols: %v", kinds)
	}
	if kinds[1] != unix.IPPROTO_TCP {
		t.Fatalf("SetMultipathTCP(false) gave protocol %d, want plain TCP", kinds[1])
	}
	tl := countAccepts(t, lns)
	dialMany(t, "tcp4", address, conns)
	requireAll(t, tl.await(t, conns))
	t.Logf("protocols %v took %v", kinds, tl.snapshot())
}
