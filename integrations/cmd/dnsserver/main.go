// Command dnsserver is a small authoritative DNS server, on
// github.com/miekg/dns, that serves UDP and TCP on one port and restarts
// without losing a query. Every name in its zone has an A record (-a) and
// a TXT record naming the process that answered:
//
//	go run ./cmd/dnsserver -addr 127.0.0.1:5353 -handoff /tmp/dns1.sock &
//	dig @127.0.0.1 -p 5353 +short TXT www.example.test        # "pid=N"
//	dig @127.0.0.1 -p 5353 +short +tcp A www.example.test     # 192.0.2.1
//
// Both sockets are one server to handoff.RunAll: starting another copy
// with the same -addr and -handoff replaces this one. The new copy takes
// the UDP socket and the TCP listener over PATH; this copy stops reading,
// answers the queries it has read, and exits 0 by itself. The datagrams it
// had not read stay queued in the UDP socket, which the new copy reads, so
// a UDP client loses nothing. Each worker of a group needs its own PATH.
//
// On TCP the old copy stops with dns.Server.ShutdownContext, but answers
// the first query of every connection it accepted, which ShutdownContext
// alone would not read (see firstQueryListener): a client that opens a
// connection for each query loses nothing either. A client that keeps its
// connection open and sends more queries on it loses those the old copy
// had not read when it stopped: the connection closes, and the client must
// send them again on a new one (RFC 7766 allows a server to close at any
// time). -shutdown native is plain ShutdownContext, kept so that tests can
// show what it loses.
//
// SIGINT or SIGTERM stops the same way and closes the sockets: the queries
// still queued on them are then lost, unless another copy holds them.
//
// -addr must name a port: the UDP and TCP sockets share it.
package main

import (
	"context"
	"log"
	"net"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/internal/test/servercmd"
)

func main() { command.Main(serve) }

// serve is one generation of the server, as servercmd runs it.
func serve(ctx context.Context, f servercmd.Flags, logger *log.Logger) error {
	cfg := f.HandoffConfig(logger)
	cfg.OnReady = func(addr net.Addr) { // once for each socket
		logger.Printf("listening on %s (%s; reuseport: %v; shutdown: %s)", addr, addr.Network(), reuseport.Capabilities(), f.Shutdown)
	}
	h := handler(own.zone, own.a)
	udp, tcp := newServer(h), newServer(h)
	return handoff.RunAll(ctx, cfg,
		handoff.Service{Network: "udp", Address: f.Addr, PacketServer: udp},
		handoff.Service{Network: "tcp", Address: f.Addr, Server: handoff.Funcs(func(ln net.Listener) error {
			return tcp.ServeTCP(ln, f.Shutdown == shutdownFirstQuery)
		}, tcp.Shutdown),
			// miekg/dns answers one query at a time on a connection and
			// reads no further (a 2-byte length, then exactly that), so the
			// stop may hand kept-open connections to the successor.
			Sequential: true},
	)
}
