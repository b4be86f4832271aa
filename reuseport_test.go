package reuseport_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/internal/test/testenv"
)

// TestShare checks, on the host's loopback and with little traffic, that
// every socket of a group receives connections or datagrams. TestSpread
// measures how evenly, in a namespace of its own.
func TestShare(t *testing.T) {
	requireBalance(t)
	const n, sends = 4, 200
	for _, network := range []string{"tcp4", "tcp6", "udp4", "udp6"} {
		for _, mode := range groupModes {
			t.Run(network+"/"+mode, func(t *testing.T) {
				host := "127.0.0.1"
				if strings.HasSuffix(network, "6") {
					requireIPv6(t)
					host = "::1"
				}
				address := net.JoinHostPort(host, "0")
				var counts []int64
				if strings.HasPrefix(network, "tcp") {
					lns := listeners(t, mode, network, address, n)
					tl := countAccepts(t, lns)
					dialMany(t, network, lns[0].Addr().String(), sends)
					counts = tl.await(t, sends)
				} else {
					pcs := packetConns(t, mode, network, address, n)
					tl := countDatagrams(t, pcs)
					sendMany(t, network, pcs[0].LocalAddr().String(), sends, tl)
					counts = tl.snapshot()
				}
				requireAll(t, counts)
			})
		}
	}
}

// TestSurvivorsTakeOver checks that once some sockets of a group close,
// the others take every new connection and no client sees an error.
func TestSurvivorsTakeOver(t *testing.T) {
	requireShare(t)
	const before, after = 400, 1000
	for _, mode := range groupModes {
		t.Run(mode, func(t *testing.T) {
			lns := listeners(t, mode, "tcp4", "127.0.0.1:0", 4)
			addr := lns[0].Addr().String()
			tl := countAccepts(t, lns)

			// The group first spreads over all four, so the two that
			// close had a share to hand over.
			dialMany(t, "tcp4", addr, before)
			first := tl.await(t, before)
			if reuseport.Capabilities().Balance {
				requireAll(t, first)
			}

			closeAll(lns[:2])
			dialMany(t, "tcp4", addr, after)
			total := tl.await(t, before+after)
			var survivors []int64
			for i := 2; i < len(total); i++ {
				survivors = append(survivors, total[i]-first[i])
			}
			if reuseport.Capabilities().Balance {
				requireAll(t, survivors)
			}
			t.Logf("after the close the survivors took %v", survivors)
		})
	}
}

// TestDialFromSharedPort checks that Control in a net.Dialer lets a client
// connect out from a local port that listeners hold, as peer-to-peer hole
// punching needs, and that without it the same dial fails.
func TestDialFromSharedPort(t *testing.T) {
	requireShare(t)
	lns := listeners(t, byGroup, "tcp4", "127.0.0.1:0", 2)
	accepted := countAccepts(t, lns)
	shared := lns[0].Addr()

	for i := range 2 {
		peer, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		d := net.Dialer{Control: reuseport.Control, LocalAddr: shared}
		c, err := d.Dial("tcp4", peer.Addr().String())
		if err != nil {
			t.Fatalf("dial %d from the shared port %v: %v", i+1, shared, err)
		}
		defer c.Close()
		pc, err := peer.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if got := pc.RemoteAddr().String(); got != shared.String() {
			t.Errorf("peer %d sees the client at %s, want the shared address %s", i+1, got, shared)
		}
	}

	// The listeners still serve while the port also dials out.
	dialMany(t, "tcp4", shared.String(), 20)
	accepted.await(t, 20)

	peer, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	d := net.Dialer{LocalAddr: shared}
	if c, err := d.Dial("tcp4", peer.Addr().String()); !errors.Is(err, errAddrInUse) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dialing from the shared port without Control: got %v, want EADDRINUSE", err)
	}
}

// TestListenGroupOnePort checks that a group asked for on port 0 (or a
// host name) gets n sockets on one port. TestSpread covers the wildcard
// address, in a namespace where binding it exposes nothing.
func TestListenGroupOnePort(t *testing.T) {
	requireShare(t)
	for _, tc := range []struct{ network, address string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
		{"tcp", "localhost:0"},
		{"udp4", "127.0.0.1:0"},
		{"udp6", "[::1]:0"},
		{"udp", "localhost:0"},
	} {
		t.Run(tc.network+" "+tc.address, func(t *testing.T) {
			if strings.Contains(tc.address, "::1") {
				requireIPv6(t)
			}
			const n = 5
			var lc reuseport.ListenConfig
			var addrs []net.Addr
			if strings.HasPrefix(tc.network, "tcp") {
				lns, err := lc.ListenGroup(context.Background(), tc.network, tc.address, n)
				if err != nil {
					t.Fatal(err)
				}
				defer closeAll(lns)
				for _, ln := range lns {
					addrs = append(addrs, ln.Addr())
				}
			} else {
				pcs, err := lc.ListenPacketGroup(context.Background(), tc.network, tc.address, n)
				if err != nil {
					t.Fatal(err)
				}
				defer closeAll(pcs)
				for _, pc := range pcs {
					addrs = append(addrs, pc.LocalAddr())
				}
			}
			requireOnePort(t, addrs, n)
		})
	}
}

var errRefused = errors.New("refused by the test's Control")

// failFrom returns a Control that refuses every socket from the given
// call on, and records the address that call was to bind. Refusing only
// one call is not enough: where Go listens with Multipath TCP by default
// (Linux, Go 1.24+) it retries a refused socket once as plain TCP.
func failFrom(call int32, bound *string) func(string, string, syscall.RawConn) error {
	var calls atomic.Int32
	return func(_, address string, _ syscall.RawConn) error {
		switch n := calls.Add(1); {
		case n == call:
			*bound = address
			return errRefused
		case n > call:
			return errRefused
		}
		return nil
	}
}

// TestListenGroupClosesOnFailure checks that when a socket of a group
// fails to bind, the sockets already made are closed: the port is free
// again for a socket without SO_REUSEPORT.
func TestListenGroupClosesOnFailure(t *testing.T) {
	requireShare(t)
	for _, network := range []string{"tcp4", "udp4"} {
		t.Run(network, func(t *testing.T) {
			noNewFDsAtEnd(t, "the failed group")
			var bound string
			lc := reuseport.ListenConfig{ListenConfig: net.ListenConfig{Control: failFrom(3, &bound)}}
			var made int
			var err error
			if network == "tcp4" {
				var lns []net.Listener
				lns, err = lc.ListenGroup(context.Background(), network, "127.0.0.1:0", 4)
				made = len(lns)
				closeAll(lns)
			} else {
				var pcs []net.PacketConn
				pcs, err = lc.ListenPacketGroup(context.Background(), network, "127.0.0.1:0", 4)
				made = len(pcs)
				closeAll(pcs)
			}
			if !errors.Is(err, errRefused) || made != 0 {
				t.Fatalf("got %d sockets and error %v; want none and the Control's error", made, err)
			}
			// Two sockets were bound before the third failed; a plain bind
			// only succeeds if both are gone.
			var plain net.ListenConfig
			var s interface{ Close() error }
			if network == "tcp4" {
				s, err = plain.Listen(context.Background(), network, bound)
			} else {
				s, err = plain.ListenPacket(context.Background(), network, bound)
			}
			if err != nil {
				t.Fatalf("the port of the failed group is still held: %v", err)
			}
			s.Close()
		})
	}
}

// TestControlError checks that an error from the caller's own Control is
// returned to the caller, wrapped like the standard library's.
func TestControlError(t *testing.T) {
	requireShare(t)
	refuse := func(string, string, syscall.RawConn) error { return errRefused }
	lc := reuseport.ListenConfig{ListenConfig: net.ListenConfig{Control: refuse}}
	noNewFDsAtEnd(t, "the refused sockets")

	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if ln != nil {
		ln.Close()
		t.Errorf("Listen returned a listener despite the Control's error")
	}
	var op *net.OpError
	if !errors.Is(err, errRefused) || !errors.As(err, &op) {
		t.Errorf("Listen: got error %v (%T), want a *net.OpError wrapping the Control's", err, err)
	}
	pc, err := lc.ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if pc != nil {
		pc.Close()
		t.Errorf("ListenPacket returned a socket despite the Control's error")
	}
	if !errors.Is(err, errRefused) || !errors.As(err, &op) {
		t.Errorf("ListenPacket: got error %v (%T), want a *net.OpError wrapping the Control's", err, err)
	}
}

// TestCapabilityString checks what every kind of Capability says of
// itself, the zero value included: a Capability that cannot share says so,
// with its error.
func TestCapabilityString(t *testing.T) {
	cause := errors.New("the cause")
	for _, tc := range []struct {
		c    reuseport.Capability
		want string
	}{
		{reuseport.Capability{Share: true, Balance: true}, "shares ports and balances connections"},
		{reuseport.Capability{Share: true}, "shares ports without balancing: one socket takes every new connection"},
		{reuseport.Capability{Err: cause}, "cannot share ports: the cause"},
		{reuseport.Capability{}, "cannot share ports"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%#v describes itself as %q, want %q", tc.c, got, tc.want)
		}
	}
}

// TestUnsupportedOS checks that where ports cannot be shared every entry
// point fails with ErrUnsupported, rather than making an unshared socket. Where
// ports can be shared, it runs itself on one OS where they cannot: js/wasm,
// under Node.js, so that the unsupported-OS code runs on every host CI has.
func TestUnsupportedOS(t *testing.T) {
	c := reuseport.Capabilities()
	if c.Share {
		unsupportedOSUnderNode(t)
		return
	}
	if !errors.Is(c.Err, errors.ErrUnsupported) {
		t.Errorf("Capabilities().Err = %v, want it to wrap ErrUnsupported", c.Err)
	}
	ln, err := reuseport.Listen("tcp", "127.0.0.1:0")
	if ln != nil || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Listen: got %v, %v; want ErrUnsupported", ln, err)
	}
	pc, err := reuseport.ListenPacket("udp", "127.0.0.1:0")
	if pc != nil || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ListenPacket: got %v, %v; want ErrUnsupported", pc, err)
	}
	lns, err := reuseport.ListenGroup("tcp", "127.0.0.1:0", 2)
	if lns != nil || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ListenGroup: got %v, %v; want ErrUnsupported", lns, err)
	}
	pcs, err := reuseport.ListenPacketGroup("udp", "127.0.0.1:0", 2)
	if pcs != nil || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ListenPacketGroup: got %v, %v; want ErrUnsupported", pcs, err)
	}
}

// TestListenPacketGroup checks the top-level function on real sockets: it
// makes n sockets on one port and, where the OS balances, every one of them
// receives datagrams sent to that port.
func TestListenPacketGroup(t *testing.T) {
	requireShare(t)
	const n, sent = 3, 300
	pcs, err := reuseport.ListenPacketGroup("udp4", "127.0.0.1:0", n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeAll(pcs) })
	addrs := make([]net.Addr, len(pcs))
	for i, pc := range pcs {
		addrs[i] = pc.LocalAddr()
	}
	requireOnePort(t, addrs, n)
	requireBalance(t)
	tl := countDatagrams(t, pcs)
	// Loopback may drop a datagram when a receive queue is full; the
	// spread is judged on what arrived.
	if got := sendMany(t, "udp4", addrs[0].String(), sent, tl); got < sent/2 {
		t.Fatalf("only %d of %d datagrams arrived", got, sent)
	}
	requireAll(t, tl.snapshot())
}

// unsupportedOSUnderNode runs TestUnsupportedOS of this package built for
// js/wasm, with the go command and the Node.js runner of its GOROOT
// (lib/wasm/go_js_wasm_exec), and fails unless it passes there.
func unsupportedOSUnderNode(t *testing.T) {
	if testing.Short() {
		t.Skip("this OS shares ports; running the check for js/wasm builds a test binary, not done in -short mode")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		testenv.SkipOrFail(t, testenv.RequireNetns, "this OS shares ports, and there is no go command to build the test for js/wasm: %v", err)
		return
	}
	if _, err := exec.LookPath("node"); err != nil {
		testenv.SkipOrFail(t, testenv.RequireNetns, "this OS shares ports, and there is no Node.js to run the test for js/wasm: %v", err)
		return
	}
	out, err := exec.Command(goCmd, "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	runner := filepath.Join(strings.TrimSpace(string(out)), "lib", "wasm", "go_js_wasm_exec")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, "test", "-count=1", "-exec="+runner, "-run=^TestUnsupportedOS$", "-v", ".")
	// GOFLAGS may hold -race, which js/wasm lacks.
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=")
	b, err := cmd.CombinedOutput()
	text := string(b)
	if err != nil || !strings.Contains(text, "--- PASS: TestUnsupportedOS ") {
		t.Fatalf("TestUnsupportedOS for js/wasm under Node.js (%v):\n%s", err, text)
	}
	t.Logf("ran for js/wasm under Node.js:\n%s", text)
}
