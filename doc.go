// Package reuseport lets many sockets, in one process or many, listen on the
// same TCP or UDP port, so that the kernel spreads new connections across them.
//
// It is a drop-in for [net.Listen] and [net.ListenPacket]: the sockets it
// returns are ordinary *net.TCPListener and *net.UDPConn values that carry
// SO_REUSEPORT (and, where the OS needs it, SO_REUSEADDR or SO_REUSEPORT_LB),
// set through [net.ListenConfig.Control] before bind(2).
//
//	ln, err := reuseport.Listen("tcp", "127.0.0.1:8080")
//
// Run a server built on it several times and every copy serves the same port.
// On Linux (3.9+), FreeBSD (12+, through SO_REUSEPORT_LB) and DragonFly BSD the
// kernel hashes each new connection to one socket of the group. macOS, OpenBSD,
// NetBSD and AIX let sockets share a port but hand every new TCP connection to
// one of them; [Capabilities] reports which case applies at run time.
// FreeBSD leaves a dual-stack wildcard socket ("tcp" on ":port") out of its
// balancing groups, so listen on "tcp4" or "tcp6" there.
//
// Where the OS cannot share a port at all (Windows, Plan 9, Solaris and illumos,
// js/wasm, wasip1) every function returns an error that wraps
// [errors.ErrUnsupported] and names the OS; nothing falls back silently to an
// unshared socket. On Windows in particular the package never sets
// SO_REUSEADDR, which would let any process take over a port in use.
//
// Only sockets of the same user may join a group: Linux refuses a bind from
// another uid with EADDRINUSE, which stops another user hijacking the port.
//
// Closing one socket of a group resets the connections waiting in its accept
// queue. To replace a server without losing them, hand the listening sockets to
// the successor instead of closing them: see the handoff subpackage.
package reuseport
