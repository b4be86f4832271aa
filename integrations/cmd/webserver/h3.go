package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/integrations/quicsteer"
	"github.com/b93f8b21/reuseport/internal/test/servercmd"
	"github.com/b93f8b21/reuseport/steer"
)

// h3Grace bounds how long a stopping copy waits, after its GOAWAY, for
// its HTTP/3 clients to finish their requests and close their
// connections. It reads the UDP socket meanwhile, which its successor
// reads too: the packets of the successor's connections that it reads are
// lost (QUIC sends them again), so the wait is kept short.
const h3Grace = time.Second

// h3Server is the handoff.PacketServer of HTTP/3: a quic-go transport on
// the UDP socket, which joins the port's steer group through quicsteer,
// as cmd/quicserver does, and an http3.Server on its listener.
type h3Server struct {
	tlsConf *tls.Config
	handler http.Handler
	logger  *log.Logger

	mu      sync.Mutex
	stopped bool
	srv     *http3.Server // nil until ServePacket has set up the rest
	ln      *quic.EarlyListener
	tr      *quic.Transport
	group   *steer.Group
}

var _ handoff.PacketServer = (*h3Server)(nil)

func newH3Server(tlsConf *tls.Config, h http.Handler, logger *log.Logger) *h3Server {
	return &h3Server{tlsConf: http3.ConfigureTLSConfig(tlsConf.Clone()), handler: h, logger: logger}
}

// ServePacket serves HTTP/3 on pc until Shutdown.
func (s *h3Server) ServePacket(pc net.PacketConn) error {
	conn, ok := pc.(*net.UDPConn)
	if !ok {
		return fmt.Errorf("webserver: HTTP/3 needs a *net.UDPConn, got %T", pc)
	}
	tr, group := s.transport(conn)
	ln, err := tr.ListenEarly(s.tlsConf, &quic.Config{})
	if err != nil {
		tr.Close()
		if group != nil {
			group.Close()
		}
		if s.isStopped() {
			return http.ErrServerClosed // RunAll may have closed conn already
		}
		return err
	}
	srv := &http3.Server{Handler: s.handler}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		ln.Close()
		tr.Close()
		if group != nil {
			group.Close()
		}
		return http.ErrServerClosed
	}
	s.srv, s.ln, s.tr, s.group = srv, ln, tr, group
	s.mu.Unlock()
	return srv.ServeListener(ln)
}

// Shutdown stops taking new connections, sends GOAWAY on those it has,
// waits for their requests up to h3Grace (or ctx), closes what is left,
// and stops reading. It leaves the socket open: the successor reads it.
func (s *h3Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	srv, ln, tr, group := s.srv, s.ln, s.tr, s.group
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	// The successor reads the same socket, so no new connection can be
	// steered away from this copy: the listener closes at once, and a
	// client whose Initial this copy reads from now on gets no answer
	// and sends it again, to whichever copy reads it then.
	ln.Close()
	graceCtx, cancel := context.WithTimeout(ctx, h3Grace)
	defer cancel()
	err := srv.Shutdown(graceCtx)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = nil // h3Grace, not the caller's deadline: close the rest
	}
	if cerr := srv.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	// Transport.Close stops the read loop with a read deadline; it
	// closes only a socket that quic-go opened itself, not this one.
	tr.Close()
	// The group's program stays attached to the port for the successor,
	// which has joined its own group on the same socket; with one socket
	// in the port's reuseport group every packet reaches it anyway.
	if group != nil {
		group.Close()
	}
	return err
}

func (s *h3Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// How long ServePacket tries to join the port's steer group: a few times
// the predecessor's h3Grace, with a pause between tries.
const (
	joinTries = 12
	joinPause = 250 * time.Millisecond
)

// transport returns the quic-go transport on conn, steered through a
// group it joins. The successor joins while its predecessor still reads
// the same socket, and both answer the group's probes for its one slot,
// each with its own member id; the group sees the slot change and Join
// fails ("kept changing") until the predecessor has stopped reading, so
// it is tried again meanwhile. If it never succeeds the transport is not
// steered, which is logged: with a single socket on the port, as here, the
// kernel sends every packet to it either way.
func (s *h3Server) transport(conn *net.UDPConn) (*quic.Transport, *steer.Group) {
	var err error
	for try := range joinTries {
		if try > 0 {
			time.Sleep(joinPause)
		}
		var group *steer.Group
		if group, err = steer.NewGroup(steer.Config{Logger: servercmd.Slog(s.logger)}); err != nil {
			break
		}
		var member *steer.Member
		if member, err = group.Join(conn); err == nil {
			if try > 0 {
				s.logger.Printf("steer: joined the group at try %d", try+1)
			}
			return quicsteer.NewTransport(conn, member), group
		}
		group.Close()
		if s.isStopped() {
			return &quic.Transport{Conn: conn}, nil // not to be served: ServePacket returns
		}
	}
	s.logger.Printf("steer: not steering QUIC packets by connection ID: %v", err)
	return &quic.Transport{Conn: conn}, nil
}
