package fasthttpdrain

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/b93f8b21/reuseport/internal/gauge"
)

// DefaultIdleGrace is how long [Server.Shutdown] keeps a connection open
// that is idle in keep-alive, when [Server.IdleGrace] is zero.
const DefaultIdleGrace = 2 * time.Second

// Server makes a [fasthttp.Server] shut down without dropping requests; see
// the package documentation. It satisfies handoff.Server, and has the Close
// method handoff.Run calls when the graceful stop times out.
//
// Serve connections through [Server.Serve] or [Server.ServeTLS], never the
// fasthttp.Server's own methods, and stop through [Server.Shutdown] and
// [Server.Close]. The fasthttp.Server's ConnState hook sees the connections
// of the listener that Serve wraps around the one it is given; their
// NetConn method returns the connection accepted from that one.
type Server struct {
	// IdleGrace is how long Shutdown keeps open a connection that is idle
	// in keep-alive, counted from its last response, so that a client
	// that reuses it in that time gets its answer (with
	// "Connection: close"). Zero means DefaultIdleGrace. Set it before
	// calling Shutdown.
	IdleGrace time.Duration

	srv  *fasthttp.Server
	next func(net.Conn, fasthttp.ConnState) // the hook srv had before NewServer

	drainOnce sync.Once
	draining  atomic.Bool   // Shutdown has begun: responses say "Connection: close"
	grace     time.Duration // set before draining is

	mu        sync.Mutex
	stopping  bool // Shutdown or Close began: Serve refuses listeners
	closing   bool // Close began: a connection accepted from now on is closed at once
	listeners map[*listener]struct{}
	conns     map[*conn]struct{} // open and not hijacked
	// byAddr finds a connection by its remote address, which is the same
	// *net.TCPAddr for the life of a connection, when fasthttp hides it
	// in a wrapper of its own (with MaxConnsPerIP).
	byAddr map[net.Addr]*conn

	// busy is what Shutdown waits for: the Accept calls in progress plus
	// the connections open and not hijacked.
	busy gauge.Gauge
}

// NewServer prepares srv to drain. Call it before serving, once srv's
// Handler and ConnState are set: it wraps srv.Handler with one that asks
// fasthttp to close the connection after its response once Shutdown has
// begun, and installs a ConnState hook that calls the one srv had, if any.
// Do not replace either afterwards.
func NewServer(srv *fasthttp.Server) *Server {
	s := &Server{
		srv:       srv,
		next:      srv.ConnState,
		listeners: make(map[*listener]struct{}),
		conns:     make(map[*conn]struct{}),
		byAddr:    make(map[net.Addr]*conn),
	}
	srv.ConnState = s.connState
	h := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		h(ctx)
		// Looked at once the handler has returned, since fasthttp writes
		// the response only then: a request whose handler began before
		// the drain is answered with "Connection: close" too. A hijacked
		// connection is the handler's; fasthttp would close it instead
		// of handing it over.
		if s.draining.Load() && !ctx.Hijacked() {
			ctx.SetConnectionClose()
		}
	}
	return s
}

// Serve is [fasthttp.Server.Serve] through a listener wrapped around ln,
// which tells s of every connection it accepts. Like fasthttp.Server.Serve,
// it returns nil once ln is closed, by Shutdown, Close or the caller (as
// handoff.Run stops the listener it passes). Called after Shutdown or Close,
// it closes ln and returns nil at once. Serve may run on several listeners
// at once.
//
// Pass ln itself, not a [crypto/tls] listener made from it, which would
// hide the TLS connection from fasthttp: use ServeTLS for TLS.
func (s *Server) Serve(ln net.Listener) error {
	l := s.listen(ln)
	if l == nil {
		return nil
	}
	defer s.unlisten(l)
	return s.srv.Serve(l)
}

// ServeTLS is [fasthttp.Server.ServeTLS] through a listener wrapped around
// ln, with the return values of [Server.Serve].
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	l := s.listen(ln)
	if l == nil {
		return nil
	}
	defer s.unlisten(l)
	return s.srv.ServeTLS(l, certFile, keyFile)
}

// Shutdown drains the server without dropping a request, then calls
// [fasthttp.Server.ShutdownWithContext]:
//
//  1. It stops accepting on every listener Serve uses, by closing it.
//     Under handoff.Run that is only this process's descriptor: the
//     connections queued on the socket go to the successor.
//  2. Every request whose handler returns from now on is answered with
//     "Connection: close", after which fasthttp closes its connection.
//     Connections idle in keep-alive stay open: a request a client sends
//     on one is answered the same way.
//  3. It closes each connection that stays idle in keep-alive for
//     [Server.IdleGrace] after its last response (at once if it already
//     has), unless bytes of a request are waiting on it.
//  4. It waits until every connection has closed, those whose first
//     request has not arrived yet included. Hijacked connections are not
//     waited for.
//  5. It calls fasthttp.Server.ShutdownWithContext(ctx), which closes
//     [fasthttp.RequestCtx.Done] and returns once Serve has.
//
// If ctx ends first, Shutdown closes every connection still open, as
// [Server.Close] does, lets fasthttp.Server.ShutdownWithContext see the
// ended ctx, and returns ctx.Err().
//
// Shutdown may be called more than once and concurrently; each call waits.
func (s *Server) Shutdown(ctx context.Context) error {
	s.drainOnce.Do(s.drain)
	if err := s.busy.Wait(ctx); err != nil {
		s.Close()
		_ = s.srv.ShutdownWithContext(ctx) // returns at once: ctx has ended
		return err
	}
	return s.srv.ShutdownWithContext(ctx)
}

// Close stops accepting, then closes every connection except hijacked
// ones, without waiting for the requests in progress on them. It returns
// the first error closing a listener returned.
func (s *Server) Close() error {
	err := s.stop(true)
	s.mu.Lock()
	open := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		c.close()
	}
	return err
}

func (s *Server) drain() {
	s.stop(false)
	s.grace = s.IdleGrace
	if s.grace <= 0 {
		s.grace = DefaultIdleGrace
	}
	s.mu.Lock()
	s.draining.Store(true)
	idle := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		idle = append(idle, c)
	}
	s.mu.Unlock()
	// From here on setState schedules the connections that go idle; these
	// are the ones idle already.
	for _, c := range idle {
		c.scheduleReap()
	}
}

// stop makes Serve refuse new listeners and closes the current ones; with
// closing, connections accepted from now on are closed at once.
func (s *Server) stop(closing bool) error {
	s.mu.Lock()
	s.stopping = true
	s.closing = s.closing || closing
	ls := make([]*listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	var err error
	for _, l := range ls {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// listen wraps ln for Serve, or closes it and returns nil if s has stopped.
func (s *Server) listen(ln net.Listener) *listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		ln.Close()
		return nil
	}
	l := &listener{ln: ln, srv: s}
	s.listeners[l] = struct{}{}
	return l
}

func (s *Server) unlisten(l *listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

// track registers a connection Accept returned; its busy count comes from
// the Accept call.
func (s *Server) track(c *conn) {
	var key net.Addr
	if s.srv.MaxConnsPerIP > 0 {
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			key = a
		}
	}
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.conns[c] = struct{}{}
		if key != nil {
			c.key = key
			s.byAddr[key] = c
		}
	}
	s.mu.Unlock()
	if closing {
		c.close()
	}
}

// untrack forgets a connection that has closed or been hijacked.
func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.key != nil && s.byAddr[c.key] == c {
		delete(s.byAddr, c.key)
	}
	s.mu.Unlock()
	s.busy.Add(-1)
}

func (s *Server) connState(nc net.Conn, state fasthttp.ConnState) {
	if c := s.own(nc); c != nil {
		c.setState(state)
	}
	if s.next != nil {
		s.next(nc, state)
	}
}

// own finds the conn of this server under nc: the conn itself, a
// *tls.Conn around it, or the wrapper fasthttp puts around it to count
// connections per IP address.
func (s *Server) own(nc net.Conn) *conn {
	for range 4 {
		switch c := nc.(type) {
		case *conn:
			if c.srv == s {
				return c
			}
			return nil
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			a, ok := nc.RemoteAddr().(*net.TCPAddr)
			if !ok {
				return nil
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.byAddr[a]
		}
	}
	return nil
}
