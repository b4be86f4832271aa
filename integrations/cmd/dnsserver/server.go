package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/miekg/dns"

	"github.com/b93f8b21/reuseport/handoff"
)

// handler answers for every name in zone: A with addr, TXT with the pid of
// the process that answered ("pid=N", so that a client can tell
// generations apart), and no data for other types. Names outside the zone
// are refused.
func handler(zone string, addr net.IP) dns.Handler {
	txt := fmt.Sprintf("pid=%d", os.Getpid())
	return dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if len(req.Question) != 1 || !dns.IsSubDomain(zone, req.Question[0].Name) {
			m.Rcode = dns.RcodeRefused
			w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 60}
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: addr})
		case dns.TypeTXT:
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{txt}})
		}
		w.WriteMsg(m)
	})
}

// server is one miekg/dns server on a socket RunAll gives it, started and
// stopped as RunAll asks.
//
// dns.Server.ShutdownContext answers "server not started" when it runs
// before ActivateAndServe has begun, and the server then serves on: a stop
// right after the start (a signal, a failed takeover) would wait out
// -shutdown-timeout. So shutdown waits for NotifyStartedFunc first, or for
// serve to have returned.
type server struct {
	srv     *dns.Server
	started chan struct{} // closed by NotifyStartedFunc
	served  chan struct{} // closed when ActivateAndServe returns
}

func newServer(h dns.Handler) *server {
	s := &server{started: make(chan struct{}), served: make(chan struct{})}
	s.srv = &dns.Server{Handler: h, NotifyStartedFunc: func() { close(s.started) }}
	return s
}

func (s *server) serve() error {
	defer close(s.served)
	return s.srv.ActivateAndServe()
}

// ServePacket serves UDP on pc.
func (s *server) ServePacket(pc net.PacketConn) error {
	s.srv.Net, s.srv.PacketConn = "udp", pc
	return s.serve()
}

// ServeTCP serves TCP on ln. With firstQuery, its Shutdown answers the
// first query of every connection accepted (see firstQueryListener).
func (s *server) ServeTCP(ln net.Listener, firstQuery bool) error {
	if firstQuery {
		ln = firstQueryListener{ln}
	}
	s.srv.Net, s.srv.Listener = "tcp", ln
	// miekg/dns closes a connection after 128 queries by default, and a
	// client that sends queries ahead on it (dnsperf -m tcp) loses those
	// sent after the 128th: 79 of 6,000 in 2s, without any restart.
	s.srv.MaxTCPQueries = -1
	return s.serve()
}

// Shutdown is dns.Server.ShutdownContext, once the server has started.
//
// On UDP it stops reading (a read deadline in the past), waits for the
// handlers of the queries read, and closes this process's descriptor: the
// datagrams not read yet stay queued in the socket, which the successor
// holds, and it answers them.
//
// On TCP it closes the listener and sets a read deadline in the past on
// every connection, so that a query the server has not read yet is never
// read and the connection closes unanswered, unless ServeTCP was asked to
// answer first queries.
func (s *server) Shutdown(ctx context.Context) error {
	select {
	case <-s.started:
	case <-s.served:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.srv.ShutdownContext(ctx)
}

var _ handoff.PacketServer = (*server)(nil)
