package reuseport_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport"
)

// TestBadInput checks that every kind of bad input gets a *net.OpError that
// says what was wrong and unwraps to the cause, and that no socket is
// returned or left open.
func TestBadInput(t *testing.T) {
	requireShare(t)

	// Were a unix socket made by mistake, it lands here, not in /tmp.
	sock := filepath.Join(t.TempDir(), "reuseport.sock")

	// A port held without SO_REUSEPORT cannot be joined.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer takenUDP.Close()

	var (
		zero        reuseport.ListenConfig
		negFastOpen = reuseport.ListenConfig{FastOpenQueue: -1}
		negDefer    = reuseport.ListenConfig{DeferAccept: -time.Second}
		hugeDefer   = reuseport.ListenConfig{DeferAccept: 1000 * time.Hour}
		fastOpen    = reuseport.ListenConfig{FastOpenQueue: 8}
		deferAccept = reuseport.ListenConfig{DeferAccept: time.Second}
	)
	var (
		unsupported    = is(errors.ErrUnsupported)
		unknownNetwork = as[net.UnknownNetworkError]
		badAddress     = as[*net.AddrError]
		notFound       = as[*net.DNSError]
		inUse          = is(errAddrInUse)
		notLocal       = is(errAddrNotAvail)
		anyCause       = func(error) bool { return true }
	)
	tests := []struct {
		name    string
		listen  listenFunc
		network string
		address string
		cause   func(error) bool // what the error must unwrap to
		mention string           // what its message must name
	}{
		{"unix", stream(zero), "unix", sock, unsupported, "unix socket path"},
		{"unixpacket", stream(zero), "unixpacket", sock, unsupported, "unix socket path"},
		{"unixgram", packet(zero), "unixgram", sock, unsupported, "unix socket path"},
		{"unknown network", stream(zero), "foo", "127.0.0.1:0", unknownNetwork, "foo"},
		{"raw IP network", stream(zero), "ip4:icmp", "127.0.0.1", unknownNetwork, "ip4:icmp"},
		{"empty network", stream(zero), "", "127.0.0.1:0", unknownNetwork, "unknown network"},
		{"unknown packet network", packet(zero), "foo", "127.0.0.1:0", unknownNetwork, "foo"},
		{"Listen on udp", stream(zero), "udp", "127.0.0.1:0", unknownNetwork, "ListenPacket"},
		{"ListenPacket on tcp", packet(zero), "tcp", "127.0.0.1:0", unknownNetwork, "use Listen"},
		{"port out of range", stream(zero), "tcp", "127.0.0.1:99999", badAddress, "99999"},
		{"negative port", stream(zero), "tcp", "127.0.0.1:-1", badAddress, "-1"},
		{"unknown service", stream(zero), "tcp", "127.0.0.1:http-nonexistent", notFound, "http-nonexistent"},
		{"packet port out of range", packet(zero), "udp", "127.0.0.1:99999", badAddress, "99999"},
		{"missing port", stream(zero), "tcp", "127.0.0.1", badAddress, "missing port"},
		{"missing packet port", packet(zero), "udp", "127.0.0.1", badAddress, "missing port"},
		{"unresolvable host", stream(zero), "tcp", "nonexistent.invalid:80", notFound, "nonexistent.invalid"},
		{"address not on this host", stream(zero), "tcp4", "198.51.100.1:0", notLocal, "198.51.100.1"},
		{"port held without SO_REUSEPORT", stream(zero), "tcp", taken.Addr().String(), inUse, taken.Addr().String()},
		{"packet port held without SO_REUSEPORT", packet(zero), "udp", takenUDP.LocalAddr().String(), inUse, takenUDP.LocalAddr().String()},
		{"group of 0", group(zero, 0), "tcp", "127.0.0.1:0", anyCause, "not 0"},
		{"group of -1", group(zero, -1), "tcp", "127.0.0.1:0", anyCause, "not -1"},
		{"packet group of 0", packetGroup(zero, 0), "udp", "127.0.0.1:0", anyCause, "not 0"},
		{"group without port", group(zero, 2), "tcp", "127.0.0.1", badAddress, "missing port"},
		{"group on unix", group(zero, 2), "unix", sock, unsupported, "unix socket path"},
		{"group on held port", group(zero, 2), "tcp", taken.Addr().String(), inUse, taken.Addr().String()},
		{"negative FastOpenQueue", stream(negFastOpen), "tcp", "127.0.0.1:0", anyCause, "FastOpenQueue"},
		{"negative DeferAccept", stream(negDefer), "tcp", "127.0.0.1:0", anyCause, "DeferAccept"},
		{"huge DeferAccept", stream(hugeDefer), "tcp", "127.0.0.1:0", anyCause, "DeferAccept"},
		{"group with negative FastOpenQueue", group(negFastOpen, 2), "tcp", "127.0.0.1:0", anyCause, "FastOpenQueue"},
		{"FastOpenQueue on a packet socket", packet(fastOpen), "udp", "127.0.0.1:0", anyCause, "FastOpenQueue"},
		{"DeferAccept on a packet socket", packet(deferAccept), "udp", "127.0.0.1:0", anyCause, "DeferAccept"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			noNewFDsAtEnd(t, "the failed call")
			// Resolving a .invalid name needs no network, but a slow
			// resolver must not hang the test.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := tc.listen(ctx, tc.network, tc.address)
			if got != 0 {
				t.Errorf("returned %d open sockets along with error %v", got, err)
			}
			if err == nil {
				t.Fatalf("no error")
			}
			var op *net.OpError
			if !errors.As(err, &op) {
				t.Fatalf("error %v is a %T, not a *net.OpError", err, err)
			}
			if op.Op != "listen" || op.Net != tc.network {
				t.Errorf("OpError has Op %q, Net %q; want listen, %q", op.Op, op.Net, tc.network)
			}
			if !tc.cause(err) {
				t.Errorf("error %v (%#v) does not unwrap to the expected cause", err, op.Err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

// A listenFunc calls one entry point of the package, closes whatever it
// returned, and reports how many sockets that was.
type listenFunc func(ctx context.Context, network, address string) (open int, err error)

func stream(lc reuseport.ListenConfig) listenFunc {
	return func(ctx context.Context, network, address string) (int, error) {
		ln, err := lc.Listen(ctx, network, address)
		if ln != nil {
			ln.Close()
			return 1, err
		}
		return 0, err
	}
}

func packet(lc reuseport.ListenConfig) listenFunc {
	return func(ctx context.Context, network, address string) (int, error) {
		pc, err := lc.ListenPacket(ctx, network, address)
		if pc != nil {
			pc.Close()
			return 1, err
		}
		return 0, err
	}
}

func group(lc reuseport.ListenConfig, n int) listenFunc {
	return func(ctx context.Context, network, address string) (int, error) {
		lns, err := lc.ListenGroup(ctx, network, address, n)
		closeAll(lns)
		return len(lns), err
	}
}

func packetGroup(lc reuseport.ListenConfig, n int) listenFunc {
	return func(ctx context.Context, network, address string) (int, error) {
		pcs, err := lc.ListenPacketGroup(ctx, network, address, n)
		closeAll(pcs)
		return len(pcs), err
	}
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func as[E error](err error) bool {
	var e E
	return errors.As(err, &e)
}

// TestPackageFunctionsBadInput checks that the functions without a
// context report bad input the same way as the ListenConfig methods.
func TestPackageFunctionsBadInput(t *testing.T) {
	requireShare(t)
	sock := filepath.Join(t.TempDir(), "reuseport.sock")
	tests := []struct {
		name    string
		call    func() (any, error)
		network string
		cause   func(error) bool
	}{
		{"Listen", func() (any, error) { return reuseport.Listen("unix", sock) }, "unix", is(errors.ErrUnsupported)},
		{"Listen bad port", func() (any, error) { return reuseport.Listen("tcp", "127.0.0.1:99999") }, "tcp", as[*net.AddrError]},
		{"ListenPacket", func() (any, error) { return reuseport.ListenPacket("unixgram", sock) }, "unixgram", is(errors.ErrUnsupported)},
		{"ListenPacket bad port", func() (any, error) { return reuseport.ListenPacket("udp", "127.0.0.1:99999") }, "udp", as[*net.AddrError]},
		{"ListenGroup", func() (any, error) { return reuseport.ListenGroup("unixpacket", sock, 2) }, "unixpacket", is(errors.ErrUnsupported)},
		{"ListenGroup of 0", func() (any, error) { return reuseport.ListenGroup("tcp", "127.0.0.1:0", 0) }, "tcp", func(error) bool { return true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			noNewFDsAtEnd(t, "the failed call")
			got, err := tc.call()
			var op *net.OpError
			if !errors.As(err, &op) || op.Net != tc.network || !tc.cause(err) {
				t.Fatalf("got error %v (%T); want a *net.OpError for %q wrapping the cause", err, err, tc.network)
			}
			// A nil Listener or PacketConn becomes a nil any; a nil slice does not.
			switch got := got.(type) {
			case nil:
			case []net.Listener:
				if got != nil {
					t.Errorf("returned %d listeners along with the error", len(got))
				}
			default:
				t.Errorf("returned %v along with the error", got)
			}
		})
	}
}
