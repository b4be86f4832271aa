package reuseport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/b93f8b21/reuseport/internal/sockaddr"
)

// Listen is [net.Listen] for a socket that shares its port. The network must
// be "tcp", "tcp4" or "tcp6".
func Listen(network, address string) (net.Listener, error) {
	var lc ListenConfig
	return lc.Listen(context.Background(), network, address)
}

// ListenPacket is [net.ListenPacket] for a socket that shares its port. The
// network must be "udp", "udp4" or "udp6".
//
// The kernel keeps no UDP connections: it hashes every datagram's addresses
// and ports onto the sockets of the group, so when a socket joins or leaves,
// flows move to sockets that have never seen them, and a QUIC connection
// that moves breaks. Keep such a group's size fixed while connections live
// and restart its copies with the handoff subpackage, which keeps the socket
// open; see "UDP and QUIC" in the README and in the handoff documentation.
func ListenPacket(network, address string) (net.PacketConn, error) {
	var lc ListenConfig
	return lc.ListenPacket(context.Background(), network, address)
}

// ListenGroup binds n listeners to one address; see [ListenConfig.ListenGroup].
func ListenGroup(network, address string, n int) ([]net.Listener, error) {
	var lc ListenConfig
	return lc.ListenGroup(context.Background(), network, address, n)
}

// ListenPacketGroup binds n packet sockets to one address, for one process
// that wants several read loops the kernel spreads datagrams between; see
// [ListenConfig.ListenPacketGroup]. The network must be "udp", "udp4" or
// "udp6".
func ListenPacketGroup(network, address string, n int) ([]net.PacketConn, error) {
	var lc ListenConfig
	return lc.ListenPacketGroup(context.Background(), network, address, n)
}

// Control marks the socket c so that it may share its address and port with
// other sockets that are marked the same way. It has the signature of
// [net.ListenConfig.Control] and [net.Dialer.Control]: use it in a Dialer to
// connect out from a local port that listeners already hold.
//
// Control sets only what is safe on a socket that will connect, because it
// cannot tell a dialer from a listener. On FreeBSD that leaves out
// SO_REUSEPORT_LB (connect(2) fails with EOPNOTSUPP on such a socket), so a
// listener made with Control alone shares its port without balancing; the
// Listen functions of this package set it.
//
// On an OS that cannot share ports it returns an error that wraps
// [errors.ErrUnsupported], and so it does for the unix networks on every
// OS, without touching the socket: a socket path cannot be shared, and
// [Listen] gives the same error. The [net.Dialer] or [net.ListenConfig]
// that called it returns it in a [*net.OpError].
func Control(network, address string, c syscall.RawConn) error {
	if isUnix(network) {
		return errUnixPath
	}
	var sockErr error
	if err := c.Control(func(fd uintptr) { sockErr = setReusePort(fd, isStream(network), false) }); err != nil {
		return err
	}
	return sockErr
}

// ListenConfig listens on shared ports. Its zero value is ready to use.
//
// The embedded [net.ListenConfig] is the caller's own: its KeepAlive settings
// apply to accepted connections, and its Control function, if set, runs after
// the socket options of this package are set, so it has the last word.
type ListenConfig struct {
	net.ListenConfig

	// FastOpenQueue, when positive, enables TCP Fast Open on listeners with
	// this many pending Fast Open requests (TCP_FASTOPEN). Linux only:
	// elsewhere Listen fails with an error wrapping [errors.ErrUnsupported].
	FastOpenQueue int

	// DeferAccept, when positive, lets the kernel wake Accept only once the
	// client has sent data or this much time has passed (TCP_DEFER_ACCEPT,
	// in whole seconds, rounded up). Linux only, like FastOpenQueue.
	DeferAccept time.Duration
}

// Listen is [net.ListenConfig.Listen] for a socket that shares its port.
func (lc *ListenConfig) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	if err := checkNetwork("listen", network, streamNetworks); err != nil {
		return nil, err
	}
	if err := checkShare("listen", network); err != nil {
		return nil, err
	}
	if err := lc.checkTuning("listen", network); err != nil {
		return nil, err
	}
	nlc := lc.netListenConfig(true)
	return nlc.Listen(ctx, network, address)
}

// ListenPacket is [net.ListenConfig.ListenPacket] for a socket that shares
// its port. FastOpenQueue and DeferAccept do not apply to packet sockets and
// must be zero. As [ListenPacket] says, datagram flows move between the
// sockets of a group whenever one joins or leaves it.
func (lc *ListenConfig) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	if err := checkNetwork("listen", network, packetNetworks); err != nil {
		return nil, err
	}
	if err := checkShare("listen", network); err != nil {
		return nil, err
	}
	if lc.FastOpenQueue != 0 || lc.DeferAccept != 0 {
		return nil, &net.OpError{Op: "listen", Net: network, Err: errors.New("reuseport: FastOpenQueue and DeferAccept apply to TCP listeners only")}
	}
	nlc := lc.netListenConfig(false)
	return nlc.ListenPacket(ctx, network, address)
}

// ListenGroup binds n listeners to one address, for one process that wants
// several accept loops the kernel balances between. A port of 0 is resolved
// once: the first listener gets a port from the kernel and the others join
// it. If any bind fails, the listeners already made are closed.
func (lc *ListenConfig) ListenGroup(ctx context.Context, network, address string, n int) ([]net.Listener, error) {
	return listenGroup(ctx, network, address, n, lc.Listen)
}

// ListenPacketGroup is [ListenConfig.ListenGroup] for packet sockets. Closing
// one of them can move flows between the others (see [ListenPacket]).
func (lc *ListenConfig) ListenPacketGroup(ctx context.Context, network, address string, n int) ([]net.PacketConn, error) {
	return listenGroup(ctx, network, address, n, lc.ListenPacket)
}

type closer interface{ Close() error }

func listenGroup[S closer](ctx context.Context, network, address string, n int, listen func(context.Context, string, string) (S, error)) ([]S, error) {
	if n < 1 {
		return nil, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("reuseport: a group needs at least one socket, not %d", n)}
	}
	group := make([]S, 0, n)
	for len(group) < n {
		s, err := listen(ctx, network, address)
		if err != nil {
			for _, s := range group {
				s.Close()
			}
			return nil, err
		}
		if len(group) == 0 {
			// Join the address the first bind got: its port differs from the
			// requested one when that was 0 or a service name, and a host
			// name need not resolve to the same address twice.
			address = sockaddr.Local(s).String()
		}
		group = append(group, s)
	}
	return group, nil
}

func (lc *ListenConfig) netListenConfig(stream bool) net.ListenConfig {
	nlc := lc.ListenConfig
	userControl := nlc.Control
	fastOpen, deferAccept := lc.FastOpenQueue, lc.DeferAccept
	nlc.Control = func(network, address string, c syscall.RawConn) error {
		var sockErr error
		err := c.Control(func(fd uintptr) {
			if sockErr = setReusePort(fd, stream, true); sockErr != nil {
				return
			}
			if stream && fastOpen > 0 {
				if sockErr = setFastOpen(fd, fastOpen); sockErr != nil {
					return
				}
			}
			if stream && deferAccept > 0 {
				secs := int((deferAccept + time.Second - 1) / time.Second)
				sockErr = setDeferAccept(fd, secs)
			}
		})
		if err != nil {
			return err
		}
		if sockErr != nil {
			return sockErr
		}
		if userControl != nil {
			return userControl(network, address, c)
		}
		return nil
	}
	return nlc
}

func (lc *ListenConfig) checkTuning(op, network string) error {
	switch {
	case lc.FastOpenQueue < 0:
		return &net.OpError{Op: op, Net: network, Err: fmt.Errorf("reuseport: FastOpenQueue must not be negative, got %d", lc.FastOpenQueue)}
	case lc.DeferAccept < 0:
		return &net.OpError{Op: op, Net: network, Err: fmt.Errorf("reuseport: DeferAccept must not be negative, got %v", lc.DeferAccept)}
	case lc.DeferAccept > time.Duration(maxDeferAcceptSeconds)*time.Second:
		return &net.OpError{Op: op, Net: network, Err: fmt.Errorf("reuseport: DeferAccept must be at most %ds, got %v", maxDeferAcceptSeconds, lc.DeferAccept)}
	}
	return nil
}

// maxDeferAcceptSeconds keeps the seconds value inside a C int with room to spare.
const maxDeferAcceptSeconds = 1 << 20

var (
	streamNetworks = []string{"tcp", "tcp4", "tcp6"}
	packetNetworks = []string{"udp", "udp4", "udp6"}
)

// errUnixPath explains why unix networks are refused: a path names one
// socket, and a second bind to it fails whatever options are set.
var errUnixPath = fmt.Errorf("reuseport: a unix socket path cannot be shared by several sockets: %w", errors.ErrUnsupported)

// checkShare fails before any socket exists where ports cannot be shared,
// rather than relying on Control: some targets (js/wasm, wasip1) never call it.
func checkShare(op, network string) error {
	if c := Capabilities(); !c.Share {
		return &net.OpError{Op: op, Net: network, Err: c.Err}
	}
	return nil
}

func checkNetwork(op, network string, want []string) error {
	for _, n := range want {
		if network == n {
			return nil
		}
	}
	var err error
	switch {
	case isUnix(network):
		err = errUnixPath
	case slices.Contains(streamNetworks, network):
		err = fmt.Errorf("reuseport: %w: use Listen for stream network %q", net.UnknownNetworkError(network), network)
	case slices.Contains(packetNetworks, network):
		err = fmt.Errorf("reuseport: %w: use ListenPacket for packet network %q", net.UnknownNetworkError(network), network)
	default:
		err = fmt.Errorf("reuseport: %w: want one of %v", net.UnknownNetworkError(network), want)
	}
	return &net.OpError{Op: op, Net: network, Err: err}
}

// Capability says what the running OS offers. See [Capabilities].
type Capability struct {
	// Share is true when several sockets may bind the same address and port.
	Share bool
	// Balance is true when the kernel spreads new TCP connections (and UDP
	// flows) across the sockets of a group. Where Share is true and Balance
	// false, one socket receives every new connection until it closes.
	Balance bool
	// Err, when Share is false, says why; it wraps [errors.ErrUnsupported]
	// when the OS has no such feature.
	Err error
	// MigratesRequests is true when the kernel moves the connections
	// waiting in a closing listener's accept queue to another socket of
	// its group instead of resetting them: on Linux 5.14 and later, when
	// the sysctl net.ipv4.tcp_migrate_req (default 0) is 1 in the caller's
	// network namespace. It is read at every call, as it may change. It is
	// false where the OS has no such setting.
	//
	// Migration narrows the loss when a socket really leaves its group (a
	// crash, or scaling down from N workers to N-1) but does not end it: a
	// connection can still race the close. A restart loses nothing only
	// when the socket never leaves the group: see the handoff package.
	MigratesRequests bool
}

// String describes the capability in a few words, for logs.
func (c Capability) String() string {
	switch {
	case c.Balance:
		return "shares ports and balances connections"
	case c.Share:
		return "shares ports without balancing: one socket takes every new connection"
	case c.Err == nil:
		// The zero Capability: printing one must not panic.
		return "cannot share ports"
	default:
		return "cannot share ports: " + c.Err.Error()
	}
}

// Capabilities reports whether the running kernel lets sockets share a port,
// whether it balances connections between them, and whether it migrates
// queued connections. The first two are probed once, on the first call.
func Capabilities() Capability {
	c := probeOnce()
	c.MigratesRequests = migratesRequests()
	return c
}

var probeOnce = sync.OnceValue(probe)

// isUnix tells the unix networks, whose sockets no option lets share an
// address.
func isUnix(network string) bool {
	switch network {
	case "unix", "unixgram", "unixpacket":
		return true
	}
	return false
}

// isStream tells TCP networks from UDP ones in a Control func, which sees the
// resolved network ("tcp4", "udp6", ...).
func isStream(network string) bool { return strings.HasPrefix(network, "tcp") }
