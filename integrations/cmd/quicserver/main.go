// Command quicserver is an HTTP/3 server that shares its UDP port with
// every other copy of itself, through the reuseport package, and steers
// each QUIC packet to the copy that owns its connection, through the steer
// package, so that copies can join, leave and restart without breaking a
// connection. It answers every request with the process that served it:
//
//	go run ./cmd/quicserver -addr 127.0.0.1:4433 &   # several times
//	curl --http3-only -k https://127.0.0.1:4433/      # hello from pid=N
//
// Copies may be started and stopped at any time: a new copy's socket
// joins the port's reuseport group and takes new connections; SIGINT or
// SIGTERM drains a copy (no new connection reaches it, HTTP/3 GOAWAY
// moves its clients to the other copies once their requests in flight are
// answered, bounded by -shutdown-timeout) and it exits 0.
//
// With -handoff PATH a copy can be replaced in place: start the new copy
// with the same -addr and -handoff. It binds a socket of its own on the
// port, and once it serves it tells the old copy through PATH (see the
// handoff package), which then drains as on SIGTERM and exits 0. Unlike a
// TCP server, the old copy does not pass its socket on: the two read
// different sockets, so the old copy can finish its connections while
// every new one goes to its successor. Each worker of a group needs its
// own PATH:
//
//	quicserver -addr :4433 -handoff /run/quicserver/w1.sock &
//	quicserver -addr :4433 -handoff /run/quicserver/w2.sock &
//	quicserver -addr :4433 -handoff /run/quicserver/w1.sock &   # replaces the first
//
// -steer=false leaves the packets to the kernel's hash of their addresses,
// as a plain quic-go server on a shared port does: a copy that joins or
// leaves then moves the other copies' connections to sockets that do not
// know them, and they break. It is there for tests to show that.
//
// TLS uses -cert and -key, or else a self-signed certificate for localhost
// made at start (clients must skip verification: curl -k).
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/b93f8b21/reuseport"
	"github.com/b93f8b21/reuseport/handoff"
	"github.com/b93f8b21/reuseport/integrations/internal/selfsigned"
	"github.com/b93f8b21/reuseport/integrations/quicsteer"
	"github.com/b93f8b21/reuseport/internal/test/servercmd"
	"github.com/b93f8b21/reuseport/steer"
)

func main() { command.Main(serve) }

// serve is one generation of the server: it serves until ctx is done or a
// successor serves, then drains and returns.
func serve(ctx context.Context, f servercmd.Flags, logger *log.Logger) error {
	tlsConf, err := loadTLS()
	if err != nil {
		return err
	}
	// The handoff path only tells the predecessor when to drain: the
	// successor takes none of its sockets (the predecessor claims none,
	// so it offers none) and binds its own in newServer.
	var h *handoff.Handoff
	if f.Handoff != "" {
		if h, err = handoff.Start(ctx, handoff.Config{Path: f.Handoff, Logger: servercmd.Slog(logger)}); err != nil {
			return err
		}
		defer h.Close() // before Ready, this abandons the handoff and the predecessor keeps serving
	}
	s, err := newServer(f.Addr, os.Getpid(), tlsConf, logger)
	if err != nil {
		return err
	}
	var done <-chan struct{} // nil without -handoff: only a signal stops this copy
	if h != nil {
		if err := h.Ready(); err != nil {
			s.stop(f.ShutdownTimeout)
			return err
		}
		done = h.Done()
	}
	return s.serveUntil(ctx, done, f.ShutdownTimeout)
}

// server is one copy: its socket, its membership of the steering group,
// its quic-go transport and its HTTP/3 server.
type server struct {
	conn   *net.UDPConn
	group  *steer.Group  // nil without -steer
	member *steer.Member // nil without -steer
	tr     *quic.Transport
	ln     *acceptClock
	h3     *http3.Server
	served chan error
	logger *log.Logger
}

// newServer binds a socket of its own on the shared port, joins the
// steering group with it and serves HTTP/3 on it.
func newServer(addr string, pid int, tlsConf *tls.Config, logger *log.Logger) (*server, error) {
	pc, err := reuseport.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	s := &server{conn: pc.(*net.UDPConn), served: make(chan error, 1), logger: logger}
	if own.steer {
		if s.group, err = steer.NewGroup(steer.Config{Logger: servercmd.Slog(logger)}); err != nil {
			s.conn.Close()
			return nil, err
		}
		if s.member, err = s.group.Join(s.conn); err != nil {
			s.group.Close()
			s.conn.Close()
			return nil, err
		}
		s.tr = quicsteer.NewTransport(s.conn, s.member)
	} else {
		s.tr = &quic.Transport{Conn: s.conn}
	}
	ln, err := s.tr.ListenEarly(http3.ConfigureTLSConfig(tlsConf), &quic.Config{})
	if err != nil {
		s.close()
		return nil, err
	}
	s.ln = &acceptClock{EarlyListener: ln}
	s.h3 = &http3.Server{Handler: handler(pid)}
	go func() { s.served <- s.h3.ServeListener(s.ln) }()
	how := "steered by connection ID"
	if !own.steer {
		how = "by the kernel's hash (-steer=false)"
	}
	logger.Printf("listening on %s (udp, packets %s)", s.conn.LocalAddr(), how)
	return s, nil
}

// serveUntil serves until ctx is done or done is closed, then stops.
func (s *server) serveUntil(ctx context.Context, done <-chan struct{}, timeout time.Duration) error {
	select {
	case <-ctx.Done():
		s.logger.Printf("shutting down: signal")
	case <-done:
		s.logger.Printf("shutting down: a successor serves")
	case err := <-s.served:
		s.close()
		return fmt.Errorf("serving HTTP/3: %w", err)
	}
	return s.stop(timeout)
}

// stop drains: no new connection reaches the socket, the HTTP/3 server
// sends GOAWAY and waits for the requests in flight, then the socket leaves
// the group and closes.
func (s *server) stop(timeout time.Duration) error {
	if s.member != nil {
		drained := time.Now()
		if err := s.member.Drain(); err != nil {
			s.logger.Printf("steer: drain: %v", err) // new connections may still arrive, and fail
		}
		// Connections whose first packets reached the socket before the
		// drain are still being set up; closing the listener now would
		// refuse them (quic-go answers CONNECTION_REFUSED). No new ones
		// come, so wait until the listener has been quiet for a while.
		s.ln.waitQuiet(drained, handshakeQuiet, handshakeGrace)
	}
	s.ln.Close() // no new connection; those accepted go on
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := s.h3.Shutdown(ctx)
	if err != nil {
		s.logger.Printf("HTTP/3 shutdown: %v (connections closed)", err)
	} else {
		s.logger.Printf("HTTP/3 shutdown: every connection finished")
	}
	s.close()
	return nil
}

// close leaves the group (its table moves the last socket into this one's
// slot before the kernel does), then closes the transport and the socket.
func (s *server) close() {
	if s.member != nil {
		if err := s.member.Leave(); err != nil {
			s.logger.Printf("steer: leave: %v", err)
		}
	}
	s.tr.Close()
	s.conn.Close()
	if s.group != nil {
		s.group.Close()
	}
}

// handler answers every request with the pid of the process serving it.
func handler(pid int) http.Handler {
	body := fmt.Sprintf("hello from pid=%d\n", pid)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, body)
	})
}

// loadTLS reads -cert and -key, or makes a self-signed certificate.
func loadTLS() (*tls.Config, error) {
	if own.certFile == "" {
		c, _, err := selfsigned.New()
		return c, err
	}
	cert, err := tls.LoadX509KeyPair(own.certFile, own.keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}

// How long a draining copy keeps its listener open for the connections
// that reached it just before the drain: until none has been accepted for
// handshakeQuiet, and at most handshakeGrace.
const (
	handshakeQuiet = 250 * time.Millisecond
	handshakeGrace = 2 * time.Second
)

// acceptClock is the HTTP/3 server's listener; it notes when Accept last
// returned a connection.
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
