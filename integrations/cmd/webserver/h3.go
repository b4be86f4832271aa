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
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/integrations/quicsteer"
	"github.com/b93f8b21/reuseport/internal/test/servercmd"
	"github.com/b93f8b21/reuseport/steer"
)

// h3Server is the handoff.PacketServer of HTTP/3. Its Service has
// OwnSocket set: each generation binds a UDP socket of its own on the
// port and joins the port's steer group with it (through quicsteer), as
// cmd/quicserver does, so that the packets of each QUIC connection reach
// the process that made it while the old generation finishes its
// connections and every new one goes to the new generation.
type h3Server struct {
	tlsConf *tls.Config
	handler http.Handler
	logger  *log.Logger

	mu      sync.Mutex
	stopped bool
	srv     *http3.Server // nil until ServePacket has set up the rest
	ln      *acceptClock
	tr      *quic.Transport
	group   *steer.Group
	member  *steer.Member
}

var _ handoff.PacketServer = (*h3Server)(nil)

func newH3Server(tlsConf *tls.Config, h http.Handler, logger *log.Logger) *h3Server {
	return &h3Server{tlsConf: http3.ConfigureTLSConfig(tlsConf.Clone()), handler: h, logger: logger}
}

// ServePacket joins the steer group with pc and serves HTTP/3 on it until
// Shutdown.
func (s *h3Server) ServePacket(pc net.PacketConn) error {
	conn, ok := pc.(*net.UDPConn)
	if !ok {
		return fmt.Errorf("webserver: HTTP/3 needs a *net.UDPConn, got %T", pc)
	}
	group, err := steer.NewGroup(steer.Config{Logger: servercmd.Slog(s.logger)})
	if err != nil {
		return err
	}
	member, err := group.Join(conn)
	if err != nil {
		group.Close()
		return fmt.Errorf("webserver: joining the port's steer group: %w", err)
	}
	tr := quicsteer.NewTransport(conn, member)
	eln, err := tr.ListenEarly(s.tlsConf, &quic.Config{})
	if err != nil {
		member.Leave()
		tr.Close()
		group.Close()
		return err
	}
	ln := &acceptClock{EarlyListener: eln}
	srv := &http3.Server{Handler: s.handler}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		ln.Close()
		member.Leave()
		tr.Close()
		group.Close()
		return http.ErrServerClosed
	}
	s.srv, s.ln, s.tr, s.group, s.member = srv, ln, tr, group, member
	s.mu.Unlock()
	return srv.ServeListener(ln)
}

// How long a stopping copy waits for handshakes under way: until its
// listener has accepted nothing for handshakeQuiet since it drained, at
// most handshakeGrace.
const (
	handshakeQuiet = 250 * time.Millisecond
	handshakeGrace = 2 * time.Second
)

// Shutdown drains: steer sends no new connection to this socket, the
// handshakes under way finish, HTTP/3 GOAWAY moves the clients to new
// connections once their requests are answered (bounded by ctx), and the
// socket leaves the group; RunAll closes it afterwards.
func (s *h3Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	srv, ln, tr, group, member := s.srv, s.ln, s.tr, s.group, s.member
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	drained := time.Now()
	var errs []error
	if err := member.Drain(); err != nil {
		errs = append(errs, fmt.Errorf("steer drain: %w", err))
	}
	// Closing the listener now would refuse the connections whose first
	// packets came before the drain (quic-go answers CONNECTION_REFUSED).
	ln.waitQuiet(drained, handshakeQuiet, handshakeGrace)
	ln.Close()
	if err := srv.Shutdown(ctx); err != nil {
		errs = append(errs, err, srv.Close())
	}
	// Leave before the socket closes: the group's table moves another
	// socket into this one's slot before the kernel does.
	if err := member.Leave(); err != nil {
		errs = append(errs, fmt.Errorf("steer leave: %w", err))
	}
	tr.Close() // stops reading; the socket is RunAll's to close
	group.Close()
	return errors.Join(errs...)
}

// acceptClock is the HTTP/3 listener; it notes when Accept last returned
// a connection, for Shutdown's wait for handshakes under way.
type acceptClock struct {
	*quic.EarlyListener
	last atomic.Int64 // Unix nanoseconds
}

func (l *acceptClock) Accept(ctx context.Context) (*quic.Conn, error) {
	c, err := l.EarlyListener.Accept(ctx)
	if err == nil {
		l.last.Store(time.Now().UnixNano())
	}
	return c, err
}

// waitQuiet returns once no connection has been accepted for quiet since
// from (or since the last accept after it), or when limit has passed.
func (l *acceptClock) waitQuiet(from time.Time, quiet, limit time.Duration) {
	end := from.Add(limit)
	for {
		since := from
		if last := time.Unix(0, l.last.Load()); last.After(since) {
			since = last
		}
		wake := since.Add(quiet)
		if !wake.After(time.Now()) || !end.After(time.Now()) {
			return
		}
		time.Sleep(min(time.Until(wake), time.Until(end)))
	}
}
